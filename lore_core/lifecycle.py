"""The one step lifecycle: start, heartbeat, finish — and ``track()``, ``run()``, ``replay()`` and ``record()`` on it.

Promises:
- ``track()`` writes the running entry, renews its lease from a heartbeat while the
  block runs, records success on a clean exit and failure (re-raised) otherwise.
  ``run()``, ``replay()`` and both orchestrator adapters go through it.
- A success is never refused or turned into a failure: one that arrives after the
  lease ran out replaces the ``abandoned`` marking.
- The failure index stays exact: a transition is validated before any index object
  is written, and the objects of an entry are removed by whoever finishes,
  resolves or clears it (found by name, never from memory).
- ``replay()`` and ``run(skip_if_succeeded=True)`` claim the work first: of two
  concurrent callers exactly one runs the handler.
- The first write through a store proves that it honours conditional writes.
It does not read lineage or list anything (the tracker facade does).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from . import keys
from .archive import read_archived
from .claims import Claim, Claims
from .config import TrackerOptions
from .derivation import Derivation, with_default_entry
from .documents import Documents
from .errors import (
    ConditionalWritesUnsupportedError,
    EntryNotFoundError,
    HistoryNotFoundError,
    InvalidTransitionError,
    LoreError,
    StepNotRegisteredError,
    StoreError,
)
from .events import EventBus, EventKind, StepEvent
from .failure_index import FailureIndex
from .ids import as_utc, duration_ms, new_entry_id, utc_now
from .leases import Heartbeat, lease_expiry, marker_lease
from .models import ErrorInfo, FileHistory, HistoryEntry, LineageRef, OrchestratorInfo, StepStatus
from .mutations import (
    LEASE_EXPIRED,
    Outcome,
    add_finished,
    add_running,
    check_transition,
    clear_entries,
    finish,
    renew_lease,
)
from .redaction import Redactor
from .steps import Handler, HandlerRegistry, StepContext, StepResult
from .stores import verify_conditional_writes
from .values import limit_size, limit_text, to_jsonable

__all__ = ["ActiveStep", "ErrorPolicy", "Lifecycle"]

_T = TypeVar("_T")

log = logging.getLogger("lore")
_ABANDONED_SEEN_MAX = 10_000
ErrorPolicy = Literal["raise", "log"]
Orchestrator = OrchestratorInfo | dict[str, Any] | None
ErrorLike = BaseException | ErrorInfo | str | dict[str, Any]


def as_list(produces: str | Iterable[str] | None) -> list[str]:
    if produces is None:
        return []
    if isinstance(produces, str):
        return [produces]
    return list(dict.fromkeys(produces))


def _orchestrator(value: Orchestrator) -> OrchestratorInfo | None:
    if value is None or isinstance(value, OrchestratorInfo):
        return value
    try:
        return OrchestratorInfo.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "value"
        raise LoreError(
            f"orchestrator {value!r} is not valid: {where}: {first.get('msg')} "
            "(expected keys: system, runId, job, task, partition, tryNumber, mapIndex, url)"
        ) from None


def _as_error(error: ErrorLike) -> ErrorInfo:
    if isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        return ErrorInfo.from_exception(error)
    if isinstance(error, dict):
        return ErrorInfo.model_validate(error)
    return ErrorInfo(message=str(error))


def _in_thread(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """``fn(*args)`` in a thread of its own; ``.result()`` waits and re-raises its error."""
    future: Future[Any] = Future()

    def work() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, name="lore-derive", daemon=True).start()
    return future


def _joined(side: Sequence[Future[Any]], write: Callable[[], _T]) -> tuple[_T, BaseException | None]:
    """``write()`` while the ``side`` writes run, and the first of their errors (None if none).

    ``write``'s own error is raised once the side writes are done. A side error is handed back,
    not raised: the caller finishes what the written document calls for (index, events) first.
    """
    try:
        result = write()
    except BaseException:
        for future in side:
            future.exception()  # wait for them; the document's own error is the one to tell
        raise
    errors = [e for e in (future.exception() for future in side) if e is not None]
    return result, (errors[0] if errors else None)


class Lifecycle:
    def __init__(
        self,
        docs: Documents,
        options: TrackerOptions,
        redactor: Redactor | None,
        handlers: HandlerRegistry,
    ) -> None:
        self.docs = docs
        self.store = docs.store
        self.prefix = docs.prefix
        self.options = options
        self.redactor = redactor
        self.handlers = handlers
        self.index = FailureIndex(docs.store, docs.prefix)
        self.claims = Claims(docs.store, docs.prefix)
        self.derivation = Derivation(docs, options.max_ancestry)
        self.events = EventBus()
        # Entries this process already announced as abandoned (bounded): list_failed sees the
        # same abandoned entry on every sensor tick, and it is announced once.
        self._abandoned_seen: OrderedDict[str, None] = OrderedDict()
        self._abandoned_lock = threading.Lock()
        self.owner: Any = None  # the LoreTracker, handed to handlers as ctx.tracker

    def publish(
        self,
        kind: EventKind,
        file_key: str,
        entry: HistoryEntry,
        *,
        recorded_finished: bool = False,
        extra: dict[str, object] | None = None,
    ) -> None:
        """Tell subscribers (``tracker.on``) what the history now says; costs nothing without any."""
        if not self.events.active:
            return
        own = entry.model_copy(deep=True)
        self.events.publish(
            StepEvent(
                kind=kind,
                bucket=self.docs.bucket,
                prefix=self.prefix,
                file_key=file_key,
                entry=own,
                sources=tuple(own.derived_from or ()),
                produces=tuple(own.produces or ()),
                recorded_finished=recorded_finished,
                extra=dict(extra or {}),
            )
        )

    def publish_abandoned(
        self, file_key: str, entries: Iterable[HistoryEntry], final: FileHistory | None = None
    ) -> None:
        """``step.abandoned`` for each entry that is abandoned (running past its lease, or marked
        ``LeaseExpired``), once per entry and process; ``final`` is the document as written, which
        has the last word (an entry a late success finished meanwhile is not abandoned)."""
        if not self.events.active:
            return
        for entry in entries:
            stored = final.entry(entry.id) if final is not None else None
            entry = stored or entry
            marked = entry.status is StepStatus.FAILED and entry.error is not None and entry.error.name == LEASE_EXPIRED
            if not (entry.abandoned or marked):
                continue
            with self._abandoned_lock:
                if entry.id in self._abandoned_seen:
                    continue
                self._abandoned_seen[entry.id] = None
                if len(self._abandoned_seen) > _ABANDONED_SEEN_MAX:
                    self._abandoned_seen.popitem(last=False)
            self.publish("step.abandoned", file_key, entry)

    # ------------------------------------------------------------------ what gets written

    def file_key(self, file_key: str) -> str:
        return keys.validate_file_key(file_key, self.prefix)

    def value(self, value: Any, what: str) -> Any:
        """JSON-ready, valid UTF-8, secrets masked, size-limited: the form in which a value is stored."""
        if value is None:
            return None
        value = to_jsonable(value, what)
        if self.redactor is not None:
            value = self.redactor.redact(value)
        return limit_size(value, self.options.max_value_bytes)

    def text(self, text: str | None) -> str | None:
        if text is not None and self.redactor is not None:
            text = self.redactor.redact_text(text)
        return limit_text(text, self.options.max_value_bytes)

    def error(self, error: ErrorLike) -> ErrorInfo:
        info = _as_error(error)
        message, stack, name = info.message, info.stack, info.name
        if self.redactor is not None:
            message = self.redactor.redact_text(message)
            stack = self.redactor.redact_text(stack) if stack is not None else None
            name = self.redactor.redact_text(name) if name is not None else None
        return info.model_copy(
            update={
                "message": limit_text(message, self.options.max_value_bytes) or "",
                "stack": limit_text(stack, self.options.max_value_bytes),
                "name": limit_text(name, 1024),
            }
        )

    def orchestrator(self, value: Orchestrator) -> OrchestratorInfo | None:
        """``value`` as stored: its UI link may carry credentials (``https://user:pw@host``)."""
        info = _orchestrator(value)
        if info is None or info.url is None or self.redactor is None:
            return info
        return info.model_copy(update={"url": self.redactor.redact_text(info.url)})

    def ensure_writable(self, file_key: str) -> None:
        """Run the conditional-write self-check before the first write (once per process and backend)."""
        if not self.options.verify_conditional_writes:
            return
        try:
            verify_conditional_writes(self.store, keys.probe_key(self.prefix, new_entry_id()))
        except ConditionalWritesUnsupportedError:
            raise
        except StoreError as exc:
            # Same error type, so callers can still tell a missing bucket from denied access.
            raise type(exc)(f"{exc} (checking the store before writing the history of {file_key!r})") from exc

    def _entry_of(self, file_key: str, entry_id: str) -> HistoryEntry:
        doc = self.docs.load(file_key)
        found = doc.entry(entry_id) if doc is not None else None
        if found is None:
            doc = self.docs.load(file_key, fresh=True)
            found = doc.entry(entry_id) if doc is not None else None
        if doc is None:
            raise HistoryNotFoundError(
                f"no history for {file_key!r} at {self.store.location(self.docs.history_key(file_key))}"
            )
        if found is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        return found

    # ------------------------------------------------------------------ start, heartbeat, finish

    def start(
        self,
        file_key: str,
        step: str,
        input: Any = None,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        produces: str | Iterable[str] | None = None,
        orchestrator: Orchestrator = None,
        replay_of: str | None = None,
        attempt: int | None = None,
        entry_id: str | None = None,
    ) -> HistoryEntry:
        """Record a ``running`` entry (1 read + 1 write; no read if this process wrote the document last)."""
        file_key = self.file_key(file_key)
        entry = self.running_entry(
            file_key,
            step,
            input,
            description=description,
            metadata=metadata,
            produces=produces,
            orchestrator=orchestrator,
            replay_of=replay_of,
            attempt=attempt,
            entry_id=entry_id,
        )
        return self.write_running(file_key, entry)

    def running_entry(
        self,
        file_key: str,
        step: str,
        input: Any = None,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        produces: str | Iterable[str] | None = None,
        orchestrator: Orchestrator = None,
        replay_of: str | None = None,
        attempt: int | None = None,
        entry_id: str | None = None,
    ) -> HistoryEntry:
        """The ``running`` entry as it will be stored (validated, redacted), without writing anything."""
        keys.validate_step(self.prefix, file_key, step)
        now = utc_now()
        entry = HistoryEntry(
            id=entry_id or new_entry_id(),
            step=step,
            description=self.text(description),
            status=StepStatus.RUNNING,
            input=self.value(input, f"input of {step} on {file_key}"),
            produces=[self.file_key(p) for p in as_list(produces)] or None,
            started_at=now,
            metadata=self.value(metadata, f"metadata of {step} on {file_key}") if metadata else None,
            replay_of=replay_of,
            attempt=attempt,
            orchestrator=self.orchestrator(orchestrator),
            lease_expires_at=lease_expiry(self.options.lease_seconds, now),
        )
        if self.options.mark_running:
            entry.marker_lease = marker_lease(self.options.lease_seconds)
        return entry

    def write_running(self, file_key: str, entry: HistoryEntry) -> HistoryEntry:
        """Write ``entry`` (from ``running_entry``) into the history: the stored entry, attempt decided."""
        self.ensure_writable(file_key)
        if entry.marker_lease is not None:
            # The marker first: should the document write fail, list_failed finds no entry and lets it be.
            self.index.mark_running(file_key, entry.id, entry.step, entry.marker_lease)
        doc = self.docs.update(file_key, add_running(entry, lambda: self.docs.new_history(file_key)))
        stored = doc.entry(entry.id) if doc is not None else None
        self.publish("step.started", file_key, stored or entry)
        return stored or entry

    def heartbeat(self, file_key: str, entry_id: str) -> bool:
        """Renew a running entry's lease and refresh its marker; False once the entry has finished.

        The marker is written before the document says it exists, and removed again here
        if the entry turns out to have finished, so it can never outlive its entry.
        """
        file_key = self.file_key(file_key)
        cached = self.docs.load(file_key)
        known = cached.entry(entry_id) if cached is not None else None
        if known is not None and known.finished:
            return False
        self.ensure_writable(file_key)
        step = known.step if known is not None else self._entry_of(file_key, entry_id).step
        lease = marker_lease(self.options.lease_seconds)
        self.index.mark_running(file_key, entry_id, step, lease)
        out = Outcome()
        self.docs.update(
            file_key, renew_lease(file_key, entry_id, lease_expiry(self.options.lease_seconds), lease, out)
        )
        if out.entry is not None and out.entry.finished:
            # Finished meanwhile (its finisher may have looked before our marker existed).
            self.index.remove_marker(file_key, entry_id, step, lease)
            return False
        return True

    def succeed(
        self,
        file_key: str,
        entry_id: str,
        output: Any = None,
        *,
        produces: str | Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HistoryEntry:
        file_key = self.file_key(file_key)
        return self._finish(
            file_key,
            entry_id,
            StepStatus.SUCCESS,
            output=self.value(output, f"output of entry {entry_id} on {file_key}"),
            produces=[self.file_key(p) for p in as_list(produces)],
            metadata=metadata,
        )

    def fail(
        self, file_key: str, entry_id: str, error: ErrorLike, *, metadata: dict[str, Any] | None = None
    ) -> HistoryEntry:
        file_key = self.file_key(file_key)
        return self._finish(file_key, entry_id, StepStatus.FAILED, error=self.error(error), metadata=metadata)

    def _finish(
        self,
        file_key: str,
        entry_id: str,
        status: StepStatus,
        *,
        output: Any = None,
        error: ErrorInfo | None = None,
        produces: Sequence[str] = (),
        metadata: dict[str, Any] | None = None,
    ) -> HistoryEntry:
        current = self._entry_of(file_key, entry_id)
        check_transition(current, status, file_key)  # before any index object is written
        self.ensure_writable(file_key)
        all_produced = as_list([*(current.produces or []), *produces]) if status is StepStatus.SUCCESS else []
        extra_meta = self.value(metadata, f"metadata of entry {entry_id}") if metadata else None
        if status is StepStatus.FAILED:
            # Index first: a crash before the history write leaves an object whose entry is
            # still running (list_failed checks and skips it), never a failure nobody can find.
            self.index.add_failure(file_key, entry_id, current.step, error)
        # The produced files' refs are written while the entry is (one round trip, not two).
        deriving = (
            _in_thread(self.derivation.derive_many, all_produced, LineageRef(file_key=file_key, entry_id=entry_id))
            if all_produced
            else None
        )
        out = Outcome()
        mutate = finish(
            file_key,
            entry_id,
            status,
            out,
            completed=utc_now(),
            output=output,
            error=error,
            produces=all_produced,
            metadata=extra_meta,
        )
        try:
            written, link_error = _joined(
                [deriving] if deriving is not None else [], lambda: self.docs.update(file_key, mutate)
            )
        except InvalidTransitionError:
            if status is StepStatus.FAILED:
                self.index.remove_failure(file_key, entry_id, current.step)
            raise
        entry = out.entry
        if entry is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        if entry.marker_lease is not None:
            self.index.remove_marker(file_key, entry.id, entry.step, entry.marker_lease)
        self.index.forget(file_key, out.resolved)
        if self.events.active:
            # Earlier runs of the step this success found abandoned (now marked LeaseExpired).
            self.publish_abandoned(file_key, out.resolved, written)
            # Did anyone see this entry abandoned (its lease ran out, or it was marked so) before
            # this end was written? Then this end is the last word, and says so when it was written.
            stand_in = current.error is not None and current.error.name == LEASE_EXPIRED
            after_abandoned = (out.previous is StepStatus.FAILED and (status is StepStatus.SUCCESS or stand_in)) or (
                current.status is StepStatus.RUNNING
                and current.lease_expires_at is not None
                and current.lease_expires_at < utc_now()
            )
            self.publish(
                "step.succeeded" if status is StepStatus.SUCCESS else "step.failed",
                file_key,
                entry,
                extra={"after_abandoned": True} if after_abandoned else None,
            )
        if link_error is not None:  # the entry is recorded; a product's link is not
            raise link_error
        return entry.model_copy(deep=True)  # the caller's own: the cached document shares this entry

    def record(
        self,
        file_key: str,
        step: str,
        status: StepStatus | str = StepStatus.SUCCESS,
        *,
        input: Any = None,
        output: Any = None,
        error: ErrorLike | None = None,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        orchestrator: Orchestrator = None,
        replay_of: str | None = None,
        attempt: int | None = None,
        produces: str | Iterable[str] | None = None,
        derived_from: Iterable[LineageRef | str] = (),
        entry_id: str | None = None,
    ) -> HistoryEntry:
        file_key = self.file_key(file_key)
        keys.validate_step(self.prefix, file_key, step)
        status = StepStatus(status)
        if status is StepStatus.RUNNING:
            raise LoreError("record() writes finished entries; use start() or track() for a running one")
        # A caller's naive datetime is UTC (the models take only timezone-aware ones).
        completed = as_utc(completed_at) if completed_at is not None else utc_now()
        started = as_utc(started_at) if started_at is not None else completed
        sources = [self.derivation.source_ref(ref) for ref in derived_from]
        source_docs = self.derivation.fetch_sources(sources)
        sources = [with_default_entry(s, source_docs.get((s.bucket or self.docs.bucket, s.file_key))) for s in sources]
        entry = HistoryEntry(
            id=entry_id or new_entry_id(),
            step=step,
            description=self.text(description),
            status=status,
            input=self.value(input, f"input of {step} on {file_key}"),
            output=self.value(output, f"output of {step} on {file_key}") if status is StepStatus.SUCCESS else None,
            error=self.error(error) if error is not None else None,
            produces=[self.file_key(p) for p in as_list(produces)] or None,
            started_at=started,
            completed_at=completed,
            duration_ms=duration_ms(started, completed),
            metadata=self.value(metadata, f"metadata of {step} on {file_key}") if metadata else None,
            replay_of=replay_of,
            attempt=attempt,
            orchestrator=self.orchestrator(orchestrator),
            derived_from=[s.model_copy() for s in sources] or None,
        )
        if status is StepStatus.FAILED and entry.error is None:
            entry.error = ErrorInfo(message="failed")
        ancestry = self.derivation.ancestry_for(sources, source_docs)
        self.ensure_writable(file_key)
        if status is StepStatus.FAILED:
            self.index.add_failure(file_key, entry.id, step, entry.error)
        # The links on the other documents (products' derivedFrom, sources' derivedTo) are
        # written while this one is: one round trip, not three (each is repaired by the next
        # write should a crash land between them).
        side: list[Future[Any]] = []
        if entry.produces and status is StepStatus.SUCCESS:
            side.append(
                _in_thread(
                    self.derivation.derive_many, entry.produces, LineageRef(file_key=file_key, entry_id=entry.id)
                )
            )
        if sources:
            side.append(_in_thread(self._link_sources, file_key, sources))
        out = Outcome()
        mutate = add_finished(
            entry,
            lambda: self.docs.new_history(file_key),
            out,
            sources=sources,
            ancestry=ancestry,
            max_ancestry=self.options.max_ancestry,
        )
        written, link_error = _joined(side, lambda: self.docs.update(file_key, mutate))
        self.index.forget(file_key, out.resolved)
        if out.entry is None:
            raise EntryNotFoundError(f"history of {file_key!r} lost entry {entry.id!r} while it was written")
        self.publish_abandoned(file_key, out.resolved, written)
        kind: EventKind = "step.succeeded" if status is StepStatus.SUCCESS else "step.failed"
        self.publish(kind, file_key, out.entry, recorded_finished=True)
        if link_error is not None:  # the entry is recorded; a link on another document is not
            raise link_error
        return out.entry.model_copy(deep=True)

    def _link_sources(self, file_key: str, sources: Sequence[LineageRef]) -> None:
        def link(source: LineageRef) -> None:
            self.derivation.link_forward(source, LineageRef(file_key=file_key, entry_id=source.entry_id))

        if len(sources) == 1:
            link(sources[0])
            return
        with ThreadPoolExecutor(max_workers=min(16, len(sources))) as pool:
            list(pool.map(link, sources))

    def clear(self, file_key: str) -> None:
        file_key = self.file_key(file_key)
        if self.docs.load(file_key, fresh=True) is None:
            return
        self.ensure_writable(file_key)
        out = Outcome()
        self.docs.update(file_key, clear_entries(out))
        self.index.forget(file_key, out.dropped)
        for key in out.segments:
            self.store.delete(key)

    # ------------------------------------------------------------------ track, run, replay

    def begin(
        self,
        file_key: str,
        step: str,
        input: Any = None,
        *,
        produces: str | Iterable[str] | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        orchestrator: Orchestrator = None,
        replay_of: str | None = None,
        attempt: int | None = None,
        entry_id: str | None = None,
        on_error: ErrorPolicy = "raise",
        logger: Any = None,
        claim: Claim | None = None,
        background: bool = True,
        prefetch: Iterable[str] = (),
    ) -> ActiveStep:
        """Start a step and its heartbeat; finish it with ``ActiveStep.succeed()`` / ``fail()``.

        For callers whose start and end happen in different callbacks (Airflow); a block
        of code uses ``track()``, which is this plus the ``with``. Everything that can be
        wrong with the arguments is raised here; the ``running`` write itself (a read and
        a write) happens in a background thread while the step runs (``background=False``:
        before returning), and ``succeed()``/``fail()`` wait for it before the final write.
        ``prefetch``: files the step will likely produce besides ``produces`` (an Airflow
        task's outlets); those that already have a history are read in that thread too, so
        linking them costs one write at the end.
        """
        planned = as_list(produces)
        ctx = StepContext(
            file_key=file_key,
            bucket=self.docs.bucket,
            step=step,
            entry_id=entry_id or new_entry_id(),
            input=input,
            tracker=self.owner,
            replay_of=replay_of,
            produces=list(planned),
        )
        active = ActiveStep(self, ctx, on_error, logger or log, claim)
        try:
            key = self.file_key(file_key)
            entry = self.running_entry(
                key,
                step,
                input,
                description=description,
                metadata=metadata,
                produces=planned,
                orchestrator=orchestrator,
                replay_of=replay_of,
                attempt=attempt,
                entry_id=ctx.entry_id,
            )
            if on_error == "raise":
                # Once per process and store: a missing bucket or a store without conditional
                # writes is raised before the step runs. Under "log" (the adapters) the check
                # runs with the running write, off the step's critical path.
                self.ensure_writable(key)
        except Exception as exc:
            active.release_claim()  # whatever went wrong, the claim must not outlive the attempt
            if not isinstance(exc, LoreError):
                raise
            active.report(f"the start of {step} on {file_key!r} (the step runs untracked)", exc)
            active.tracked = False
            return active
        active.prefetch = [k for k in dict.fromkeys([*planned, *prefetch]) if k != key]
        active.launch(key, entry, background)
        return active

    @contextmanager
    def track(self, file_key: str, step: str, input: Any = None, **options: Any) -> Iterator[StepContext]:
        active = self.begin(file_key, step, input, **options)
        try:
            yield active.ctx
        except BaseException as exc:
            active.fail(exc)
            raise
        active.succeed()

    def _beat(self, file_key: str, entry_id: str, claim: Claim | None) -> bool:
        alive = self.heartbeat(file_key, entry_id)
        if alive and claim is not None and not self.claims.renew(claim, self.options.claim_lease):
            log.warning("lore: the claim of entry %s on %r was taken over after its lease ran out", entry_id, file_key)
        return alive

    def _release(self, claim: Claim) -> None:
        try:
            self.claims.release(claim)
        except LoreError as exc:  # an unreleased claim expires by itself
            log.warning("lore: could not release claim %s: %s", claim.key, exc)

    def handler(self, step: str, handler: Handler | None, what: str) -> Handler:
        found = handler or self.handlers.get(step)
        if found is None:
            raise StepNotRegisteredError(
                f"{what}: no handler for step {step!r}; pass handler= or register one with @tracker.step({step!r})"
            )
        return found

    def run(
        self,
        file_key: str,
        step: str,
        handler: Handler | None = None,
        input: Any = None,
        produces: str | Iterable[str] | None = None,
        skip_if_succeeded: bool = False,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        raise_on_failure: bool = False,
        orchestrator: Orchestrator = None,
        replay_of: str | None = None,
        claim: Claim | None = None,
        entry_id: str | None = None,
    ) -> StepResult:
        file_key = self.file_key(file_key)
        fn = self.handler(step, handler, f"cannot run {step!r} on {file_key!r}")
        entry_id = entry_id or new_entry_id()
        if skip_if_succeeded:
            done = self._succeeded(file_key, step)
            if done is not None:
                return StepResult(StepStatus.SKIPPED, done.id, file_key, step, output=copy.deepcopy(done.output))
            keys.validate_step(self.prefix, file_key, step)
            self.ensure_writable(file_key)
            claim, winner = self.claims.acquire(file_key, "step", step, entry_id, self.options.claim_lease)
            if claim is None:
                return StepResult(StepStatus.SKIPPED, winner or "", file_key, step)
            try:
                done = self._succeeded(file_key, step)  # it may have finished while we claimed
            except BaseException:
                self._release(claim)
                raise
            if done is not None:
                self._release(claim)
                return StepResult(StepStatus.SKIPPED, done.id, file_key, step, output=copy.deepcopy(done.output))
        ctx: StepContext | None = None
        handler_failed = False
        try:
            with self.track(
                file_key,
                step,
                input,
                produces=produces,
                description=description,
                metadata=metadata,
                orchestrator=orchestrator,
                replay_of=replay_of,
                entry_id=entry_id,
                claim=claim,
            ) as ctx:
                # The handler gets the value as given; the history holds its stored (redacted) form.
                try:
                    returned = fn(ctx)
                except BaseException:
                    handler_failed = True
                    raise
                if returned is not None:
                    ctx.output = returned
        except Exception:
            # Only the handler's own failure is a failed step; a tracking error is raised as is.
            if raise_on_failure or ctx is None or not handler_failed:
                raise
            error = ctx.recorded.error if ctx.recorded is not None else None
            return StepResult(StepStatus.FAILED, entry_id, file_key, step, error=error, replay_of=replay_of)
        output = ctx.recorded.output if ctx.recorded is not None else None
        return StepResult(StepStatus.SUCCESS, entry_id, file_key, step, output=output, replay_of=replay_of)

    def _succeeded(self, file_key: str, step: str) -> HistoryEntry | None:
        """The latest success of ``step`` on the file, looking in archive segments (newest first) if needed."""
        doc = self.docs.load(file_key, fresh=True)
        if doc is None:
            return None
        done = doc.latest(step=step, status=StepStatus.SUCCESS)
        for ref in reversed(doc.archived or []) if done is None else []:
            older = [e for e in read_archived(self.store, [ref]) if e.step == step and e.status is StepStatus.SUCCESS]
            if older:
                return older[-1]
        return done

    def _original(self, file_key: str, entry_id: str) -> tuple[FileHistory, HistoryEntry]:
        doc = self.docs.load(file_key, fresh=True)
        if doc is None:
            raise HistoryNotFoundError(
                f"no history for {file_key!r} at {self.store.location(self.docs.history_key(file_key))}"
            )
        original = doc.entry(entry_id)
        if original is None and doc.archived:
            original = self.docs.with_archive(doc).entry(entry_id)
        if original is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        return doc, original

    def replay(
        self,
        file_key: str,
        entry_id: str,
        handler: Handler | None = None,
        *,
        force: bool = False,
        orchestrator: Orchestrator = None,
        raise_on_failure: bool = False,
    ) -> StepResult:
        file_key = self.file_key(file_key)
        _, original = self._original(file_key, entry_id)
        if original.status is StepStatus.RUNNING and not original.abandoned and not force:
            raise LoreError(f"entry {entry_id} of {file_key!r} is still running; pass force=True to replay it anyway")
        if original.resolved_by and not force:
            self.index.forget(file_key, [original])  # repairs an index object a crash left behind
            return StepResult(StepStatus.SKIPPED, original.resolved_by, file_key, original.step, replay_of=entry_id)
        fn = self.handler(original.step, handler, f"cannot replay entry {entry_id} of {file_key!r}")
        new_id = new_entry_id()
        self.ensure_writable(file_key)
        claim, winner = self.claims.acquire(file_key, "replay", entry_id, new_id, self.options.claim_lease)
        if claim is None:
            return StepResult(StepStatus.SKIPPED, winner or "", file_key, original.step, replay_of=entry_id)
        try:
            _, original = self._original(file_key, entry_id)  # another replay may have won and finished
        except BaseException:
            self._release(claim)
            raise
        if original.resolved_by and not force:
            self._release(claim)
            return StepResult(StepStatus.SKIPPED, original.resolved_by, file_key, original.step, replay_of=entry_id)
        return self.run(
            file_key,
            original.step,
            fn,
            input=copy.deepcopy(original.input),  # the handler's own: the cached document holds the original
            produces=original.produces,
            description=original.description,
            metadata=original.metadata,
            raise_on_failure=raise_on_failure,
            orchestrator=orchestrator,
            replay_of=entry_id,
            claim=claim,
            entry_id=new_id,
        )


class ActiveStep:
    """A started step whose lease a heartbeat renews until ``succeed()`` or ``fail()`` ends it.

    ``ctx`` is the step's ``StepContext`` (set ``ctx.output``, call ``ctx.produce``).
    The ``running`` write overlaps the step (a background thread, joined before the
    final write); should it fail, the final write records the whole entry instead, so
    the history never misses a step that ran. Tracking errors follow the policy given
    to ``begin()``: ``"raise"``, or ``"log"`` (logged loudly; the step itself is never
    failed by Lore). Finishing twice is a no-op.
    """

    def __init__(self, life: Lifecycle, ctx: StepContext, on_error: ErrorPolicy, logger: Any, claim: Claim | None):
        self._life = life
        self.ctx = ctx
        self.on_error = on_error
        self.logger = logger
        self.claim = claim
        self.heartbeat: Heartbeat | None = None
        self.tracked = True
        self.finished = False
        self._lock = threading.Lock()
        self._file_key = ctx.file_key
        self._entry: HistoryEntry | None = None
        self._thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self.prefetch: list[str] = []

    @property
    def entry_id(self) -> str:
        return self.ctx.entry_id

    def launch(self, file_key: str, entry: HistoryEntry, background: bool) -> None:
        """Write the running entry (in a thread when ``background``), then start the heartbeat."""
        self._file_key, self._entry = file_key, entry
        if not background:
            self._write_start()
            if self._start_error is not None and isinstance(self._start_error, LoreError):
                error, self._start_error = self._start_error, None
                self.release_claim()
                self.tracked = False
                self.report(f"the start of {entry.step} on {file_key!r} (the step runs untracked)", error)
            elif self._start_error is not None:
                self.release_claim()
                raise self._start_error
            return
        self._thread = threading.Thread(target=self._write_start, name=f"lore-start-{entry.id}", daemon=True)
        self.ctx._await_start = self.wait_started
        self._thread.start()

    def _write_start(self) -> None:
        life, entry = self._life, self._entry
        assert entry is not None
        try:
            started = life.write_running(self._file_key, entry)
        except BaseException as exc:  # handed to the thread that finishes the step
            self._start_error = exc
            return
        self.ctx._attempt = started.attempt or 1
        with self._lock:
            if not self.finished:
                claim = self.claim
                self.heartbeat = Heartbeat(
                    lambda: life._beat(self._file_key, entry.id, claim),
                    life.options.lease_seconds,
                    life.options.first_heartbeat_seconds,
                    f"lore-heartbeat-{entry.id}",
                ).start()
        if self.prefetch:
            try:  # only a head start: the final write reads what it must
                life.derivation.prefetch(self._file_key, self.prefetch)
            except Exception as exc:
                log.debug("lore: could not read ahead the products of entry %s: %s", entry.id, exc)

    def wait_started(self) -> bool:
        """Wait for the ``running`` write; True when the running entry is in the history."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        return self.tracked and self._entry is not None and self._start_error is None

    def report(self, what: str, exc: LoreError, *, may_raise: bool = True) -> None:
        if self.on_error == "raise" and may_raise:
            raise exc
        self.logger.error("lore: could not record %s: %s: %s", what, type(exc).__name__, exc)

    def release_claim(self) -> None:
        if self.claim is not None:
            self._life._release(self.claim)
            self.claim = None

    def _end(self) -> bool:
        with self._lock:
            if self.finished:
                return False
            self.finished = True
        self.wait_started()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self._start_error is not None and not isinstance(self._start_error, LoreError):
            error, self._start_error = self._start_error, None
            self.release_claim()
            self.tracked = False
            raise error
        return self.tracked

    def _fold_in(self, status: StepStatus, **finished: Any) -> HistoryEntry:
        """Record the step in one write when its running entry could not be written."""
        entry, error = self._entry, self._start_error
        assert entry is not None and error is not None
        # A caller's logger need only have error(); the warning goes to Lore's own otherwise.
        warn = getattr(self.logger, "warning", None) or log.warning
        warn(
            "lore: the running entry %s of %s on %r could not be written (%s: %s); recording the finished entry",
            entry.id,
            entry.step,
            self._file_key,
            type(error).__name__,
            error,
        )
        life = self._life
        try:  # the write may have landed although it reported an error
            if status is StepStatus.SUCCESS:
                return life.succeed(
                    self._file_key,
                    entry.id,
                    finished.get("output"),
                    produces=finished.get("produces"),
                    metadata=finished.get("metadata"),
                )
            return life.fail(self._file_key, entry.id, finished["error"], metadata=finished.get("metadata"))
        except (HistoryNotFoundError, EntryNotFoundError):
            pass
        return life.record(
            self._file_key,
            entry.step,
            status,
            input=entry.input,
            output=finished.get("output"),
            error=finished.get("error"),
            started_at=entry.started_at,
            description=entry.description,
            metadata={**(entry.metadata or {}), **(finished.get("metadata") or {})} or None,
            orchestrator=entry.orchestrator,
            replay_of=entry.replay_of,
            attempt=entry.attempt,  # None: decided from the history, as the running write would have
            produces=finished.get("produces"),
            entry_id=entry.id,
        )

    def _what(self, outcome: str, ctx: StepContext) -> str:
        if self._start_error is not None:  # nothing of this step reached the history
            return f"{ctx.step} on {ctx.file_key!r} (the step ran untracked)"
        return f"the {outcome} of entry {ctx.entry_id} of {ctx.step} on {ctx.file_key!r}"

    def succeed(self, output: Any = None, *, produces: Iterable[str] = ()) -> HistoryEntry | None:
        """Record success with ``output`` (or ``ctx.output``) and the produced files (plus ``ctx.produces``)."""
        if not self._end():
            return self.ctx.recorded
        ctx = self.ctx
        for key in produces:
            ctx.produce(key)
        value = output if output is not None else ctx.output
        try:
            if self._start_error is not None:
                ctx.recorded = self._fold_in(
                    StepStatus.SUCCESS, output=value, produces=ctx.produces, metadata=ctx.metadata or None
                )
            else:
                ctx.recorded = self._life.succeed(
                    self._file_key, ctx.entry_id, value, produces=ctx.produces, metadata=ctx.metadata or None
                )
        except LoreError as exc:
            self.report(self._what("success", ctx), exc)
        finally:
            self.release_claim()
        return ctx.recorded

    def fail(self, error: ErrorLike) -> HistoryEntry | None:
        """Record failure with ``error``; a tracking error here is only logged (the step's own error matters more)."""
        try:
            if not self._end():
                return self.ctx.recorded
        except Exception as exc:  # the start's unexpected error: the step's own error matters more
            self.logger.error("lore: could not record the start of %s: %s: %s", self.ctx.step, type(exc).__name__, exc)
            return None
        ctx = self.ctx
        try:
            if self._start_error is not None:
                ctx.recorded = self._fold_in(StepStatus.FAILED, error=error, metadata=ctx.metadata or None)
            else:
                ctx.recorded = self._life.fail(self._file_key, ctx.entry_id, error, metadata=ctx.metadata or None)
        except LoreError as exc:
            self.report(self._what("failure", ctx), exc, may_raise=False)
        finally:
            self.release_claim()
        return ctx.recorded
