"""The one place that turns a task instance's life into Lore entries.

Callbacks and the listener both call :class:`TaskTracking`; it keeps, per task
instance try, the steps it began with the core's ``tracker.begin()`` (an
``ActiveStep`` per file, whose lease a heartbeat renews while the task runs), so
whichever of them comes first records and the other finds the work done (no double
entries when both are active). Tracking errors follow ``lore_core.integration``'s
policy: logged at ERROR, raised only with ``raise_on_error``.

Example::

    from lore_airflow.tracking import parse_s3_uri

    assert parse_s3_uri("s3://my-bucket/raw/orders.csv") == ("my-bucket", "raw/orders.csv")
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from lore_core import (
    ActiveStep,
    HistoryEntry,
    InvalidKeyError,
    LineageRef,
    LoreConfigError,
    LoreTracker,
    OrchestratorInfo,
)
from lore_core.ids import utc_now
from lore_core.integration import (
    TrackingError,
    error_policy,
    is_s3_url,
    orchestrator_info,
    parse_s3_url,
    s3_url,
    tracking_errors,
)

from .config import LoreSettings
from .hooks import LoreHook, make_tracker, store_bucket_and_prefix

__all__ = [
    "CALLABLE_KEY",
    "LoreTrackingError",
    "S3Object",
    "TaskTracking",
    "hook_for",
    "parse_s3_uri",
    "store_bucket_and_prefix",
    "task_callable_ref",
    "task_instance_url",
    "ti_orchestrator",
    "tracker_for",
]

log = logging.getLogger("lore.airflow")

XCOM_FILES_KEY = "lore_files"


#: Raised instead of logging when ``raise_on_error`` is set (a ``RuntimeError``; the cause is chained).
LoreTrackingError = TrackingError


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return s3_url(self.bucket, self.key)


def parse_s3_uri(uri: object) -> tuple[str, str] | None:
    """``(bucket, key)`` for ``s3://bucket/key``; None for anything else (other schemes, no key)."""
    if not is_s3_url(uri):
        return None
    try:
        return parse_s3_url(uri)
    except InvalidKeyError:
        return None


# ---------------------------------------------------------------------- trackers


_trackers: dict[tuple[LoreSettings, str | None], LoreTracker] = {}
_hooks: dict[tuple[str | None, str | None, str | None], LoreHook] = {}
_trackers_lock = threading.Lock()


def can_write(settings: LoreSettings, bucket: str) -> bool:
    """True when Lore may write histories in ``bucket``: the store's, or one in ``[lore] writable_buckets``.

    ``file://`` and ``memory://`` stores hold every bucket's files in the one store.
    """
    default_bucket, _ = store_bucket_and_prefix(settings.store or "")
    return default_bucket is None or bucket == default_bucket or bucket in settings.writable_buckets


def hook_for(settings: LoreSettings) -> LoreHook:
    """The process's ``LoreHook`` for the connection these settings name: one session, one S3 client."""
    key = (settings.aws_conn_id, settings.endpoint_url, settings.region)
    with _trackers_lock:
        found = _hooks.get(key)
        if found is None:
            found = _hooks[key] = LoreHook(settings=settings)
        return found


def prepare_connection(settings: LoreSettings) -> None:
    """Fetch the Airflow connection of the process's ``LoreHook`` now, in the calling thread."""
    if settings.store and is_s3_url(settings.store):
        _ = hook_for(settings).conn_config


def tracker_for(settings: LoreSettings, bucket: str | None = None) -> LoreTracker:
    """The tracker for files of ``bucket`` (default: the store's bucket; same prefix in every bucket).

    Built once per process and reused across tasks, with the S3 client of ``hook_for(settings)``
    (``LoreHook``: from the Airflow connection). Lore writes through it only when
    ``can_write(settings, bucket)``; for any other bucket it only reads. ``file://`` and
    ``memory://`` stores hold every bucket's files in the one store.
    """
    if not settings.store:
        raise LoreConfigError("no Lore store configured: set [lore] store (AIRFLOW__LORE__STORE) or pass store=")
    default_bucket, _ = store_bucket_and_prefix(settings.store)
    cache_key = (settings, None if default_bucket is None else bucket or default_bucket)
    with _trackers_lock:
        found = _trackers.get(cache_key)
        if found is not None:
            return found
    tracker = make_tracker(settings, bucket, hook_for(settings).get_s3_client)
    with _trackers_lock:
        return _trackers.setdefault(cache_key, tracker)


