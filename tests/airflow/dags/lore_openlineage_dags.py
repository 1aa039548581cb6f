"""DAGs of the OpenLineage test (tests/airflow/test_openlineage.py): tracked by the listener
([lore] store), with [lore] openlineage on; bucket and endpoint come from the environment."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, task

BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")

with DAG("ol_lineage", schedule=None):

    @task(
        inlets=[Asset(f"s3://{BUCKET}/raw/a.csv"), Asset(f"s3://{BUCKET}/raw/b.csv")],
        outlets=[Asset(f"s3://{BUCKET}/out/x.csv"), Asset(f"s3://{BUCKET}/out/y.csv")],
    )
    def join() -> dict[str, int]:
        return {"rows": 2}

    @task(inlets=[Asset(f"s3://{BUCKET}/raw/parts.csv")])
    def split(part: int) -> int:
        return part

    @task(inlets=[Asset(f"s3://{BUCKET}/raw/broken.csv")])
    def broken() -> None:
        raise ValueError("row 7 has no id")

    join()
    split.expand(part=[0, 1])
    broken()
