"""``LorePlugin``: registered through the ``airflow.plugins`` entry point of ``lore-s3``.

It brings the listener (tracks every task with ``s3://`` inlets/outlets once
``[lore] store`` is set), the hook-lineage reader (switches on Airflow's hook
lineage so ``S3Hook`` reads/writes count), the lineage page under ``/lore``
with a navigation entry and a task-instance tab, and a "Lore lineage" extra link.

Example::

    from lore_airflow.plugin import LorePlugin

    assert LorePlugin.name == "lore"
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from .hook_lineage import LoreHookLineageReader
from .links import URL_PREFIX, LoreLineageLink
from .listener import lore_listener

__all__ = ["LorePlugin"]


def _fastapi_apps() -> list[dict[str, Any]]:
    try:
        from .ui.app import create_app
    except ImportError:  # a worker without FastAPI still tracks; only the page is missing
        return []
    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Lore lineage"}]


class LorePlugin(AirflowPlugin):
    """Lore inside Airflow 3: listener, hook lineage, lineage page and links."""

    name = "lore"
    listeners = [lore_listener]
    hook_lineage_readers = [LoreHookLineageReader]
    global_operator_extra_links = [LoreLineageLink()]
    fastapi_apps = _fastapi_apps()
    external_views = [
        {
            "name": "Lore lineage",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "lore",
        },
        {
            # A tab on each task instance: the page resolves it to the files it touched.
            "name": "Lore lineage",
            "href": f"{URL_PREFIX}/ti?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "lore_ti",
        },
    ]
