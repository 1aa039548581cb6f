"""OpenLineage out: each Lore entry as one OpenLineage run, sent by openlineage-python's own client.

Promises:
- One entry is one run: ``START`` when it starts, ``COMPLETE`` / ``FAIL`` when it ends,
  ``ABORT`` when Lore finds it abandoned; an entry recorded already finished
  (``record()``) is sent as ``START`` then its end, both at the times it carries. The
  run id is ``run_id_for(entry_id)``: a UUIDv7 with the ULID's millisecond time and 74
  bits of SHA-256 of the entry id, the same in every process and Lore version. Job:
  namespace ``lore`` (configurable), name = the step.
- Inputs are the files the step read and outputs the files it wrote, as OpenLineage
  names S3 objects (namespace ``s3://<bucket>``, name ``<key>``), with a
  ``version`` facet when a ref pins one: a step on ``F`` (``run``, ``track``, the
  adapters) reads ``F`` and its ``derivedFrom`` sources and writes what it
  ``produces``; an entry recorded with ``derived_from`` wrote its own file from those
  sources (outputs: the file, then what it produces).
- A failure carries the ``errorMessage`` facet (message, ``programmingLanguage`` PYTHON,
  the stack); a run started by an orchestrator carries a ``parent`` facet naming the
  orchestrator's run: for Airflow the very run ids Airflow's OpenLineage provider emits
  for that task instance (and its DAG run as ``root``), for Dagster the Dagster run id.
- A late end after ``ABORT`` (the worker was alive after all) is sent with the time
  Lore wrote it, never before the ``ABORT``: it is the run's last word.
- Events are built with the client's generated classes and serialized by its
  transports; the client is ``OpenLineageClient()``, configured the standard way
  (``openlineage.yml``, ``OPENLINEAGE_CONFIG``, ``OPENLINEAGE_URL``, ``OPENLINEAGE__…``,
  ``OPENLINEAGE_DISABLED``).
- Sending never blocks or fails a step: ``emit`` puts the event on a bounded queue (a
  full queue drops it, with a warning) and one background thread per sink and process
  builds and sends; its errors are logged. At exit the queue is drained for at most
  ``close_timeout`` seconds.

It does not read or write histories.

Example::

    from lore_core import LoreTracker
    from lore_core.openlineage import LoreOpenLineage, run_id_for

    sink = LoreOpenLineage(namespace="files")
    tracker = LoreTracker.from_url("memory://ol-demo", openlineage=sink)
    result = tracker.run("raw/a.csv", step="validate", handler=lambda ctx: None)
    assert sink.flush(timeout=10)
    print(run_id_for(result.entry_id))  # the OpenLineage run of that entry
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import re
import threading
import time
import uuid
import weakref
from datetime import datetime
from importlib import metadata
from typing import Any

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    JobFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.uuid import generate_static_uuid

from .events import StepEvent
from .ids import format_timestamp, utc_now
from .models import HistoryEntry, LineageRef, OrchestratorInfo

__all__ = [
    "DEFAULT_NAMESPACE",
    "LoreOpenLineage",
    "airflow_dag_run_id",
    "airflow_task_run_id",
    "flush_all",
    "run_events",
    "run_id_for",
    "shared_sink",
]

log = logging.getLogger("lore")

DEFAULT_NAMESPACE = "lore"
#: Airflow's OpenLineage provider's namespace when none is configured ([openlineage] namespace).
AIRFLOW_DEFAULT_NAMESPACE = "default"
DAGSTER_DEFAULT_NAMESPACE = "dagster"


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


LORE_VERSION = _version("lore-s3")
#: Who produced the events (a URI, as the spec asks).
PRODUCER = f"urn:lore-s3:{LORE_VERSION}"
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}
_LORE_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:lore-s3:entry")


# ---------------------------------------------------------------------- ids


def run_id_for(entry_id: str) -> str:
    """The OpenLineage run id of a Lore entry: a UUIDv7 made of the entry id alone.

    For a ULID (every id Lore makes) the UUID's 48-bit time is the ULID's millisecond
    time, so runs sort as their entries do, and its 74 other bits are the first bits of
    SHA-256 of the id; any other id gets ``uuid5(uuid5(NAMESPACE_URL, "urn:lore-s3:entry"), id)``.
    """
    if not _ULID.match(entry_id):
        return str(uuid.uuid5(_LORE_UUID_NAMESPACE, entry_id))
    value = 0
    for char in entry_id:
        value = value * 32 + _CROCKFORD[char]
    millis = value >> 80
    rand = int.from_bytes(hashlib.sha256(entry_id.encode("ascii")).digest()[:10], "big") >> 6  # 74 bits
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=(millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b))


def airflow_task_run_id(
    namespace: str, dag_id: str, task_id: str, try_number: int, logical_date: datetime, map_index: int
) -> str:
    """The run id Airflow's OpenLineage provider gives a task instance try.

    The provider's ``build_task_instance_ol_run_id``: ``generate_static_uuid(logical_date,
    "<namespace>.<dag_id>.<task_id>.<try_number>.<map_index>")`` of this same client, where
    ``logical_date`` is the DAG run's (its ``run_after`` when it has none) and ``namespace``
    the provider's ([openlineage] namespace, else ``$OPENLINEAGE_NAMESPACE``, else "default").
    """
    data = f"{namespace}.{dag_id}.{task_id}.{try_number}.{map_index}".encode()
    return str(generate_static_uuid(instant=logical_date, data=data))


def airflow_dag_run_id(namespace: str, dag_id: str, logical_date: datetime, clear_number: int) -> str:
    """The run id Airflow's OpenLineage provider gives a DAG run (``build_dag_run_ol_run_id``)."""
    data = f"{namespace}.{dag_id}.{clear_number}".encode()
    return str(generate_static_uuid(instant=logical_date, data=data))


