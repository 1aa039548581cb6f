"""``LoreReplayOperator``: replay one failed entry; map it over the sensor's output.

With no handler given, a failure recorded by a ``@task`` (or ``PythonOperator``) is
replayed by calling that task's own callable again with its recorded arguments
(see ``lore_airflow.replay`` for the whole order).

Example::

    from airflow.sdk import DAG
    from lore_airflow import LoreFailedEntrySensor, LoreReplayOperator

    with DAG("replay_failures", schedule=None):
        failed = LoreFailedEntrySensor(task_id="find_failures", store="s3://my-bucket/.lore-s3")
        LoreReplayOperator.partial(task_id="replay", store="s3://my-bucket/.lore-s3").expand(entry=failed.output)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator

from lore_core import StepContext
from lore_core.integration import s3_url

from .config import LoreSettings
from .links import LoreLineageLink
from .replay import resolve_handler
from .tracking import push_touched_files, ti_orchestrator, tracker_for

__all__ = ["LoreReplayOperator"]


class LoreReplayOperator(BaseOperator):
    """Run a failed entry's step again with its recorded input; the new entry has ``replayOf``.

    ``entry`` is one item of ``LoreFailedEntrySensor``'s XCom (``file_key``, ``entry_id``,
    ``bucket``; ``step`` is informative). The handler is ``handler`` (a callable taking a
    ``lore_core.StepContext``, or a dotted path ``"package.module:function"`` imported in
    the worker), else the step registered as ``handler_name``, else the step registered
    under the entry's own step name (``lore_core.register_step``), else the original
    task's callable (``@task``/``PythonOperator``), called with the recorded
    ``op_args``/``op_kwargs``; what it writes through ``S3Hook`` into the tracker's bucket
    becomes the replay's ``produces``. A successful replay resolves the failure, which
    leaves the failure index. A failed replay fails the task unless
    ``fail_on_error=False``. Returns a JSON-able summary.
    """

    template_fields: Sequence[str] = ("store", "entry", "handler_name")
    # The replay records its own entry; the listener must not add a second one.
    lore_self_tracking = True
    operator_extra_links = (LoreLineageLink(),)
    ui_color = "#d8e8f4"

    def __init__(
        self,
        *,
        entry: dict[str, Any],
        store: str | None = None,
        handler: Callable[[StepContext], Any] | str | None = None,
        handler_name: str | None = None,
        force: bool = False,
        fail_on_error: bool = True,
        aws_conn_id: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entry = entry
        self.store = store
        self.handler = handler
        self.handler_name = handler_name
        self.force = force
        self.fail_on_error = fail_on_error
        self.aws_conn_id = aws_conn_id
        self.endpoint_url = endpoint_url
        self.region = region

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        entry = self.entry
        if not isinstance(entry, dict) or "file_key" not in entry or "entry_id" not in entry:
            raise AirflowException(f"LoreReplayOperator needs entry={{'file_key', 'entry_id', ...}}, got {entry!r}")
        settings = LoreSettings.from_airflow(
            store=self.store, aws_conn_id=self.aws_conn_id, endpoint_url=self.endpoint_url, region=self.region
        )
        tracker = tracker_for(settings, entry.get("bucket"))
        handler = resolve_handler(
            handler=self.handler,
            handler_name=self.handler_name,
            tracker=tracker,
            settings=settings,
            file_key=entry["file_key"],
            entry_id=entry["entry_id"],
            context=context,
        )
        ti = context["ti"]
        result = tracker.replay(
            entry["file_key"], entry["entry_id"], handler, force=self.force, orchestrator=ti_orchestrator(ti)
        )
        uri = s3_url(tracker.bucket, result.file_key)
        push_touched_files(ti, [uri])
        summary = {
            "file_key": result.file_key,
            "bucket": tracker.bucket,
            "step": result.step,
            "status": str(result.status),
            "entry_id": result.entry_id,
            "replay_of": result.replay_of,
            "error": result.error.message if result.error is not None else None,
        }
        self.log.info("Lore replay of %s entry %s: %s", uri, entry["entry_id"], result.status)
        if not result.ok and self.fail_on_error:
            raise AirflowException(f"replay of {uri} entry {entry['entry_id']} failed: {summary['error']}")
        return summary
