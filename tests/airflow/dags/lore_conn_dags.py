"""DAGs that name no endpoint anywhere: Lore's S3 client must come from the AWS connection
``aws_default`` (``AIRFLOW_CONN_AWS_DEFAULT``, endpoint in its extra), through LoreHook."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, task

from lore_airflow import LoreFailedEntrySensor, lore_callbacks

BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")
STORE = f"s3://{BUCKET}/.lore-s3"

with DAG("conn_source", schedule=None):

    @task(
        inlets=[Asset(f"s3://{BUCKET}/conn/in.csv")],
        outlets=[Asset(f"s3://{BUCKET}/conn/out.csv")],
        **lore_callbacks(store=STORE),
    )
    def copy() -> str:
        return "copied"

    @task(inlets=[Asset(f"s3://{BUCKET}/conn/bad.csv")], **lore_callbacks(store=STORE))
    def broken() -> None:
        raise ValueError("bad row")

    copy()
    broken()


with DAG("conn_find", schedule=None):
    LoreFailedEntrySensor(task_id="find", store=STORE, prefix="conn/", poke_interval=1, timeout=30)
