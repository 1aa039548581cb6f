"""Lore for Airflow 3: per-file history and lineage of tasks whose inlets/outlets are S3 objects.

Example::

    from airflow.sdk import Asset, task
    from lore_airflow import lore_callbacks

    @task(
        inlets=[Asset("s3://my-bucket/raw/orders.csv")],
        outlets=[Asset("s3://my-bucket/clean/orders.parquet")],
        **lore_callbacks(store="s3://my-bucket/.lore-s3"),
    )
    def clean() -> None: ...

With the plugin installed and ``[lore] store`` set, the listener does the same for
every task with ``s3://`` inlets/outlets, and nothing is needed per task.
"""

try:
    import airflow  # noqa: F401  (checked first: a missing orchestrator gets one clear message)
except ImportError as _missing:
    if _missing.name != "airflow":
        raise
    raise ImportError(
        "lore_airflow needs Airflow (and the Amazon provider), which Lore installs with its [airflow] extra: "
        "pip install -e '.[airflow]' in a checkout of Lore, or pip install 'lore-s3[airflow] @ git+<repository URL>'"
    ) from None


from .callbacks import lore_callbacks
from .config import LoreSettings
from .hooks import LoreHook
from .links import LoreLineageLink, lineage_page_url
from .operators import LoreReplayOperator
from .sensors import LoreFailedEntrySensor
from .tracking import LoreTrackingError
from .triggers import LoreFailedEntryTrigger

__all__ = [
    "LoreFailedEntrySensor",
    "LoreFailedEntryTrigger",
    "LoreHook",
    "LoreLineageLink",
    "LoreReplayOperator",
    "LoreSettings",
    "LoreTrackingError",
    "lineage_page_url",
    "lore_callbacks",
]
