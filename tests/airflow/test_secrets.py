"""Secrets, the orchestrator's way (issue 9): in Airflow every value Lore writes first goes through
Airflow's own secrets masker, so a connection password or a sensitive variable is masked even
under an innocent name (a task argument called ``target``, a return value, an error message),
where Lore's key and pattern rules cannot know it is secret. Proven with real ``dag.test()`` runs
(listener and callbacks) against the local S3 server, on the stored bytes of every object."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lore_core import LoreTracker
from lore_core.redaction import REDACTED, Redactor

from .conftest import RunDags, airflow_env

CONN_PASSWORD = "connpw-Zq81-LEAK"
CONN_LOGIN = "svc_lore"
VAR_TOKEN = "vartok-Hx42-LEAK"  # Variable api_token: sensitive by Airflow's default names
VAR_REF = "custref-Pm07-LEAK"  # Variable customer_ref: sensitive by [core] sensitive_var_conn_names
SECRETS = (CONN_PASSWORD, VAR_TOKEN, VAR_REF)


@pytest.fixture(scope="module")
def masked_run(run_dags: RunDags, make_bucket: Any, s3_server: Any) -> dict[str, Any]:
    bucket = make_bucket()
    result = run_dags(
        ["secret_masking"],
        LORE_TEST_BUCKET=bucket,
        LORE_TEST_ENDPOINT=s3_server.endpoint_url,
        AIRFLOW__LORE__STORE=f"s3://{bucket}/.lore-s3",
        AIRFLOW_CONN_LORE_SECRET_DB=json.dumps(
            {"conn_type": "postgres", "host": "db.internal", "login": CONN_LOGIN, "password": CONN_PASSWORD}
        ),
        AIRFLOW_VAR_API_TOKEN=VAR_TOKEN,
        AIRFLOW_VAR_CUSTOMER_REF=VAR_REF,
        AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES="customer_ref",
    )
    client = s3_server.client()
    stored = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            stored.append(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode())
    return {
        "result": result["secret_masking"],
        "tracker": LoreTracker(bucket=bucket, s3_client=client),
        "stored": "\n".join(stored),
    }


def _entry(tracker: LoreTracker, key: str) -> Any:
    history = tracker.get_history(key)
    assert history is not None, key
    (entry,) = history.entries
    return entry


def test_connection_and_variable_values_never_reach_the_bucket(masked_run: dict[str, Any]) -> None:
    tis = masked_run["result"]["tis"]
    assert tis["with_connection"]["state"] == "success"
    assert tis["with_variables"]["state"] == "failed" and tis["with_hook"]["state"] == "failed"
    stored = masked_run["stored"]
    for secret in SECRETS:
        assert secret not in stored, secret


def test_masked_under_innocent_names_in_inputs_outputs_and_errors(masked_run: dict[str, Any]) -> None:
    tracker = masked_run["tracker"]
    conn = _entry(tracker, "secret/conn.csv")  # the listener
    assert conn.input == {"op_kwargs": {"target": REDACTED}}
    assert conn.output == {"note": f"connected to {REDACTED}", "rows": "3"}
    variables = _entry(tracker, "secret/var.csv")  # the callbacks
    assert variables.input == {"op_kwargs": {"header": REDACTED, "ref": REDACTED}}
    assert variables.error.name == "PermissionError"
    assert variables.error.message == f"service refused header {REDACTED} for customer {REDACTED}"
    hooked = _entry(tracker, "secret/hook.csv")
    assert hooked.error.message == f"cannot log in to db.internal as {CONN_LOGIN} with {REDACTED}"
    for entry in (variables, hooked):
        assert not any(secret in (entry.error.stack or "") for secret in SECRETS)
    # Lore's own rules alone would have kept every one of these values.
    own = Redactor()
    assert own.redact({"target": CONN_PASSWORD, "header": VAR_TOKEN, "ref": VAR_REF}) == {
        "target": CONN_PASSWORD,
        "header": VAR_TOKEN,
        "ref": VAR_REF,
    }


def test_lore_masks_at_least_airflows_sensitive_field_names(tmp_path: Any, s3_endpoint: str) -> None:
    # Airflow's list, read from the installed Airflow in a process of its own.
    code = (
        "import json; from airflow.sdk._shared.secrets_masker import DEFAULT_SENSITIVE_FIELDS as f; "
        "print(json.dumps(sorted(f)))"
    )
    env = airflow_env(tmp_path, tmp_path, s3_endpoint)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    fields = json.loads(out.strip().splitlines()[-1])
    assert "password" in fields and len(fields) >= 20
    redactor = Redactor()
    missing = [f for f in fields if not redactor.is_secret_key(f)]
    assert not missing, missing
