"""Lore for Dagster: per-file history and lineage for every asset output stored in S3.

Add one resource and one IO manager to ``Definitions``; asset code stays as it is.

Example::

    import dagster as dg
    from lore_dagster import LoreResource, LoreS3IOManager, build_lore_replay_sensor

    @dg.asset
    def numbers() -> list[int]:
        return [1, 2, 3]

    lore = LoreResource(store="s3://my-bucket/.lore-s3")
    job = dg.define_asset_job("all_assets")
    defs = dg.Definitions(
        assets=[numbers],
        jobs=[job],
        resources={"lore": lore, "io_manager": LoreS3IOManager(bucket="my-bucket", lore=lore)},
        sensors=[build_lore_replay_sensor(job=job)],
    )
"""

try:
    import dagster  # noqa: F401  (checked first: a missing orchestrator gets one clear message)
except ImportError as _missing:
    if _missing.name != "dagster":
        raise
    raise ImportError(
        "lore_dagster needs Dagster, which Lore installs with its [dagster] extra: "
        "pip install -e '.[dagster]' in a checkout of Lore, or pip install 'lore-s3[dagster] @ git+<repository URL>'"
    ) from None


from .io_manager import LoreS3IOManager as LoreS3IOManager
from .metadata import lineage_markdown as lineage_markdown
from .metadata import lore_lineage_metadata as lore_lineage_metadata
from .resources import TAG_ENTRY_ID as TAG_ENTRY_ID
from .resources import TAG_FILE_KEY as TAG_FILE_KEY
from .resources import TAG_STEP as TAG_STEP
from .resources import LoreResource as LoreResource
from .resources import TrackedStep as TrackedStep
from .sensors import build_lore_replay_sensor as build_lore_replay_sensor
from .sensors import build_s3_file_partitions_sensor as build_s3_file_partitions_sensor
from .sensors import lore_file_partitions as lore_file_partitions

__all__ = [
    "TAG_ENTRY_ID",
    "TAG_FILE_KEY",
    "TAG_STEP",
    "LoreResource",
    "LoreS3IOManager",
    "TrackedStep",
    "build_lore_replay_sensor",
    "build_s3_file_partitions_sensor",
    "lineage_markdown",
    "lore_file_partitions",
    "lore_lineage_metadata",
]