def _is_uuid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _extra(model: Any, *names: str) -> Any:
    """A field of ``model`` under any of ``names`` (declared, or kept as an unknown field)."""
    extras = model.model_extra or {}
    for name in names:
        value = getattr(model, name, None) if name in type(model).model_fields else extras.get(name)
        if value is not None:
            return value
    return None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------------- building events


def _dataset_facets(ref: LineageRef | None) -> dict[str, Any]:
    if ref is None:
        return {}
    version = _extra(ref, "version_id", "versionId", "etag")
    if version is None:
        return {}
    return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version))}


def _datasets(event: StepEvent) -> tuple[list[InputDataset], list[OutputDataset]]:
    """Inputs and outputs of the entry's run (the mapping in the module docstring)."""
    own = f"s3://{event.bucket}"

    def input_of(ref: LineageRef) -> InputDataset:
        return InputDataset(
            namespace=f"s3://{ref.bucket or event.bucket}", name=ref.file_key, facets=_dataset_facets(ref)
        )

    sources = [input_of(ref) for ref in event.sources]
    products = [OutputDataset(namespace=own, name=key) for key in event.produces]
    if event.recorded_finished and event.sources:
        # record(K, derived_from=[A, B]): K was written from A and B.
        return sources, [OutputDataset(namespace=own, name=event.file_key), *products]
    # A step on F reads F (and whatever F was derived from in this entry) and writes its products.
    return [InputDataset(namespace=own, name=event.file_key), *sources], products


def _parent(
    info: OrchestratorInfo | None, airflow_namespace: str, dagster_namespace: str
) -> parent_run.ParentRunFacet | None:
    """The orchestrator's run this entry ran in, named as that orchestrator's OpenLineage runs are."""
    if info is None:
        return None
    if info.system == "airflow":
        date = _as_datetime(_extra(info, "logicalDate", "runAfter"))
        if date is None or not info.job or not info.task or info.try_number is None:
            return None  # recorded without what the provider's run id is made of
        map_index = -1 if info.map_index is None else info.map_index
        task_run = airflow_task_run_id(airflow_namespace, info.job, info.task, info.try_number, date, map_index)
        root = None
        clear_number = _extra(info, "clearNumber")
        if isinstance(clear_number, int):
            root = parent_run.Root(
                run=parent_run.RootRun(runId=airflow_dag_run_id(airflow_namespace, info.job, date, clear_number)),
                job=parent_run.RootJob(namespace=airflow_namespace, name=info.job),
            )
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=task_run),
            job=parent_run.Job(namespace=airflow_namespace, name=f"{info.job}.{info.task}"),
            root=root,
            producer=PRODUCER,
        )
    if not _is_uuid(info.run_id):
        return None  # the spec's run ids are UUIDs; Dagster's are
    namespace = dagster_namespace if info.system == "dagster" else info.system
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=str(info.run_id)),
        job=parent_run.Job(namespace=namespace, name=info.job or info.system),
        producer=PRODUCER,
    )


