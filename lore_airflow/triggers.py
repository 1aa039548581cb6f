"""``LoreFailedEntryTrigger``: the deferrable half of ``LoreFailedEntrySensor``.

It polls the failure index from the triggerer (the blocking S3 call runs in a
thread, so the triggerer's event loop never stalls) and fires once failed
entries matching the filters exist.

Example::

    import asyncio
    from lore_airflow.triggers import LoreFailedEntryTrigger

    trigger = LoreFailedEntryTrigger(store="s3://my-bucket/.lore-s3", prefix="raw/", poke_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "lore_airflow.triggers.LoreFailedEntryTrigger"
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from .config import LoreSettings
from .tracking import tracker_for

__all__ = ["LoreFailedEntryTrigger", "find_failed_entries"]


def find_failed_entries(
    settings: LoreSettings,
    *,
    prefix: str | None = None,
    step: str | None = None,
    source_dag_id: str | None = None,
    source_task_id: str | None = None,
    buckets: list[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Unresolved failed entries from the failure index, as JSON-able dicts (for XCom).

    ``source_dag_id``/``source_task_id`` keep entries whose step was recorded by that
    DAG/task (Airflow steps are named ``dag_id.task_id``).
    """
    out: list[dict[str, Any]] = []
    for bucket in buckets or [None]:  # type: ignore[list-item]
        tracker = tracker_for(settings, bucket)
        for failed in tracker.list_failed(prefix=prefix, step=step):
            dag_part, _, task_part = failed.step.partition(".")
            if source_dag_id is not None and dag_part != source_dag_id:
                continue
            if source_task_id is not None and task_part != source_task_id:
                continue
            out.append(
                {
                    "file_key": failed.file_key,
                    "entry_id": failed.entry_id,
                    "step": failed.step,
                    "bucket": failed.bucket,
                    "failed_at": failed.failed_at.isoformat() if failed.failed_at else None,
                }
            )
            if limit is not None and len(out) >= limit:
                return out
    return out


class LoreFailedEntryTrigger(BaseTrigger):
    """Fires a ``TriggerEvent({"status": "success", "entries": [...]})`` once failed entries exist."""

    def __init__(
        self,
        store: str | None = None,
        *,
        prefix: str | None = None,
        step: str | None = None,
        source_dag_id: str | None = None,
        source_task_id: str | None = None,
        buckets: list[str] | None = None,
        limit: int | None = None,
        aws_conn_id: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        poke_interval: float = 30.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.store = store
        self.prefix = prefix
        self.step = step
        self.source_dag_id = source_dag_id
        self.source_task_id = source_task_id
        self.buckets = buckets
        self.limit = limit
        self.aws_conn_id = aws_conn_id
        self.endpoint_url = endpoint_url
        self.region = region
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "store": self.store,
                "prefix": self.prefix,
                "step": self.step,
                "source_dag_id": self.source_dag_id,
                "source_task_id": self.source_task_id,
                "buckets": self.buckets,
                "limit": self.limit,
                "aws_conn_id": self.aws_conn_id,
                "endpoint_url": self.endpoint_url,
                "region": self.region,
                "poke_interval": self.poke_interval,
            },
        )

    def _find(self) -> list[dict[str, Any]]:
        settings = LoreSettings.from_airflow(
            store=self.store, aws_conn_id=self.aws_conn_id, endpoint_url=self.endpoint_url, region=self.region
        )
        return find_failed_entries(
            settings,
            prefix=self.prefix,
            step=self.step,
            source_dag_id=self.source_dag_id,
            source_task_id=self.source_task_id,
            buckets=self.buckets,
            limit=self.limit,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                entries = await asyncio.to_thread(self._find)
            except Exception as exc:
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})  # type: ignore[no-untyped-call]
                return
            if entries:
                yield TriggerEvent({"status": "success", "entries": entries})  # type: ignore[no-untyped-call]
                return
            await asyncio.sleep(self.poke_interval)
