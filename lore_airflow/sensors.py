"""``LoreFailedEntrySensor``: wait until failed entries exist, then hand them to XCom.

Example::

    from airflow.sdk import DAG
    from lore_airflow import LoreFailedEntrySensor, LoreReplayOperator

    with DAG("replay_failures", schedule=None):
        failed = LoreFailedEntrySensor(
            task_id="find_failures",
            store="s3://my-bucket/.lore-s3",
            prefix="raw/",
            source_dag_id="orders",
            mode="reschedule",
        )
        LoreReplayOperator.partial(task_id="replay", store="s3://my-bucket/.lore-s3").expand(entry=failed.output)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf

from .config import LoreSettings
from .triggers import LoreFailedEntryTrigger, find_failed_entries

__all__ = ["LoreFailedEntrySensor"]


class LoreFailedEntrySensor(BaseSensorOperator):
    """Succeeds when the failure index holds entries matching the filters; its XCom is the list.

    Each item is ``{"file_key", "entry_id", "step", "bucket", "failed_at"}``, ready for
    ``LoreReplayOperator.partial(...).expand(entry=sensor.output)``. Works in ``poke``
    and ``reschedule`` mode, and with ``deferrable=True`` (default: ``[operators]
    default_deferrable``) pokes once and, when nothing matches yet, waits in the triggerer
    (``LoreFailedEntryTrigger``). Filters: ``prefix`` (file keys), ``step``,
    ``source_dag_id``/``source_task_id`` (the DAG/task that recorded the failure).
    """

    template_fields: Sequence[str] = ("store", "prefix", "step", "source_dag_id", "source_task_id")
    ui_color = "#f4d8cd"

    def __init__(
        self,
        *,
        store: str | None = None,
        prefix: str | None = None,
        step: str | None = None,
        source_dag_id: str | None = None,
        source_task_id: str | None = None,
        buckets: list[str] | None = None,
        limit: int | None = None,
        aws_conn_id: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        self.deferrable = deferrable

    def _settings(self) -> LoreSettings:
        return LoreSettings.from_airflow(
            store=self.store, aws_conn_id=self.aws_conn_id, endpoint_url=self.endpoint_url, region=self.region
        )

    def _find(self) -> list[dict[str, Any]]:
        return find_failed_entries(
            self._settings(),
            prefix=self.prefix,
            step=self.step,
            source_dag_id=self.source_dag_id,
            source_task_id=self.source_task_id,
            buckets=self.buckets,
            limit=self.limit,
        )

    def poke(self, context: Any) -> PokeReturnValue:
        entries = self._find()
        self.log.info("Lore: %d failed entr%s match", len(entries), "y" if len(entries) == 1 else "ies")
        return PokeReturnValue(is_done=bool(entries), xcom_value=entries or None)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One poke first: entries that already exist need no trip through the triggerer.
        entries = self._find()
        if entries:
            self.log.info(
                "Lore: %d failed entr%s match; not deferring", len(entries), "y" if len(entries) == 1 else "ies"
            )
            return entries
        # Waiting happens in the triggerer: no worker slot is held while nothing has failed.
        self.log.info("Lore: no failed entry matches yet; deferring to LoreFailedEntryTrigger")
        self.defer(
            trigger=LoreFailedEntryTrigger(
                store=self._settings().store,
                prefix=self.prefix,
                step=self.step,
                source_dag_id=self.source_dag_id,
                source_task_id=self.source_task_id,
                buckets=self.buckets,
                limit=self.limit,
                aws_conn_id=self.aws_conn_id,
                endpoint_url=self.endpoint_url,
                region=self.region,
                poke_interval=float(self.poke_interval),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if not event or event.get("status") != "success":
            from airflow.sdk.exceptions import AirflowException

            raise AirflowException(f"Lore failed-entry trigger ended without entries: {event!r}")
        entries: list[dict[str, Any]] = event["entries"]
        return entries
