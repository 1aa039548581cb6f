"""A "Lore lineage" button on every task instance, and URLs of the lineage page.

The link points at the plugin's page for the task instance, which finds the
files the task touched (Lore leaves them in the ``lore_files`` XCom) and shows
their lineage. It never breaks the task page: with no data the page says so.

Example::

    from lore_airflow.links import lineage_page_url

    assert lineage_page_url("s3://my-bucket/raw/a.csv").endswith("/lore/?file=s3%3A%2F%2Fmy-bucket%2Fraw%2Fa.csv")
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

__all__ = ["LoreLineageLink", "lineage_page_url", "task_instance_page_url"]

URL_PREFIX = "/lore"


def _base_url() -> str:
    try:
        from airflow.sdk.configuration import conf

        base = str(conf.get("api", "base_url", fallback="") or "")
    except Exception:  # building a link must never fail a page
        base = ""
    return base.rstrip("/")


def lineage_page_url(file: str | None = None, **params: Any) -> str:
    """The lineage page, optionally opened on ``file`` (``s3://bucket/key`` or a key)."""
    query = {k: v for k, v in {"file": file, **params}.items() if v not in (None, "")}
    return f"{_base_url()}{URL_PREFIX}/" + (f"?{urlencode(query)}" if query else "")


def task_instance_page_url(dag_id: str, run_id: str, task_id: str, map_index: int | None = -1) -> str:
    """The page that resolves a task instance to the files it touched."""
    query = {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": -1 if map_index is None else map_index,
    }
    return f"{_base_url()}{URL_PREFIX}/ti?{urlencode(query)}"


class LoreLineageLink(BaseOperatorLink):
    """Operator extra link "Lore lineage" (registered globally by the plugin)."""

    name = "Lore lineage"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return task_instance_page_url(ti_key.dag_id, ti_key.run_id, ti_key.task_id, getattr(ti_key, "map_index", -1))
