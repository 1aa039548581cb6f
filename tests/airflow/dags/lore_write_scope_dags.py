"""DAGs for tests/airflow/test_write_scope.py: tasks that read from (or write to) buckets other
than the store's, through S3Hook (hook lineage) and through declared inlets/outlets."""

from __future__ import annotations

import os

from airflow.sdk import DAG, Asset, task

from lore_airflow import lore_callbacks

STORE_BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")
FOREIGN = os.environ.get("LORE_TEST_FOREIGN_BUCKET", "lore-test-foreign")
ALLOWED = os.environ.get("LORE_TEST_ALLOWED_BUCKET", "lore-test-allowed")
ENDPOINT = os.environ.get("LORE_TEST_ENDPOINT")
STORE = f"s3://{STORE_BUCKET}/.lore-s3"


def _copy(source_bucket: str, source_key: str, target_key: str) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="lore_s3")
    path = hook.download_file(source_key, bucket_name=source_bucket, preserve_file_name=False)
    hook.load_file(path, target_key, bucket_name=STORE_BUCKET, replace=True)


with DAG("write_scope", schedule=None):
    # Nothing declared: S3Hook reads from a bucket Lore may not write, writes into the store's.
    @task
    def hook_copy() -> str:
        _copy(FOREIGN, "raw/hooked.csv", "copied/hooked.csv")
        return "copied"

    # The same under lore_callbacks.
    @task(**lore_callbacks(store=STORE, endpoint_url=ENDPOINT))
    def hook_copy_cb() -> str:
        _copy(FOREIGN, "raw/hooked-cb.csv", "copied/hooked-cb.csv")
        return "copied"

    # A hook read from the foreign bucket, then a failure: nothing may land in that bucket.
    @task
    def hook_read_then_fail() -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        S3Hook(aws_conn_id="lore_s3").download_file("raw/hooked.csv", bucket_name=FOREIGN, preserve_file_name=False)
        raise RuntimeError("could not parse the foreign file")

    # Declared: a foreign inlet, an outlet in the store.
    @task(
        inlets=[Asset(f"s3://{FOREIGN}/raw/declared.csv")], outlets=[Asset(f"s3://{STORE_BUCKET}/clean/declared.csv")]
    )
    def declared_read() -> str:
        return "read"

    # Declared: an inlet in the store, an outlet in the foreign bucket.
    @task(inlets=[Asset(f"s3://{STORE_BUCKET}/raw/out.csv")], outlets=[Asset(f"s3://{FOREIGN}/published/out.csv")])
    def declared_write() -> str:
        return "published"

    # Declared, into a bucket listed in [lore] writable_buckets: written there as before.
    @task(
        inlets=[Asset(f"s3://{STORE_BUCKET}/raw/allowed.csv")], outlets=[Asset(f"s3://{ALLOWED}/published/allowed.csv")]
    )
    def allowed_write() -> str:
        return "published"

    hook_copy() >> hook_copy_cb() >> hook_read_then_fail()
    declared_read()
    declared_write()
    allowed_write()
