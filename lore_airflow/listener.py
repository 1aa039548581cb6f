"""Tracking with nothing per task: the plugin's listener.

With ``[lore] store`` set, every task whose inlets or outlets include ``s3://``
assets (or that reads/writes S3 through ``S3Hook``, see ``hook_lineage``) is
tracked. Tasks that carry ``lore_callbacks(...)`` are left to their callbacks.

Example (``airflow.cfg``)::

    [lore]
    store = s3://my-bucket/.lore-s3
    aws_conn_id = aws_default
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

from .callbacks import has_lore_callbacks
from .config import LoreSettings
from .tracking import TaskTracking, guarded, push_touched_files

__all__ = ["LoreListener", "lore_listener"]

log = logging.getLogger("lore.airflow")

OWNER = "listener"


def _runtime_ti(task_instance: Any) -> bool:
    # The API server also emits these events (state set from the UI) with a database
    # TaskInstance; only the task runner's instance knows the task and its context.
    return type(task_instance).__module__.startswith("airflow.sdk") and hasattr(task_instance, "task")


class LoreListener:
    """Airflow listener: starts entries when a task runs and finishes them when it ends."""

    @staticmethod
    def _settings() -> LoreSettings | None:
        try:
            settings = LoreSettings.from_airflow()
        except Exception as exc:  # a bad config must not break every task in the deployment
            log.warning("Lore listener disabled: cannot read [lore] config: %s", exc)
            return None
        if not settings.store or not settings.listener:
            return None
        return settings

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        if not _runtime_ti(task_instance):
            return
        settings = self._settings()
        task = task_instance.task
        if settings is None or has_lore_callbacks(task) or getattr(task, "lore_self_tracking", False):
            return
        with guarded(settings, f"the start of {task_instance.dag_id}.{task_instance.task_id}"):
            context = task_instance.get_template_context()
            TaskTracking.begin(task_instance, task_instance.task, context, settings, owner=OWNER)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        if not _runtime_ti(task_instance) or TaskTracking.owner(task_instance) != OWNER:
            return
        settings = self._settings() or LoreSettings.from_airflow()
        with guarded(settings, f"the success of {task_instance.dag_id}.{task_instance.task_id}"):
            output, has_output = None, False
            if getattr(task_instance.task, "do_xcom_push", False) and TaskTracking.has_work(task_instance):
                # The listener is not handed the return value; the task's XCom holds it.
                output = task_instance.xcom_pull(
                    task_ids=task_instance.task_id, map_indexes=task_instance.map_index, default=None
                )
                has_output = output is not None
            push_touched_files(task_instance, TaskTracking.succeed(task_instance, output, has_output=has_output))

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any = None) -> None:
        if not _runtime_ti(task_instance) or TaskTracking.owner(task_instance) != OWNER:
            return
        settings = self._settings() or LoreSettings.from_airflow()
        with guarded(settings, f"the failure of {task_instance.dag_id}.{task_instance.task_id}"):
            push_touched_files(task_instance, TaskTracking.fail(task_instance, error))


lore_listener = LoreListener()
"""The instance the plugin registers."""
