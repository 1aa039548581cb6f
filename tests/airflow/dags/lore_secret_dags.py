"""DAGs for tests/airflow/test_secrets.py: connection passwords and sensitive variables used under
innocent names (task inputs, return values, error messages), which only Airflow's own secrets
masker knows to be secret. The connection and variables come from the environment."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, BaseHook, task

from lore_airflow import lore_callbacks

BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")
ENDPOINT = os.environ.get("LORE_TEST_ENDPOINT")
STORE = f"s3://{BUCKET}/.lore-s3"


with DAG("secret_masking", schedule=None):
    # Tracked by the listener. The password reaches the task as a rendered argument named "target".
    @task(inlets=[Asset(f"s3://{BUCKET}/secret/conn.csv")])
    def with_connection(target: str) -> dict[str, str]:
        return {"note": f"connected to {target}", "rows": "3"}

    # Tracked by callbacks. Sensitive variables (by Airflow's default names and by
    # [core] sensitive_var_conn_names) under innocent names, and in the error message.
    @task(inlets=[Asset(f"s3://{BUCKET}/secret/var.csv")], **lore_callbacks(store=STORE, endpoint_url=ENDPOINT))
    def with_variables(header: str, ref: str) -> None:
        raise PermissionError(f"service refused header {header} for customer {ref}")

    # Tracked by the listener; the task fetches the connection itself and fails with its password.
    @task(inlets=[Asset(f"s3://{BUCKET}/secret/hook.csv")])
    def with_hook() -> None:
        conn = BaseHook.get_connection("lore_secret_db")
        raise ConnectionError(f"cannot log in to {conn.host} as {conn.login} with {conn.password}")

    with_connection(target="{{ conn.lore_secret_db.password }}")
    with_variables(header="{{ var.value.api_token }}", ref="{{ var.value.customer_ref }}")
    with_hook()
