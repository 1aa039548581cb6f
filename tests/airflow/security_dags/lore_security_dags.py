"""Two DAGs for the lineage page's security tests: a user may be allowed on one and not the other.

Tracked by the plugin's listener (no Lore code here); the bucket comes from the environment.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, task

BUCKET = os.environ.get("LORE_SEC_BUCKET", "lore-sec-bucket")
# A file name that is also markup: the task-instance page lists it as text.
HOSTILE_OUTLET = os.environ.get("LORE_SEC_HOSTILE_KEY", "b/<img src=x id=lore-injected>.csv")

with DAG("sec_dag_a", schedule=None):

    @task(inlets=[Asset(f"s3://{BUCKET}/a/in.csv")], outlets=[Asset(f"s3://{BUCKET}/a/out.csv")])
    def make() -> dict[str, str]:
        return {"result": "output-of-dag-a"}

    make()


with DAG("sec_dag_b", schedule=None):

    @task(
        inlets=[Asset(f"s3://{BUCKET}/b/in.csv")],
        outlets=[Asset(f"s3://{BUCKET}/b/out.csv"), Asset(f"s3://{BUCKET}/{HOSTILE_OUTLET}")],
    )
    def make() -> dict[str, str]:
        return {"result": "output-of-dag-b"}

    make()
