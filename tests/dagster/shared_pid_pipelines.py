"""A job that test_step_ownership.py runs under the multiprocess executor, with every step process
reporting the same PID, as step processes in containers do (Docker, Kubernetes, ECS: PID 1 or
another small number in each). Step processes import this module by name from the repository
root; the PID is shared only in them (``multiprocessing.parent_process()``), never in the test."""

import multiprocessing
import os

import dagster as dg

from lore_dagster import LoreResource, LoreS3IOManager, lore_lineage_metadata

SHARED_PID = os.environ.get("LORE_TEST_SHARED_PID")
if SHARED_PID and multiprocessing.parent_process() is not None:
    os.getpid = lambda: int(SHARED_PID)

AFTER = 3


def _resources() -> dict[str, object]:
    bucket = os.environ["LORE_TEST_BUCKET"]
    lore = LoreResource(store=f"s3://{bucket}/.lore-s3", endpoint_url=os.environ["LORE_TEST_S3_ENDPOINT"])
    return {"lore": lore, "io_manager": LoreS3IOManager(bucket=bucket, prefix="assets", lore=lore)}


@dg.asset
def declared(lore: LoreResource) -> dg.MaterializeResult:
    """Writes its own object and says so: recorded from the materialization's lore/writes."""
    lore.get_s3_client().put_object(Bucket=os.environ["LORE_TEST_BUCKET"], Key="declared/out.txt", Body=b"made")
    return dg.MaterializeResult(metadata=lore_lineage_metadata(writes=["declared/out.txt"]))


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset(deps=[declared])
def broken_root() -> int:
    """Fails without loading anything (its process has nothing of its own to show for it)."""
    raise RuntimeError("broken_root cannot start")


@dg.asset
def broken_child(numbers: list[int]) -> int:
    """Fails after loading an input through Lore's IO manager."""
    raise ValueError(f"broken_child cannot add {len(numbers)} numbers")


@dg.asset(deps=[declared])
def middle(numbers: list[int]) -> int:
    return sum(numbers)


def _after(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"after_{index}")
    def after(middle: int) -> int:
        # Steps that finish (and tear their resources down) after the others' events exist.
        return middle * index

    return after


ASSETS = [declared, numbers, broken_root, broken_child, middle, *(_after(i) for i in range(AFTER))]


def shared_pid_job() -> dg.JobDefinition:
    job = dg.define_asset_job(
        "shared_pid",
        selection=dg.AssetSelection.all(),
        executor_def=dg.multiprocess_executor.configured({"max_concurrent": 3}),
    )
    return dg.Definitions(assets=ASSETS, jobs=[job], resources=_resources()).resolve_job_def("shared_pid")
