"""Lineage with nothing declared: S3 reads and writes made through ``S3Hook``.

Airflow only collects hook lineage once some plugin registers a reader; the Lore
plugin registers :class:`LoreHookLineageReader`, and the tracking code diffs the
per-process collector before and after each task (it is never reset, and under
``dag.test()`` every task shares one process).

Example::

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    def copy_orders() -> None:  # a task body: no inlets, no outlets
        hook = S3Hook(aws_conn_id="aws_default")
        path = hook.download_file("raw/orders.csv", bucket_name="my-bucket")
        hook.load_file(path, "clean/orders.csv", bucket_name="my-bucket", replace=True)
"""

from __future__ import annotations

from airflow.sdk.lineage import HookLineageReader

from .tracking import hook_lineage_since, hook_lineage_snapshot

__all__ = ["LoreHookLineageReader", "hook_lineage_since", "hook_lineage_snapshot"]


class LoreHookLineageReader(HookLineageReader):
    """Registered by the plugin so that Airflow's hook lineage collector is switched on."""
