"""Definitions the multiprocess and UI tests load in other processes (so they live in an importable module).

The S3 endpoint and bucket come from the environment the test sets before starting them.
"""

import os

import dagster as dg

from lore_dagster import LoreResource, LoreS3IOManager

FANOUT = 12


def _resources() -> dict[str, object]:
    bucket = os.environ["LORE_TEST_BUCKET"]
    lore = LoreResource(store=f"s3://{bucket}/.lore-s3", endpoint_url=os.environ["LORE_TEST_S3_ENDPOINT"])
    return {"lore": lore, "io_manager": LoreS3IOManager(bucket=bucket, prefix="assets", lore=lore)}


@dg.asset
def source() -> list[int]:
    return list(range(10))


def _child(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"child_{index:02d}")
    def child(source: list[int]) -> dict[str, int]:
        return {"index": index, "total": sum(source) * index}

    return child


@dg.asset
def child_broken(source: list[int]) -> int:
    raise RuntimeError(f"child_broken cannot handle {len(source)} numbers")


FANOUT_ASSETS = [source, *(_child(i) for i in range(FANOUT)), child_broken]


def fanout_job() -> dg.JobDefinition:
    """Every asset in one run under the multiprocess executor: the children write lineage at once."""
    job = dg.define_asset_job(
        "fanout",
        selection=dg.AssetSelection.all(),
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 4}),
    )
    return dg.Definitions(assets=FANOUT_ASSETS, jobs=[job], resources=_resources()).resolve_job_def("fanout")


@dg.asset(code_version="2")
def readings() -> list[float]:
    return [20.5, 21.0, 19.5]


@dg.asset
def daily_mean(readings: list[float]) -> float:
    return sum(readings) / len(readings)


@dg.asset
def broken_gauge(readings: list[float]) -> float:
    raise ValueError(f"gauge offline after {len(readings)} readings")


gauge_job = dg.define_asset_job("gauge_job", selection=[broken_gauge])


def ui_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[readings, daily_mean, broken_gauge], jobs=[gauge_job], resources=_resources())


defs = ui_definitions() if "LORE_TEST_BUCKET" in os.environ else dg.Definitions()