def _error_facet(entry: HistoryEntry) -> error_message_run.ErrorMessageRunFacet | None:
    if entry.error is None:
        return None
    message = f"{entry.error.name}: {entry.error.message}" if entry.error.name else entry.error.message
    return error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="PYTHON", stackTrace=entry.error.stack, producer=PRODUCER
    )


def run_events(
    event: StepEvent,
    namespace: str = DEFAULT_NAMESPACE,
    *,
    airflow_namespace: str = AIRFLOW_DEFAULT_NAMESPACE,
    dagster_namespace: str = DAGSTER_DEFAULT_NAMESPACE,
    received_at: datetime | None = None,
) -> list[RunEvent]:
    """The OpenLineage run events of one Lore event (``received_at``: when Lore published it)."""
    entry = event.entry
    inputs, outputs = _datasets(event)
    run_facets: dict[str, RunFacet] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=LORE_VERSION,
            name="lore",
            openlineageAdapterVersion=_version("openlineage-python"),
            producer=PRODUCER,
        )
    }
    parent = _parent(entry.orchestrator, airflow_namespace, dagster_namespace)
    if parent is not None:
        run_facets["parent"] = parent
    job_facets: dict[str, JobFacet] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="LORE", jobType="STEP", producer=PRODUCER
        )
    }
    run_id = run_id_for(entry.id)

    def make(state: RunState, when: datetime, facets: dict[str, RunFacet]) -> RunEvent:
        return RunEvent(
            eventType=state,
            eventTime=format_timestamp(when),
            run=Run(runId=run_id, facets=facets),
            job=Job(namespace=namespace, name=entry.step, facets=job_facets),
            inputs=list(inputs),
            outputs=list(outputs),
            producer=PRODUCER,
        )

    if event.kind == "step.started":
        return [make(RunState.START, entry.started_at, run_facets)]
    if event.kind == "step.abandoned":
        # Abandoned when its lease ran out (the marking's completedAt is that time too).
        when = entry.lease_expires_at or entry.completed_at or received_at or utc_now()
        error = _error_facet(entry)
        return [make(RunState.ABORT, when, {**run_facets, **({"errorMessage": error} if error else {})})]
    ended = entry.completed_at or received_at or utc_now()
    if event.extra.get("after_abandoned") and received_at is not None:
        ended = max(ended, received_at)  # never before the ABORT someone may have sent
    if event.kind == "step.succeeded":
        terminal = make(RunState.COMPLETE, ended, run_facets)
    else:
        error = _error_facet(entry)
        terminal = make(RunState.FAIL, ended, {**run_facets, **({"errorMessage": error} if error else {})})
    if event.recorded_finished:
        return [make(RunState.START, entry.started_at, run_facets), terminal]
    return [terminal]


# ---------------------------------------------------------------------- the sink


