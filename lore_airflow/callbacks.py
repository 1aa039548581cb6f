"""Per-task tracking with Airflow's own callbacks: ``**lore_callbacks(store=...)``.

Example::

    from airflow.sdk import Asset, task
    from lore_airflow import lore_callbacks

    @task(
        inlets=[Asset("s3://my-bucket/raw/orders.csv")],
        outlets=[Asset("s3://my-bucket/clean/orders.parquet")],
        **lore_callbacks(store="s3://my-bucket/.lore-s3"),
    )
    def clean() -> dict[str, int]:
        return {"rows": 42}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .config import LoreSettings
from .tracking import TaskTracking, guarded, push_touched_files

__all__ = ["LoreCallback", "lore_callbacks"]

OWNER = "callbacks"


class LoreCallback:
    """One of the callables ``lore_callbacks`` returns; the listener recognises them and stays out."""

    lore_owned = True

    def __init__(self, phase: str, overrides: dict[str, Any], inlets: list[Any], outlets: list[Any]) -> None:
        self.phase = phase
        self._overrides = overrides
        self._inlets = inlets
        self._outlets = outlets

    def __repr__(self) -> str:
        return f"LoreCallback({self.phase!r})"

    def settings(self) -> LoreSettings:
        # Read at run time, on the worker: the DAG file never needs Airflow's config.
        return LoreSettings.from_airflow(**self._overrides)

    def __call__(self, context: Any, result: Any = None) -> None:
        settings = self.settings()
        ti = context["ti"]
        if self.phase == "start":
            with guarded(settings, f"the start of {ti.dag_id}.{ti.task_id}"):
                TaskTracking.begin(
                    ti,
                    context.get("task") or ti.task,
                    context,
                    settings,
                    owner=OWNER,
                    extra_inlets=self._inlets,
                    extra_outlets=self._outlets,
                )
        elif self.phase == "result":
            TaskTracking.remember_result(ti, result)
            if settings.raise_on_error:
                # Airflow logs and swallows callback errors; post_execute is where a
                # tracking error can still fail the task, so raise mode finishes here.
                with guarded(settings, f"the success of {ti.dag_id}.{ti.task_id}"):
                    push_touched_files(ti, TaskTracking.succeed(ti))
        elif self.phase == "success":
            with guarded(settings, f"the success of {ti.dag_id}.{ti.task_id}"):
                push_touched_files(ti, TaskTracking.succeed(ti))
        elif self.phase == "failure":
            with guarded(settings, f"the failure of {ti.dag_id}.{ti.task_id}"):
                push_touched_files(ti, TaskTracking.fail(ti, context.get("exception")))


def lore_callbacks(
    store: str | None = None,
    *,
    aws_conn_id: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    raise_on_error: bool | None = None,
    hook_lineage: bool | None = None,
    lease_seconds: float | None = None,
    writable_buckets: Iterable[str] | None = None,
    inlets: Iterable[Any] = (),
    outlets: Iterable[Any] = (),
) -> dict[str, Any]:
    """Keyword arguments for ``@task(...)`` or any operator that make Lore track the task.

    For each ``s3://`` inlet an entry is begun (step ``dag_id.task_id``) and its lease
    renewed by a heartbeat while the task runs; on success each ``s3://`` outlet is
    registered as derived from the inlets; on failure (and on each retry) the error is
    recorded. Options left as None come from ``[lore]`` in Airflow's config
    (``lease_seconds`` and ``writable_buckets`` too). Histories are written only into the
    store's bucket and ``writable_buckets``; files of other buckets appear as refs.
    ``inlets``/``outlets`` add templated keys to the task's own, e.g.
    ``inlets=["s3://bucket/raw/{{ op_kwargs.name }}"]`` for a mapped task.

    A tracking error is logged at ERROR and the task goes on. With
    ``raise_on_error=True`` it fails the task (``LoreTrackingError``); tracking then
    starts in ``pre_execute`` and finishes in ``post_execute`` (Airflow swallows
    exceptions raised by callbacks).
    """
    overrides: dict[str, Any] = {
        "store": store,
        "aws_conn_id": aws_conn_id,
        "endpoint_url": endpoint_url,
        "region": region,
        "raise_on_error": raise_on_error,
        "hook_lineage": hook_lineage,
        "lease_seconds": lease_seconds,
        "writable_buckets": tuple(writable_buckets) if writable_buckets is not None else None,
    }
    extra_in, extra_out = list(inlets), list(outlets)

    def make(phase: str) -> LoreCallback:
        return LoreCallback(phase, overrides, extra_in, extra_out)

    kwargs: dict[str, Any] = {
        "on_execute_callback": [make("start")],
        "on_success_callback": [make("success")],
        "on_failure_callback": [make("failure")],
        # A try that will be retried ends here, not in on_failure_callback.
        "on_retry_callback": [make("failure")],
        "post_execute": _post_execute(make("result")),
    }
    if raise_on_error:
        kwargs["pre_execute"] = _pre_execute(make("start"))
    return kwargs


def _pre_execute(callback: LoreCallback) -> Callable[[Any], None]:
    def pre_execute(context: Any) -> None:
        callback(context)

    pre_execute.lore_owned = True  # type: ignore[attr-defined]
    return pre_execute


def _post_execute(callback: LoreCallback) -> Callable[[Any, Any], None]:
    def post_execute(context: Any, result: Any = None) -> None:
        callback(context, result)

    post_execute.lore_owned = True  # type: ignore[attr-defined]
    return post_execute


def has_lore_callbacks(task: Any) -> bool:
    """True when the task carries callbacks made by ``lore_callbacks`` (the listener then stays out)."""
    for name in ("on_execute_callback", "on_success_callback", "on_failure_callback"):
        callbacks = getattr(task, name, None) or []
        if not isinstance(callbacks, list):
            callbacks = [callbacks]
        if any(getattr(cb, "lore_owned", False) for cb in callbacks):
            return True
    return False