def clear_tracker_cache() -> None:
    """Forget cached trackers (tests, or after a connection changed)."""
    with _trackers_lock:
        _trackers.clear()
        _hooks.clear()


# ---------------------------------------------------------------------- task instance facts


def task_instance_url(dag_id: str, run_id: str, task_id: str, map_index: int | None, try_number: int | None) -> str:
    """The task instance's page in the Airflow 3 UI (``[api] base_url``)."""
    from airflow.sdk.configuration import conf

    base = str(conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/")
    url = f"{base.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id)}"
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    if try_number:
        url += f"?try_number={try_number}"
    return url


def dag_run_facts(ti: Any) -> dict[str, Any]:
    """The DAG run's ``logicalDate`` (else ``runAfter``, as ISO 8601 to the microsecond) and ``clearNumber``.

    What Airflow's OpenLineage provider makes the run ids of a task instance and its DAG run
    from, so that Lore's OpenLineage runs can name them as their parent (``lore_core.openlineage``).
    """
    try:
        # The task SDK's RuntimeTaskInstance has the DAG run the API server sent; airflow-core's its own.
        from_server = getattr(ti, "_ti_context_from_server", None)
        dag_run = getattr(from_server, "dag_run", None) or getattr(ti, "dag_run", None)
        if dag_run is None:
            return {}
        facts: dict[str, Any] = {}
        logical_date, run_after = getattr(dag_run, "logical_date", None), getattr(dag_run, "run_after", None)
        if isinstance(logical_date, datetime):
            facts["logicalDate"] = logical_date.isoformat()
        elif isinstance(run_after, datetime):
            facts["runAfter"] = run_after.isoformat()
        clear_number = getattr(dag_run, "clear_number", None)
        if isinstance(clear_number, int):
            facts["clearNumber"] = clear_number
        return facts
    except Exception as exc:  # a detached ORM object, an older SDK: the entry just lacks them
        log.debug("Lore: no DAG run facts for %s.%s: %s", getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?"), exc)
        return {}


def ti_orchestrator(ti: Any) -> OrchestratorInfo:
    """The task instance try as Lore's ``OrchestratorInfo``: run, DAG, task, try, map index, UI link,
    and the DAG run's logical date and clear number (``dag_run_facts``)."""
    _, _, _, map_index, try_number = ti_key(ti)
    return orchestrator_info(
        "airflow",
        ti.run_id,
        ti.dag_id,
        ti.task_id,
        try_number=try_number,
        map_index=map_index,
        url=task_instance_url(ti.dag_id, ti.run_id, ti.task_id, map_index, try_number),
        **dag_run_facts(ti),
    )


def _jsonable_only(value: Any) -> Any:
    """``value`` when JSON can hold it; for a mapping, the JSON-able items only; else None."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            kept = _jsonable_only(v)
            if kept is not None and isinstance(k, str):
                out[k] = kept
        return out or None
    if isinstance(value, (list, tuple)):
        items = [_jsonable_only(v) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value, strict=True)) else None
    return None


def task_arguments(task: Any) -> tuple[dict[str, Any], list[Any]]:
    """The callable's arguments by name (positional ones bound to their names), and unbound leftovers."""
    op_kwargs = dict(getattr(task, "op_kwargs", None) or {})
    op_args = list(getattr(task, "op_args", None) or [])
    fn = getattr(task, "python_callable", None)
    if op_args and fn is not None:
        try:
            bound = inspect.signature(fn).bind_partial(*op_args, **op_kwargs)
        except (TypeError, ValueError):
            return op_kwargs, op_args
        return dict(bound.arguments), []
    return op_kwargs, op_args


def task_input(task: Any, context: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The rendered ``params`` and the callable's arguments (``op_kwargs``, ``op_args``), where JSON-able."""
    out: dict[str, Any] = {}
    params = context.get("params") if context is not None else getattr(task, "params", None)
    if params:
        kept = _jsonable_only(dict(params))
        if kept:
            out["params"] = kept
    op_kwargs, op_args = task_arguments(task)
    for name, value in (("op_kwargs", op_kwargs), ("op_args", op_args)):
        if value:
            kept = _jsonable_only(value)
            if kept:
                out[name] = kept
    return out or None


#: Metadata key of the task's callable (``module``, ``qualname``, ``dagFile``): how a replay finds it again.
CALLABLE_KEY = "airflowCallable"


def _dag_file(task: Any) -> str | None:
    """The task's DAG file relative to its bundle (the dags folder), else as Airflow knows it."""
    try:
        dag = getattr(task, "dag", None)
    except Exception:  # an operator outside a DAG raises on .dag
        return None
    if dag is None:
        return None
    relative = getattr(dag, "relative_fileloc", None)
    fileloc = getattr(dag, "fileloc", None)
    if relative and not str(relative).startswith("/"):
        return str(relative)
    if not fileloc:
        return None
    from airflow.sdk.configuration import conf

    folder = str(conf.get("core", "dags_folder", fallback="") or "")
    if folder:
        try:
            return str(Path(fileloc).resolve().relative_to(Path(folder).resolve()))
        except ValueError:
            pass
    return str(fileloc)


def task_callable_ref(task: Any) -> dict[str, str] | None:
    """Where the task's ``python_callable`` lives (``@task``, ``PythonOperator``); None for other operators."""
    fn = getattr(task, "python_callable", None)
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if fn is None or not isinstance(module, str) or not isinstance(qualname, str):
        return None
    ref = {"module": module, "qualname": qualname}
    dag_file = _dag_file(task)
    if dag_file:
        ref["dagFile"] = dag_file
    return ref


def _render(value: str, task: Any, context: Mapping[str, Any] | None) -> str:
    if "{{" not in value or context is None:
        return value
    # op_kwargs as a name of its own (positional arguments included): mapped tasks
    # name their file with it, e.g. "s3://bucket/raw/{{ op_kwargs.name }}".
    extra = {"op_kwargs": task_arguments(task)[0]}
    rendered = task.render_template(value, {**dict(context), **extra})
    return str(rendered)


def resolve_s3_objects(items: Iterable[Any], task: Any, context: Mapping[str, Any] | None) -> list[S3Object]:
    """``s3://`` objects among inlets/outlets: ``Asset``s, plain strings, templated strings.

    Other schemes are not Lore's business; an ``s3://`` URL that names no object (no
    key) is left out with a warning that quotes it.
    """
    out: list[S3Object] = []
    for item in items or ():
        uri = item if isinstance(item, str) else getattr(item, "uri", None)
        if not isinstance(uri, str):
            continue
        uri = _render(unquote(uri) if "%7B%7B" in uri else uri, task, context)
        if not is_s3_url(uri):
            continue
        try:
            obj = S3Object(*parse_s3_url(uri))
        except InvalidKeyError as exc:
            log.warning("Lore: not tracking inlet/outlet of %s: %s", getattr(task, "task_id", task), exc)
            continue
        if obj not in out:
            out.append(obj)
    return out


# ---------------------------------------------------------------------- hook lineage snapshot


def _collector() -> Any:
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # pragma: no cover - older Airflow
        return None
    return get_hook_lineage_collector()


def hook_lineage_snapshot() -> dict[str, int]:
    """Counts per collected S3 asset so far; the collector lives per process and is never reset."""
    collector = _collector()
    if collector is None or not getattr(collector, "has_collected", False):
        return {}
    snap: dict[str, int] = {}
    lineage = collector.collected_assets
    for kind, items in (("in", lineage.inputs), ("out", lineage.outputs)):
        for info in items:
            key = f"{kind} {info.asset.uri} {id(info.context)}"
            snap[key] = snap.get(key, 0) + info.count
    return snap


def hook_lineage_since(before: Mapping[str, int]) -> tuple[list[S3Object], list[S3Object]]:
    """S3 objects read and written through hooks since ``before`` was taken."""
    after = hook_lineage_snapshot()
    inputs: list[S3Object] = []
    outputs: list[S3Object] = []
    for key, count in after.items():
        if count <= before.get(key, 0):
            continue
        kind, uri, _ = key.split(" ", 2)
        parsed = parse_s3_uri(uri)
        if parsed is None:
            continue
        target = inputs if kind == "in" else outputs
        if S3Object(*parsed) not in target:
            target.append(S3Object(*parsed))
    return inputs, outputs


# ---------------------------------------------------------------------- the recorder


@dataclass
class _Started:
    settings: LoreSettings
    step: str
    input: Any
    orchestrator: OrchestratorInfo
    inlets: list[S3Object]
    outlets: list[S3Object]
    started_at: datetime
    hook_before: dict[str, int]
    owner: str
    metadata: dict[str, Any] | None
    # (bucket, key) -> the step begun on that file (its heartbeat runs until it is finished)
    entries: dict[tuple[str, str], ActiveStep] = field(default_factory=dict)
    result: Any = None
    has_result: bool = False
    #: Begins the entries while the task runs (None: begun already).
    begun: threading.Thread | None = None

    def wait_begun(self) -> None:
        begun = self.begun
        if begun is not None and begun is not threading.current_thread():
            begun.join()


TIKey = tuple[str, str, str, int, int]

_active: dict[TIKey, _Started] = {}
_done: set[TIKey] = set()
_active_lock = threading.Lock()


def _callable_metadata(task: Any) -> dict[str, Any] | None:
    ref = task_callable_ref(task)
    return {CALLABLE_KEY: ref} if ref else None


def ti_key(ti: Any) -> TIKey:
    map_index = getattr(ti, "map_index", -1)
    return (ti.dag_id, ti.task_id, ti.run_id, -1 if map_index is None else int(map_index), int(ti.try_number or 1))


def guarded(settings: LoreSettings, what: str) -> AbstractContextManager[None]:
    """``lore_core.integration.tracking_errors`` with these settings: log at ERROR, raise with ``raise_on_error``."""
    return tracking_errors(what, raise_on_error=settings.raise_on_error, logger=log)


class _EachFile:
    """Guards the write of each file; with ``raise_on_error`` the first error is raised once every file was tried.

    So one unreachable bucket never leaves the other files' steps unfinished (their
    heartbeats would otherwise renew them for as long as the process lives).
    """

    def __init__(self, settings: LoreSettings) -> None:
        self.settings = settings
        self.first: TrackingError | None = None

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        try:
            with guarded(self.settings, what):
                yield
        except TrackingError as exc:
            self.first = self.first or exc

    def raise_first(self) -> None:
        if self.first is not None:
            raise self.first


class TaskTracking:
    """Start and finish Lore entries for one task instance try.

    ``owner`` names who started the tracking ("callbacks" or "listener"); the
    other path sees it and stays out.
    """

    @staticmethod
    def begin(
        ti: Any,
        task: Any,
        context: Mapping[str, Any] | None,
        settings: LoreSettings,
        *,
        owner: str,
        extra_inlets: Iterable[Any] = (),
        extra_outlets: Iterable[Any] = (),
    ) -> bool:
        """Record a running entry on each S3 inlet (or, with none, each outlet). False if nothing to track."""
        key = ti_key(ti)
        with _active_lock:
            if key in _active or key in _done:
                return False
        inlets = resolve_s3_objects([*(getattr(task, "inlets", None) or []), *extra_inlets], task, context)
        outlets = resolve_s3_objects([*(getattr(task, "outlets", None) or []), *extra_outlets], task, context)
        # Entries go on the files Lore may write: the inlets, or the outlets of a task that reads none.
        targets = [o for o in inlets if can_write(settings, o.bucket)] or [
            o for o in outlets if can_write(settings, o.bucket)
        ]
        if not targets and not settings.hook_lineage:
            if inlets or outlets:
                log.info(
                    "Lore: not tracking %s.%s: none of its files is in a bucket Lore may write "
                    "(the store's, or [lore] writable_buckets)",
                    ti.dag_id,
                    ti.task_id,
                )
            return False
        orchestrator = ti_orchestrator(ti)
        started = _Started(
            settings=settings,
            step=f"{ti.dag_id}.{ti.task_id}",
            input=task_input(task, context),
            orchestrator=orchestrator,
            inlets=inlets,
            outlets=outlets,
            started_at=utc_now(),
            hook_before=hook_lineage_snapshot() if settings.hook_lineage else {},
            owner=owner,
            metadata=_callable_metadata(task),
        )
        with _active_lock:
            if key in _active or key in _done:
                return False
            _active[key] = started
        if settings.raise_on_error:
            TaskTracking._begin_entries(started, targets, outlets, key)  # its errors must fail the task now
        else:
            # Off the task's critical path: building the S3 client (once per process, ~150 ms) and
            # the store's self-check happen while the task runs; finishing waits for them. The
            # connection itself is fetched here: the task SDK's channel to the supervisor is the
            # task's own, and must not be used from a second thread while the task uses it.
            try:
                prepare_connection(settings)
            except Exception:
                # Told by the start itself, in this thread (never fetch the connection from another).
                TaskTracking._begin_entries(started, targets, outlets, key)
                return True
            started.begun = threading.Thread(
                target=TaskTracking._begin_entries,
                args=(started, targets, outlets, key),
                name=f"lore-begin-{ti.task_id}",
                daemon=True,
            )
            started.begun.start()
        return True

    @staticmethod
    def _begin_entries(started: _Started, targets: list[S3Object], outlets: list[S3Object], key: TIKey) -> None:
        settings, orchestrator = started.settings, started.orchestrator
        for obj in targets:
            with guarded(settings, f"the start of {started.step} on {obj.uri}"):
                active = tracker_for(settings, obj.bucket).begin(
                    obj.key,
                    started.step,
                    started.input,
                    orchestrator=orchestrator,
                    attempt=key[4],
                    description=f"Airflow task {key[1]} of DAG {key[0]}",
                    metadata=started.metadata,
                    on_error=error_policy(settings.raise_on_error),
                    logger=log,
                    # The outlets it will be linked to: read while the task runs, linked in one write.
                    prefetch=[o.key for o in outlets if o.bucket == obj.bucket and o != obj],
                )
                if active.tracked:  # else the core logged why, and the task runs untracked on this file
                    started.entries[(obj.bucket, obj.key)] = active

    @staticmethod
    def remember_result(ti: Any, result: Any) -> None:
        with _active_lock:
            started = _active.get(ti_key(ti))
        if started is not None:
            started.result, started.has_result = result, True

    @staticmethod
    def owner(ti: Any) -> str | None:
        with _active_lock:
            started = _active.get(ti_key(ti))
        return started.owner if started is not None else None

    @staticmethod
    def has_work(ti: Any) -> bool:
        """True when finishing will write something: entries were started, or hooks touched S3 since."""
        with _active_lock:
            started = _active.get(ti_key(ti))
        if started is None:
            return False
        started.wait_begun()
        if started.entries or started.inlets or started.outlets:
            return True
        if not started.settings.hook_lineage:
            return False
        hook_in, hook_out = hook_lineage_since(started.hook_before)
        return bool(hook_in or hook_out)

    @staticmethod
    def _pop(ti: Any) -> _Started | None:
        key = ti_key(ti)
        with _active_lock:
            started = _active.pop(key, None)
            if started is not None:
                _done.add(key)
        if started is not None:
            started.wait_begun()
        return started

    @staticmethod
    def succeed(ti: Any, output: Any = None, *, has_output: bool = False) -> list[str]:
        """Finish the entries as successful and link each S3 outlet to the inlets. Returns the touched URIs."""
        started = TaskTracking._pop(ti)
        if started is None:
            return []
        if started.has_result:
            output, has_output = started.result, True
        settings = started.settings
        hook_in: list[S3Object] = []
        hook_out: list[S3Object] = []
        if settings.hook_lineage:
            hook_in, hook_out = hook_lineage_since(started.hook_before)
        outlets = list(started.outlets)
        for obj in hook_out:
            if obj not in outlets and obj not in started.inlets:
                outlets.append(obj)
        output_value = _jsonable_only(output) if has_output else None

        def record_success(
            key: str, produces: Sequence[str] = (), derived_from: Sequence[LineageRef] = (), bucket: str | None = None
        ) -> HistoryEntry:
            # One finished entry for a file the task touched without a running entry of its own.
            return tracker_for(settings, bucket).record(
                key,
                started.step,
                "success",
                input=started.input,
                output=output_value,
                started_at=started.started_at,
                orchestrator=started.orchestrator,
                attempt=started.orchestrator.try_number,
                produces=produces,
                derived_from=derived_from,
                metadata=started.metadata,
            )

        def writable(obj: S3Object) -> bool:
            return can_write(settings, obj.bucket)

        # What the task read: its declared inlets, or else what it read through hooks.
        reads = list(started.inlets) or [o for o in hook_in if o not in outlets]
        # (file read, its entry id) for each read the outlets derive from; None: a file of a
        # bucket Lore may not write, which only ever appears as a ref naming its bucket.
        sources: list[tuple[S3Object, str | None]] = []
        each = _EachFile(settings)

        for obj in reads:
            if not writable(obj):
                sources.append((obj, None))
                continue
            same_bucket = [o.key for o in outlets if o.bucket == obj.bucket and o != obj and writable(o)]
            active = started.entries.get((obj.bucket, obj.key))
            with each.guard(f"the success of {started.step} on {obj.uri}"):
                if active is not None:
                    if active.succeed(output_value, produces=same_bucket) is not None:
                        sources.append((obj, active.entry_id))
                elif not started.inlets:
                    # A hook read in a bucket Lore writes: an entry of its own, as for an inlet.
                    entry = record_success(obj.key, produces=same_bucket, bucket=obj.bucket)
                    sources.append((obj, entry.id))

        # Outlets: their own entry when the task began one there (no writable inlets), or when it
        # declared no writable inlet and nothing it read has an entry (it read only other buckets,
        # or nothing); then derived from what it read (refs naming the other buckets).
        refs_only = not any(entry_id for _, entry_id in sources) and not any(writable(o) for o in started.inlets)
        foreign = [LineageRef(file_key=o.key, bucket=o.bucket) for o, entry_id in sources if entry_id is None]
        linked: set[S3Object] = set()
        for obj in outlets:
            if not writable(obj):
                continue
            active = started.entries.get((obj.bucket, obj.key))
            with each.guard(f"the success of {started.step} on {obj.uri}"):
                if active is not None:
                    active.succeed(output_value)
                elif refs_only:
                    record_success(obj.key, derived_from=foreign, bucket=obj.bucket)
                    linked.add(obj)

        # The links produces= and record() did not make: across buckets, on the sides Lore may write.
        for source, entry_id in sources:
            for obj in outlets:
                if obj == source or (entry_id is None and obj in linked):
                    continue
                if writable(obj):
                    if entry_id is not None and obj.bucket == source.bucket:
                        continue  # made by produces=
                    with each.guard(f"the link from {obj.uri} to {source.uri}"):
                        tracker_for(settings, obj.bucket).register_derived_file(
                            obj.key, source.key, entry_id, source_bucket=source.bucket
                        )
                elif entry_id is not None:
                    # An outlet in a bucket Lore may not write: the source's derivedTo names it.
                    with each.guard(f"the link from {source.uri} to {obj.uri}"):
                        tracker_for(settings, source.bucket).register_derived_file(
                            obj.key, source.key, entry_id, derived_bucket=obj.bucket
                        )
        each.raise_first()
        touched = [o.uri for o in [*started.inlets, *(s for s, _ in sources), *outlets] if writable(o)]
        return list(dict.fromkeys(touched))

    @staticmethod
    def fail(ti: Any, error: BaseException | str | None) -> list[str]:
        """Finish the entries as failed with the error's type and message."""
        started = TaskTracking._pop(ti)
        if started is None:
            return []
        if error is None:
            error = "task failed (Airflow passed no error)"
        settings = started.settings
        touched = []
        for (bucket, key), active in started.entries.items():
            # ActiveStep.fail logs what it could not record: the task's own error matters more.
            if active.fail(error) is not None:
                touched.append(s3_url(bucket, key))
        if not started.entries and settings.hook_lineage:
            # Nothing declared: the files the task read (or else wrote) through hooks before failing
            # carry the failure, in the buckets Lore may write.
            hook_in, hook_out = hook_lineage_since(started.hook_before)
            each = _EachFile(settings)
            targets = [o for o in hook_in if can_write(settings, o.bucket)] or [
                o for o in hook_out if can_write(settings, o.bucket)
            ]
            for obj in targets:
                with each.guard(f"the failure of {started.step} on {obj.uri}"):
                    tracker_for(settings, obj.bucket).record(
                        obj.key,
                        started.step,
                        "failed",
                        input=started.input,
                        error=error,
                        started_at=started.started_at,
                        orchestrator=started.orchestrator,
                        attempt=started.orchestrator.try_number,
                        metadata=started.metadata,
                    )
                    touched.append(obj.uri)
            each.raise_first()
        return touched


def push_touched_files(ti: Any, uris: list[str]) -> None:
    """Leave the touched files in XCom so the task instance's Lore link can find them."""
    if not uris:
        return
    try:
        ti.xcom_push(key=XCOM_FILES_KEY, value=uris)
    except Exception as exc:  # a link is a convenience; never fail the task for it
        log.debug("Lore: could not push %s to XCom: %s", XCOM_FILES_KEY, exc)
