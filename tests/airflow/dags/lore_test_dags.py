"""DAGs the Airflow tests run with dag.test(); buckets and endpoint come from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, task

from lore_airflow import LoreFailedEntrySensor, LoreReplayOperator, lore_callbacks
from lore_core import StepContext, register_step

BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")
BUCKET2 = os.environ.get("LORE_TEST_BUCKET2", "lore-test-bucket-2")
ENDPOINT = os.environ.get("LORE_TEST_ENDPOINT")
STATE_DIR = Path(os.environ.get("LORE_TEST_STATE_DIR", "/tmp"))
STORE = f"s3://{BUCKET}/.lore-s3"
HTML_KEY = os.environ.get("LORE_TEST_HTML_KEY", "odd/<img src=x onerror=alert(1)>.csv")
HTML_ERROR = "<script>alert('lore')</script> & bad row"

CB = lore_callbacks(store=STORE, endpoint_url=ENDPOINT)


class NotJSON:
    def __repr__(self) -> str:
        return "NotJSON()"


with DAG("cb_basic", schedule=None, params={"threshold": 5}):

    @task(
        inlets=[Asset(f"s3://{BUCKET}/raw/orders.csv")],
        outlets=[Asset(f"s3://{BUCKET}/clean/orders.parquet")],
        **CB,
    )
    def clean(limit: int, opaque: Any = None) -> dict[str, int]:
        return {"rows": 3, "limit": limit}

    clean(limit=7, opaque=NotJSON())


with DAG("cb_fail", schedule=None):

    @task(inlets=[Asset(f"s3://{BUCKET}/raw/broken.csv")], outlets=[Asset(f"s3://{BUCKET}/clean/broken.parquet")], **CB)
    def clean_broken() -> None:
        raise ValueError("row 7 has no id")

    clean_broken()


with DAG("cb_secrets", schedule=None):

    @task(inlets=[Asset(f"s3://{BUCKET}/secret/in.csv")], **CB)
    def leaky(api_key: str, rows: int) -> None:
        raise ValueError(f"could not log in with password=pw-LEAK-2 (rows={rows}, key={api_key[:2]})")

    @task(inlets=[f"s3://{BUCKET}/secret/listened.csv"])
    def leaky_listened(db_password: str) -> dict[str, str]:
        return {"session_token": "tok-LEAK-3", "ok": "yes"}

    leaky(api_key="k-LEAK-1", rows=3)
    leaky_listened(db_password="pw-LEAK-4")


with DAG("listener_basic", schedule=None):

    @task(inlets=[f"s3://{BUCKET}/raw/listened.csv"], outlets=[Asset(f"s3://{BUCKET}/clean/listened.parquet")])
    def convert() -> list[int]:
        return [1, 2, 3]

    @task(inlets=[Asset(f"s3://{BUCKET}/{HTML_KEY}")])
    def explode() -> None:
        raise RuntimeError(HTML_ERROR)

    convert()
    explode()


with DAG("both_active", schedule=None):

    @task(inlets=[Asset(f"s3://{BUCKET}/raw/both.csv")], outlets=[Asset(f"s3://{BUCKET}/clean/both.parquet")], **CB)
    def both() -> str:
        return "ok"

    both()


with DAG("retry_dag", schedule=None):

    @task(
        inlets=[Asset(f"s3://{BUCKET}/raw/flaky.csv")],
        outlets=[Asset(f"s3://{BUCKET}/clean/flaky.parquet")],
        retries=1,
        retry_delay=0,
    )
    def flaky() -> str:
        marker = STATE_DIR / "flaky-tried"
        if not marker.exists():
            marker.write_text("1")
            raise ConnectionError("S3 hiccup on first try")
        return "second try worked"

    @task(
        inlets=[Asset(f"s3://{BUCKET}/raw/flaky-cb.csv")],
        retries=1,
        retry_delay=0,
        **CB,
    )
    def flaky_cb() -> str:
        # Same as flaky, tracked by callbacks: the first try ends in on_retry_callback.
        marker = STATE_DIR / "flaky-cb-tried"
        if not marker.exists():
            marker.write_text("1")
            raise TimeoutError("slow S3 on first try")
        return "callbacks saw both tries"

    flaky()
    flaky_cb()


with DAG("mapped_dag", schedule=None):

    @task(
        inlets=[f"s3://{BUCKET}/raw/{{{{ op_kwargs.name }}}}"],
        outlets=[f"s3://{BUCKET}/clean/{{{{ op_kwargs.name }}}}.parquet"],
    )
    def convert_one(name: str) -> str:
        if name == "c.csv":
            raise ValueError(f"cannot convert {name}")
        return name.upper()

    convert_one.expand(name=["a.csv", "b.csv", "c.csv"])


with DAG("cross_bucket", schedule=None):

    @task(inlets=[Asset(f"s3://{BUCKET}/raw/cross.csv")], outlets=[Asset(f"s3://{BUCKET2}/published/cross.csv")])
    def publish() -> None:
        return None

    publish()


with DAG("hook_lineage_dag", schedule=None):

    @task
    def copy_first() -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id="lore_s3")
        path = hook.download_file("hooked/in-1.csv", bucket_name=BUCKET, preserve_file_name=False)
        hook.load_file(path, "hooked/out-1.csv", bucket_name=BUCKET, replace=True)

    @task
    def copy_second() -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id="lore_s3")
        path = hook.download_file("hooked/in-2.csv", bucket_name=BUCKET, preserve_file_name=False)
        hook.load_file(path, "hooked/out-2.csv", bucket_name=BUCKET, replace=True)

    copy_first() >> copy_second()


with DAG("tracking_errors", schedule=None):

    @task(
        inlets=[Asset("s3://lore-no-such-bucket/raw/x.csv")],
        **lore_callbacks(store="s3://lore-no-such-bucket/.lore-s3", endpoint_url=ENDPOINT),
    )
    def tolerant() -> str:
        return "still fine"

    @task(
        inlets=[Asset("s3://lore-no-such-bucket/raw/y.csv")],
        **lore_callbacks(store="s3://lore-no-such-bucket/.lore-s3", endpoint_url=ENDPOINT, raise_on_error=True),
    )
    def strict() -> str:
        return "never recorded"

    tolerant()
    strict()


@register_step("replay_source.validate")
def validate_again(ctx: StepContext) -> dict[str, str]:
    # The replay runs the step with the failed entry's recorded input.
    return {"validated": ctx.file_key}


with DAG("replay_source", schedule=None):

    @task(inlets=[f"s3://{BUCKET}/incoming/{{{{ op_kwargs.name }}}}"])
    def validate(name: str) -> None:
        if name.startswith("bad"):
            raise ValueError(f"{name}: header missing")

    validate.expand(name=["good-1.csv", "bad-1.csv", "bad-2.csv"])


with DAG("replay_fix", schedule=None):
    failures = LoreFailedEntrySensor(
        task_id="find_failures",
        store=STORE,
        endpoint_url=ENDPOINT,
        prefix="incoming/",
        source_dag_id="replay_source",
        mode="reschedule",
        poke_interval=1,
        timeout=60,
    )
    LoreReplayOperator.partial(task_id="replay", store=STORE, endpoint_url=ENDPOINT).expand(entry=failures.output)


with DAG("replay_fix_deferrable", schedule=None):
    deferred = LoreFailedEntrySensor(
        task_id="find_failures",
        store=STORE,
        endpoint_url=ENDPOINT,
        prefix="incoming/",
        deferrable=True,
        poke_interval=1,
        timeout=60,
    )
    LoreReplayOperator.partial(task_id="replay", store=STORE, endpoint_url=ENDPOINT, handler=validate_again).expand(
        entry=deferred.output
    )


with DAG("reschedule_wait", schedule=None):
    LoreFailedEntrySensor(
        task_id="wait",
        store=STORE,
        endpoint_url=ENDPOINT,
        prefix="late/",
        mode="reschedule",
        poke_interval=1,
        timeout=90,
    )


with DAG("deferred_wait", schedule=None):
    # No deferrable= here: it comes from [operators] default_deferrable.
    LoreFailedEntrySensor(
        task_id="wait",
        store=STORE,
        endpoint_url=ENDPOINT,
        prefix="late/",
        poke_interval=1,
        timeout=90,
    )


with DAG("replay_fix_dotted", schedule=None):
    listed = LoreFailedEntrySensor(
        task_id="find_failures", store=STORE, endpoint_url=ENDPOINT, prefix="incoming/", poke_interval=1, timeout=60
    )
    # A dotted path, imported in the worker: it wins over the step registered above.
    LoreReplayOperator.partial(
        task_id="replay", store=STORE, endpoint_url=ENDPOINT, handler="lore_replay_handlers:validate_by_path"
    ).expand(entry=listed.output)
