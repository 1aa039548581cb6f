"""Daily order files: raw uploads -> validated -> converted -> summary, tracked by Lore.

``lore_orders`` validates and converts each uploaded CSV (one mapped task group per
file) and writes a daily summary. Nothing in the task bodies talks to Lore: the
plugin's listener tracks every task whose inlets/outlets are ``s3://`` objects, the
summary is tracked from its ``S3Hook`` reads (hook lineage), and ``convert`` shows
the explicit alternative, ``**lore_callbacks()``.

A file whose currency is not in ``reference/currencies.txt`` fails validation.
Once the reference data is fixed, ``lore_orders_fix`` finds the failed entries
with ``LoreFailedEntrySensor``, replays each with a mapped ``LoreReplayOperator``
and converts the repaired files, then rebuilds the summary.

Configuration (see ``demo.py``): ``[lore] store = s3://<bucket>/.lore-s3``,
``[lore] aws_conn_id = lore_s3`` and an AWS connection ``lore_s3``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Asset, task, task_group

from lore_airflow import LoreFailedEntrySensor, LoreReplayOperator, lore_callbacks
from lore_core import StepContext, register_step

BUCKET = os.environ.get("LORE_EXAMPLE_BUCKET", "lore-example")
CONN_ID = "lore_s3"
FILES = ["orders-001.csv", "orders-002.csv", "orders-003.csv"]
REQUIRED = ("order_id", "amount", "currency")


def _hook() -> S3Hook:
    return S3Hook(aws_conn_id=CONN_ID)


def validate_orders(name: str) -> dict[str, Any]:
    """Check a raw upload and copy it to ``validated/``; raise on the first bad row."""
    hook = _hook()
    known = set(hook.read_key("reference/currencies.txt", bucket_name=BUCKET).split())
    rows = list(csv.DictReader(io.StringIO(hook.read_key(f"raw/{name}", bucket_name=BUCKET))))
    for number, row in enumerate(rows, start=2):
        missing = [c for c in REQUIRED if not row.get(c)]
        if missing:
            raise ValueError(f"{name} line {number}: missing {', '.join(missing)}")
        if row["currency"] not in known:
            raise ValueError(f"{name} line {number}: unknown currency {row['currency']!r}")
    hook.load_string(
        hook.read_key(f"raw/{name}", bucket_name=BUCKET), f"validated/{name}", bucket_name=BUCKET, replace=True
    )
    return {"rows": len(rows)}


def convert_orders(name: str) -> dict[str, Any]:
    """CSV to JSON lines, amounts as numbers."""
    hook = _hook()
    rows = list(csv.DictReader(io.StringIO(hook.read_key(f"validated/{name}", bucket_name=BUCKET))))
    lines = [json.dumps({**r, "amount": float(r["amount"])}) for r in rows]
    hook.load_string("\n".join(lines), f"converted/{name}.jsonl", bucket_name=BUCKET, replace=True)
    return {"rows": len(rows), "total": round(sum(float(r["amount"]) for r in rows), 2)}


def summarize_orders() -> dict[str, Any]:
    """Totals per currency over every converted file; reads go through S3Hook (hook lineage)."""
    hook = _hook()
    totals: dict[str, float] = {}
    files = sorted(hook.list_keys(bucket_name=BUCKET, prefix="converted/") or [])
    for key in files:
        path = hook.download_file(key, bucket_name=BUCKET, preserve_file_name=False)
        with open(path) as fh:
            for line in fh:
                row = json.loads(line)
                totals[row["currency"]] = round(totals.get(row["currency"], 0.0) + row["amount"], 2)
        os.unlink(path)
    hook.load_string(json.dumps(totals, sort_keys=True), "summary/daily.json", bucket_name=BUCKET, replace=True)
    return {"files": len(files), "totals": totals}


RAW = f"s3://{BUCKET}/raw/{{{{ op_kwargs.name }}}}"
VALIDATED = f"s3://{BUCKET}/validated/{{{{ op_kwargs.name }}}}"
CONVERTED = f"s3://{BUCKET}/converted/{{{{ op_kwargs.name }}}}.jsonl"


@register_step("lore_orders.process.validate")
def replay_validate(ctx: StepContext) -> dict[str, Any]:
    """The replay handler: the same validation, run on the failed entry's recorded input."""
    name = ctx.input["op_kwargs"]["name"]
    result = validate_orders(name)
    ctx.produce(f"validated/{name}")
    return result


with DAG("lore_orders", schedule=None, tags=["lore", "example"], doc_md=__doc__):

    @task_group
    def process(name: str) -> None:
        @task(inlets=[RAW], outlets=[VALIDATED])
        def validate(name: str) -> dict[str, Any]:
            return validate_orders(name)

        @task(inlets=[VALIDATED], outlets=[CONVERTED], **lore_callbacks())
        def convert(name: str) -> dict[str, Any]:
            return convert_orders(name)

        validate(name) >> convert(name)

    @task(trigger_rule="all_done", outlets=[Asset(f"s3://{BUCKET}/summary/daily.json")])
    def summarize() -> dict[str, Any]:
        return summarize_orders()

    process.expand(name=FILES) >> summarize()


with DAG("lore_orders_fix", schedule=None, tags=["lore", "example"]):
    failed = LoreFailedEntrySensor(
        task_id="find_failed_files",
        prefix="raw/",
        source_dag_id="lore_orders",
        mode="reschedule",
        poke_interval=30,
        timeout=3600,
    )
    replayed = LoreReplayOperator.partial(task_id="replay").expand(entry=failed.output)

    @task(inlets=[VALIDATED], outlets=[CONVERTED])
    def convert_replayed(name: str) -> dict[str, Any]:
        return convert_orders(name)

    @task(outlets=[Asset(f"s3://{BUCKET}/summary/daily.json")])
    def resummarize() -> dict[str, Any]:
        return summarize_orders()

    names = replayed.output.map(lambda summary: summary["file_key"].rsplit("/", 1)[-1])
    convert_replayed.expand(name=names) >> resummarize()