class LoreOpenLineage:
    """An event sink (``tracker.add_sink``, or ``LoreTracker(openlineage=...)``) sending OpenLineage runs.

    ``namespace`` is the jobs' namespace. ``client`` defaults to ``OpenLineageClient()``
    (built in the sending thread on the first event, so a slow or broken configuration
    never reaches a step). ``airflow_namespace`` must be the Airflow provider's namespace
    for the parent facets to name its runs (default ``$OPENLINEAGE_NAMESPACE``, else
    "default"; Lore's Airflow adapter passes ``[openlineage] namespace``). At most
    ``queue_size`` events wait; more are dropped with a warning (``dropped`` counts them).
    """

    def __init__(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        client: OpenLineageClient | None = None,
        queue_size: int = 10_000,
        airflow_namespace: str | None = None,
        dagster_namespace: str = DAGSTER_DEFAULT_NAMESPACE,
        close_timeout: float = 10.0,
    ) -> None:
        if not namespace:
            raise ValueError("LoreOpenLineage needs a job namespace, e.g. 'lore'")
        self.namespace = namespace
        self.airflow_namespace = airflow_namespace or os.getenv("OPENLINEAGE_NAMESPACE") or AIRFLOW_DEFAULT_NAMESPACE
        self.dagster_namespace = dagster_namespace
        self.queue_size = queue_size
        self.close_timeout = close_timeout
        self.dropped = 0
        self._given_client = client
        self._reset()
        # A forked child (an Airflow task) has none of its parent's threads: start afresh there.
        ref = weakref.ref(self)

        def after_fork() -> None:
            sink = ref()
            if sink is not None:
                sink._reset()

        os.register_at_fork(after_in_child=after_fork)

    def _reset(self) -> None:
        self._idle = threading.Condition()
        self._queue: queue.Queue[tuple[StepEvent, datetime]] = queue.Queue(self.queue_size)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._client: OpenLineageClient | None = None
        self._last_error_log = 0.0
        self._errors_unlogged = 0

    def __repr__(self) -> str:
        return f"LoreOpenLineage(namespace={self.namespace!r})"

    # -- the step's side: never blocks

    def emit(self, event: StepEvent) -> None:
        """Queue ``event`` for sending; a full queue drops it with a warning. Never blocks, never raises."""
        try:
            if self._thread is None:
                self._start()
            with self._idle:
                self._queue.put_nowait((event, utc_now()))
                self._pending += 1
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "lore: OpenLineage queue full (%d events waiting): dropped %s of %r (%d dropped so far); "
                    "is the OpenLineage transport reachable?",
                    self.queue_size,
                    event.kind,
                    event.file_key,
                    self.dropped,
                )
        except Exception:
            log.exception("lore: could not queue the OpenLineage event %s of %r", event.kind, event.file_key)

    # -- waiting for the queue

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was handed to the transport; False if ``timeout`` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued (for at most ``timeout`` seconds) and close the client's transport."""
        drained = self.flush(timeout)
        client = self._client
        if client is not None:
            try:
                client.close(timeout if timeout is not None else -1.0)
            except Exception:
                log.exception("lore: closing the OpenLineage client failed")
        return drained

    # -- the sending thread

    def _start(self) -> None:
        with self._idle:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._work, name="lore-openlineage", daemon=True)
            self._thread.start()
        atexit.register(self._at_exit, os.getpid())

    def _at_exit(self, pid: int) -> None:
        if pid == os.getpid() and not self.flush(self.close_timeout):
            log.warning(
                "lore: %d OpenLineage events were not sent within %ss of exit", self._pending, self.close_timeout
            )

    def _get_client(self) -> OpenLineageClient:
        if self._client is None:
            self._client = self._given_client if self._given_client is not None else OpenLineageClient()
        return self._client

    def _work(self) -> None:
        while True:
            event, received_at = self._queue.get()
            try:
                self._send(event, received_at)
            except Exception as exc:
                self._report(event, exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def _send(self, event: StepEvent, received_at: datetime) -> None:
        client = self._get_client()
        for run_event in run_events(
            event,
            self.namespace,
            airflow_namespace=self.airflow_namespace,
            dagster_namespace=self.dagster_namespace,
            received_at=received_at,
        ):
            client.emit(run_event)

    def _report(self, event: StepEvent, exc: Exception) -> None:
        # One line a minute at most: a backend that is down must not flood the logs.
        now = time.monotonic()
        if now - self._last_error_log < 60:
            self._errors_unlogged += 1
            return
        skipped, self._errors_unlogged, self._last_error_log = self._errors_unlogged, 0, now
        log.warning(
            "lore: could not send the OpenLineage event %s of %r: %s: %s%s",
            event.kind,
            event.file_key,
            type(exc).__name__,
            exc,
            f" ({skipped} more failures not logged)" if skipped else "",
            exc_info=log.isEnabledFor(logging.DEBUG),
        )


_shared: dict[tuple[str, str | None], LoreOpenLineage] = {}
_shared_lock = threading.Lock()


def shared_sink(namespace: str = DEFAULT_NAMESPACE, *, airflow_namespace: str | None = None) -> LoreOpenLineage:
    """The process's sink for ``namespace`` (what ``openlineage=True`` uses): one queue, thread and client."""
    key = (namespace, airflow_namespace)
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = LoreOpenLineage(namespace, airflow_namespace=airflow_namespace)
        return found


def flush_all(timeout: float | None = None) -> bool:
    """Flush every shared sink (see ``shared_sink``); False if ``timeout`` ran out for one of them."""
    with _shared_lock:
        sinks = list(_shared.values())
    deadline = None if timeout is None else time.monotonic() + timeout
    done = True
    for sink in sinks:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        done = sink.flush(remaining) and done
    return done
