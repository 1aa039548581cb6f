"""A per-file sales pipeline tracked by Lore: raw CSV uploads -> validated -> converted -> summary.

Every upload under ``raw/`` becomes a partition of ``files`` (the file-partitions sensor
adds it). ``validated`` checks the CSV, ``converted`` turns it into JSON records and
``summary`` totals all files. The IO manager stores each output in S3 and records its
history and lineage; the replay sensor re-runs the files whose step failed.

Configuration comes from the environment (``ui.py`` and ``demo.py`` set it):
``LORE_BUCKET`` (default ``lore-demo``) and ``LORE_S3_ENDPOINT`` (a local S3 server).

Load it in the UI with ``dagster-webserver -f example_projects/dagster_pipeline/definitions.py``
(or simply ``python example_projects/dagster_pipeline/ui.py``).
"""

import csv
import io
import os
from typing import Any

import dagster as dg

from lore_dagster import (
    LoreResource,
    LoreS3IOManager,
    build_lore_replay_sensor,
    build_s3_file_partitions_sensor,
    lore_file_partitions,
)

BUCKET = os.environ.get("LORE_BUCKET", "lore-demo")
COLUMNS = ["date", "region", "amount"]

files = lore_file_partitions("files")


@dg.asset(partitions_def=files, code_version="1", group_name="sales")
def validated(context: dg.AssetExecutionContext, lore: LoreResource) -> list[dict[str, str]]:
    """The uploaded CSV, checked: the expected header, three fields per row, a numeric amount."""
    key = context.partition_key
    body = lore.get_s3_client().get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    reader = csv.reader(io.StringIO(body))
    header = next(reader, [])
    if header != COLUMNS:
        raise ValueError(f"{key}: header is {header}, expected {COLUMNS}")
    rows: list[dict[str, str]] = []
    for line, fields in enumerate(reader, start=2):
        if len(fields) != len(COLUMNS):
            raise ValueError(f"{key}: line {line} has {len(fields)} fields, expected {len(COLUMNS)}")
        try:
            float(fields[2])
        except ValueError:
            raise ValueError(f"{key}: line {line} amount {fields[2]!r} is not a number") from None
        rows.append(dict(zip(COLUMNS, fields, strict=True)))
    context.log.info(f"{key}: {len(rows)} valid rows")
    return rows


@dg.asset(partitions_def=files, code_version="1", group_name="sales")
def converted(validated: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The validated rows as typed JSON records (amount in cents, as an integer)."""
    return [
        {"date": r["date"], "region": r["region"], "amount_cents": round(float(r["amount"]) * 100)} for r in validated
    ]


@dg.asset(code_version="1", group_name="sales")
def summary(converted: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Totals per region over every converted file (loads all partitions)."""
    totals: dict[str, int] = {}
    for records in converted.values():
        for record in records:
            totals[record["region"]] = totals.get(record["region"], 0) + record["amount_cents"]
    return {"files": sorted(converted), "total_cents_by_region": dict(sorted(totals.items()))}


per_file_job = dg.define_asset_job("per_file", selection=[validated, converted])
summary_job = dg.define_asset_job("summary_job", selection=[summary])

lore = LoreResource(
    store=f"s3://{BUCKET}/.lore-s3",
    endpoint_url=dg.EnvVar("LORE_S3_ENDPOINT"),
    dagster_ui_url=os.environ.get("LORE_DAGSTER_UI_URL", "http://127.0.0.1:3000"),
)

defs = dg.Definitions(
    assets=[validated, converted, summary],
    jobs=[per_file_job, summary_job],
    resources={
        "lore": lore,
        "io_manager": LoreS3IOManager(bucket=BUCKET, prefix="assets", lore=lore),
    },
    sensors=[
        build_s3_file_partitions_sensor(files, bucket=BUCKET, prefix="raw/", suffixes=[".csv"], job=per_file_job),
        build_lore_replay_sensor(job=per_file_job, prefix="raw/"),
    ],
)
