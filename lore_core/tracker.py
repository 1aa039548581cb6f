"""LoreTracker: records what happens to each file, in the bucket beside the file.

Example::

    from lore_core import LoreTracker

    tracker = LoreTracker.from_url("memory://demo")

    def validate(ctx):
        return {"rows": 42}

    result = tracker.run("uploads/report.csv", step="validate", handler=validate,
                         produces=["clean/report.parquet"])
    assert result.status == "success"
    assert tracker.get_descendants("uploads/report.csv") == ["clean/report.parquet"]
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from . import keys
from .errors import (
    ConcurrentUpdateError,
    CorruptHistoryError,
    EntryNotFoundError,
    HistoryNotFoundError,
    InvalidKeyError,
    LoreError,
    StepNotRegisteredError,
)
from .models import (
    SCHEMA_VERSION,
    ArchiveRef,
    ErrorInfo,
    FailedEntry,
    FileHistory,
    Handler,
    HistoryEntry,
    LineageNode,
    LineageRef,
    OrchestratorInfo,
    StepContext,
    StepResult,
    StepStatus,
    format_timestamp,
    new_entry_id,
    utc_now,
)
from .redaction import Redactor
from .stores import ConditionFailed, S3Store, Store, open_store
from .values import limit_size, limit_text, to_jsonable

__all__ = ["LoreTracker", "register_step"]

log = logging.getLogger("lore")

_GLOBAL_HANDLERS: dict[str, Handler] = {}
_F = TypeVar("_F", bound=Callable[..., Any])

# A mutation gets a private copy of the current document (None if there is none)
# and returns the new document, or None when the document already holds the change.
Mutation = Callable[[FileHistory | None], FileHistory | None]
_LEASE_EXPIRED = "LeaseExpired"


def register_step(name: str, handler: Handler | None = None) -> Any:
    """Register a step handler for every tracker in the process (usable as a decorator).

    A replay finds its handler by the entry's step name: first among the tracker's
    own (``@tracker.step``), then here.
    """
    if handler is not None:
        _GLOBAL_HANDLERS[name] = handler
        return handler

    def decorate(fn: _F) -> _F:
        _GLOBAL_HANDLERS[name] = fn
        return fn

    return decorate


def _as_list(produces: str | Iterable[str] | None) -> list[str]:
    if produces is None:
        return []
    if isinstance(produces, str):
        return [produces]
    out: list[str] = []
    for item in produces:
        if item not in out:
            out.append(item)
    return out


def _as_orchestrator(value: OrchestratorInfo | dict[str, Any] | None) -> OrchestratorInfo | None:
    if value is None or isinstance(value, OrchestratorInfo):
        return value
    return OrchestratorInfo.model_validate(value)


def _as_error(error: BaseException | ErrorInfo | str | dict[str, Any]) -> ErrorInfo:
    if isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        return ErrorInfo.from_exception(error)
    if isinstance(error, dict):
        return ErrorInfo.model_validate(error)
    return ErrorInfo(message=str(error))


def _duration_ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


class LoreTracker:
    """Records step history and lineage for files, as JSON documents in a store.

    Build one with ``LoreTracker.from_url("s3://bucket/.lore-s3")`` (also ``file:///dir``
    and ``memory://name``) or ``LoreTracker(bucket=..., prefix=..., s3_client=...)``.
    A tracker is thread-safe; share one per store in a process.
    """

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str = keys.DEFAULT_PREFIX,
        s3_client: Any = None,
        *,
        store: Store | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        expected_bucket_owner: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        cas_max_attempts: int = 60,
        max_ancestry: int = 1000,
        cache_size: int = 256,
        max_value_bytes: int = 64 * 1024,
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
        extra_secret_keys: Iterable[str] = (),
        max_entries: int = 500,
        lease_seconds: float = 600.0,
        first_heartbeat_seconds: float = 5.0,
        mark_running: bool = False,
        outage_timeout: float = 60.0,
        max_document_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if store is None:
            if not bucket:
                raise LoreError("LoreTracker needs a bucket (or a store); e.g. LoreTracker(bucket='my-bucket')")
            store = S3Store(
                bucket,
                s3_client,
                endpoint_url=endpoint_url,
                region=region,
                expected_bucket_owner=expected_bucket_owner,
                sse=sse,
                sse_kms_key_id=sse_kms_key_id,
                outage_timeout=outage_timeout,
            )
        elif bucket is not None and bucket != store.bucket:
            raise LoreError(f"bucket {bucket!r} does not match the store's bucket {store.bucket!r}")
        self.store = store
        self.bucket: str = store.bucket
        self.prefix: str = keys.validate_prefix(prefix)
        self.cas_max_attempts = max(1, cas_max_attempts)
        self.max_ancestry = max_ancestry
        self._cache_size = cache_size
        # The cache holds documents as stored (JSON dicts): validating one into a fresh
        # FileHistory is several times cheaper than deep-copying a model, and every
        # mutation attempt needs its own copy.
        self._cache: OrderedDict[tuple[str, str], tuple[dict[str, Any], str]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self.max_value_bytes = max_value_bytes
        self.max_entries = max(10, max_entries)
        self.max_document_bytes = max_document_bytes
        self.lease_seconds = lease_seconds
        self.first_heartbeat_seconds = first_heartbeat_seconds
        self.mark_running = mark_running
        self._markers: dict[tuple[str, str], str] = {}
        self._markers_lock = threading.Lock()
        self.redactor: Redactor | None = Redactor(secret_keys, extra_secret_keys) if redact else None

    @classmethod
    def from_url(
        cls,
        url: str,
        s3_client: Any = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        **options: Any,
    ) -> LoreTracker:
        """A tracker for ``s3://bucket/prefix``, ``file:///dir`` or ``memory://name``.

        S3 options (``expected_bucket_owner``, ``sse``, ``sse_kms_key_id``) go to the
        store; the rest (``cas_max_attempts``, ``max_ancestry``, ``cache_size``) to the tracker.
        """
        store_keys = ("expected_bucket_owner", "sse", "sse_kms_key_id", "outage_timeout")
        store_options = {k: options.pop(k) for k in store_keys if k in options}
        if url.startswith("s3://"):
            store_options.update(s3_client=s3_client, endpoint_url=endpoint_url, region=region)
        store, prefix = open_store(url, **store_options)
        return cls(prefix=prefix, store=store, **options)

    def __repr__(self) -> str:
        return f"LoreTracker({self.store.location(self.prefix)!r})"

    # ------------------------------------------------------------------ keys and I/O

    def _file_key(self, file_key: str) -> str:
        return keys.validate_file_key(file_key, self.prefix)

    def history_location(self, file_key: str, bucket: str | None = None) -> str:
        """Where the history of ``file_key`` is stored, as a URL."""
        return self._store_for(bucket).location(keys.history_key(self.prefix, self._file_key(file_key)))

    def _store_for(self, bucket: str | None) -> Store:
        return self.store if bucket is None or bucket == self.bucket else self.store.for_bucket(bucket)

    def _cache_get(self, store: Store, hkey: str) -> tuple[dict[str, Any], str] | None:
        with self._cache_lock:
            found = self._cache.get((store.bucket, hkey))
            if found is not None:
                self._cache.move_to_end((store.bucket, hkey))
            return found

    def _cache_put(self, store: Store, hkey: str, raw: dict[str, Any], etag: str) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[(store.bucket, hkey)] = (raw, etag)
            self._cache.move_to_end((store.bucket, hkey))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _cache_drop(self, store: Store, hkey: str) -> None:
        with self._cache_lock:
            self._cache.pop((store.bucket, hkey), None)

    def _read(self, store: Store, hkey: str) -> tuple[dict[str, Any] | None, str | None]:
        """The stored document (validated) as a JSON dict, and its ETag."""
        found = store.get(hkey)
        if found is None:
            self._cache_drop(store, hkey)
            return None, None
        if len(found.data) > self.max_document_bytes:
            raise CorruptHistoryError(
                store.location(hkey),
                f"document is {len(found.data)} bytes, over the limit of {self.max_document_bytes} "
                "(max_document_bytes)",
            )
        try:
            raw = json.loads(found.data)
            FileHistory.model_validate(raw)
        except RecursionError:
            raise CorruptHistoryError(store.location(hkey), "document is nested too deeply to parse") from None
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, json.JSONDecodeError) else _summarise(exc)
            raise CorruptHistoryError(store.location(hkey), reason) from None
        self._cache_put(store, hkey, raw, found.etag)
        return raw, found.etag

    def _load(self, file_key: str, bucket: str | None = None, *, fresh: bool = False) -> FileHistory | None:
        store = self._store_for(bucket)
        hkey = keys.history_key(self.prefix, file_key)
        raw: dict[str, Any] | None = None
        if not fresh:
            cached = self._cache_get(store, hkey)
            if cached is not None:
                raw = cached[0]
        if raw is None:
            raw = self._read(store, hkey)[0]
        return FileHistory.model_validate(raw) if raw is not None else None

    def _update(
        self,
        file_key: str,
        mutate: Mutation,
        *,
        bucket: str | None = None,
        assume_new: bool = False,
    ) -> FileHistory | None:
        """Apply ``mutate`` to the document with compare-and-swap, retrying until it sticks.

        Starts from the cached document and ETag when this tracker wrote last (no
        read), or from "no document" when ``assume_new`` (a create needs no read).
        On 412/409 it re-reads and re-applies. A mutation that finds its change
        already there ends the loop: that is how a PUT which landed, was retried by
        botocore and then answered 412 is recognised as our own success.
        """
        store = self._store_for(bucket)
        hkey = keys.history_key(self.prefix, file_key)
        cached = self._cache_get(store, hkey)
        raw: dict[str, Any] | None
        etag: str | None
        if cached is not None:
            raw, etag = cached
        elif assume_new:
            raw, etag = None, None
        else:
            raw, etag = self._read(store, hkey)
        speculative = cached is not None or assume_new
        attempt = 0
        while True:
            try:
                new = mutate(FileHistory.model_validate(raw) if raw is not None else None)
            except EntryNotFoundError:
                if not speculative:
                    raise
                speculative = False  # the cached copy may be stale; decide on a fresh read
                raw, etag = self._read(store, hkey)
                continue
            if new is None:
                if raw is None and speculative:
                    speculative = False
                    raw, etag = self._read(store, hkey)
                    continue
                return FileHistory.model_validate(raw) if raw is not None else None
            now = utc_now()
            new.updated_at = now
            new.schema_version = SCHEMA_VERSION
            self._archive_overflow(store, file_key, new)
            payload = new.to_json_dict()
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            try:
                new_etag = store.put(hkey, data, if_match=etag, if_none_match=etag is None)
            except ConditionFailed as conflict:
                attempt += 1
                self._cache_drop(store, hkey)
                if attempt >= self.cas_max_attempts:
                    raise ConcurrentUpdateError(
                        f"gave up updating {store.location(hkey)} after {attempt} conflicting writes "
                        f"(last: HTTP {conflict.status}); other writers kept changing it"
                    ) from None
                if not speculative or attempt > 1:
                    # Full jitter: spreads competing writers out instead of letting them collide again.
                    time.sleep(random.uniform(0, min(0.5, 0.01 * (2**attempt))))
                speculative = False
                raw, etag = self._read(store, hkey)
                continue
            self._cache_put(store, hkey, payload, new_etag)
            return new

    def _new_history(self, file_key: str, bucket: str | None = None) -> FileHistory:
        now = utc_now()
        return FileHistory(
            schema_version=SCHEMA_VERSION,
            file_key=file_key,
            bucket=bucket or self.bucket,
            created_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------------ what gets written

    def _value(self, value: Any, what: str) -> Any:
        """JSON-ready, secrets masked, size-limited: the form in which a value is stored."""
        if value is None:
            return None
        value = to_jsonable(value, what)
        if self.redactor is not None:
            value = self.redactor.redact(value)
        return limit_size(value, self.max_value_bytes)

    def _error(self, error: BaseException | ErrorInfo | str | dict[str, Any]) -> ErrorInfo:
        info = _as_error(error)
        message, stack = info.message, info.stack
        if self.redactor is not None:
            message = self.redactor.redact_text(message)
            stack = self.redactor.redact_text(stack) if stack is not None else None
        return info.model_copy(
            update={
                "message": limit_text(message, self.max_value_bytes) or "",
                "stack": limit_text(stack, self.max_value_bytes),
            }
        )

    # ------------------------------------------------------------------ registering handlers

    def step(self, name: str) -> Callable[[_F], _F]:
        """Register the decorated function as the handler of step ``name`` (for replay by name)."""

        def decorate(fn: _F) -> _F:
            self._handlers[name] = fn
            return fn

        return decorate

    def register_step(self, name: str, handler: Handler) -> None:
        self._handlers[name] = handler

    def handler_for(self, step: str) -> Handler | None:
        return self._handlers.get(step) or _GLOBAL_HANDLERS.get(step)

    # ------------------------------------------------------------------ the step lifecycle

    def start(
        self,
        file_key: str,
        step: str,
        input: Any = None,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        produces: str | Iterable[str] | None = None,
        orchestrator: OrchestratorInfo | dict[str, Any] | None = None,
        replay_of: str | None = None,
        attempt: int | None = None,
    ) -> str:
        """Record a ``running`` entry and return its id (1 read + 1 write; no read if this tracker wrote last)."""
        file_key = self._file_key(file_key)
        if not step or not isinstance(step, str):
            raise LoreError(f"step name for {file_key!r} must be a non-empty string")
        entry = HistoryEntry(
            id=new_entry_id(),
            step=step,
            description=description,
            status=StepStatus.RUNNING,
            input=self._value(input, f"input of {step} on {file_key}"),
            produces=[self._file_key(p) for p in _as_list(produces)] or None,
            started_at=utc_now(),
            metadata=self._value(metadata, f"metadata of {step} on {file_key}") if metadata else None,
            replay_of=replay_of,
            attempt=attempt,
            orchestrator=_as_orchestrator(orchestrator),
        )
        entry.lease_expires_at = entry.started_at + timedelta(seconds=self.lease_seconds)

        def add_running(doc: FileHistory | None) -> FileHistory | None:
            doc = doc or self._new_history(file_key)
            if doc.entry(entry.id) is not None:
                return None
            if entry.attempt is None:
                original = doc.entry(replay_of) if replay_of else None
                entry.attempt = (original.attempt or 1) + 1 if original is not None else 1
            doc.entries.append(entry)
            return doc

        self._update(file_key, add_running)
        if self.mark_running:
            self._mark_running(file_key, entry.id, step)
        return entry.id

    def heartbeat(self, file_key: str, entry_id: str) -> None:
        """Renew a running entry's lease, and mark it in the index so that, should the worker die,
        ``list_failed`` finds it once the lease runs out. ``run`` calls this by itself for long steps."""
        file_key = self._file_key(file_key)
        expires = utc_now() + timedelta(seconds=self.lease_seconds)
        step: list[str] = []

        def renew(doc: FileHistory | None) -> FileHistory | None:
            entry = doc.entry(entry_id) if doc is not None else None
            if doc is None or entry is None:
                raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
            step[:] = [entry.step]
            if entry.finished:
                return None
            entry.lease_expires_at = expires
            return doc

        self._update(file_key, renew)
        self._mark_running(file_key, entry_id, step[0])

    def _mark_running(self, file_key: str, entry_id: str, step: str) -> None:
        key = keys.running_marker_key(self.prefix, file_key, entry_id, step, self.lease_seconds)
        self.store.put(key, b"{}")
        with self._markers_lock:
            self._markers[(file_key, entry_id)] = key

    def _unmark_running(self, file_key: str, entry_id: str) -> None:
        with self._markers_lock:
            key = self._markers.pop((file_key, entry_id), None)
        if key is not None:
            self.store.delete(key)

    def succeed(
        self,
        file_key: str,
        entry_id: str,
        output: Any = None,
        *,
        produces: str | Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HistoryEntry:
        """Mark a running entry successful; each produced file gets a history derived from it."""
        file_key = self._file_key(file_key)
        return self._finish(
            file_key,
            entry_id,
            StepStatus.SUCCESS,
            output=self._value(output, f"output of entry {entry_id} on {file_key}"),
            produces=[self._file_key(p) for p in _as_list(produces)],
            metadata=metadata,
        )

    def fail(
        self,
        file_key: str,
        entry_id: str,
        error: BaseException | ErrorInfo | str | dict[str, Any],
        *,
        metadata: dict[str, Any] | None = None,
    ) -> HistoryEntry:
        """Mark a running entry failed with ``error`` (an exception, or a message) and index the failure."""
        file_key = self._file_key(file_key)
        return self._finish(file_key, entry_id, StepStatus.FAILED, error=self._error(error), metadata=metadata)

    def _entry_of(self, file_key: str, entry_id: str) -> HistoryEntry:
        doc = self._load(file_key)
        found = doc.entry(entry_id) if doc is not None else None
        if found is None:
            doc = self._load(file_key, fresh=True)
            found = doc.entry(entry_id) if doc is not None else None
        if doc is None:
            raise HistoryNotFoundError(f"no history for {file_key!r} at {self.history_location(file_key)}")
        if found is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        return found

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
        all_produced = _as_list([*(current.produces or []), *produces]) if status is StepStatus.SUCCESS else []
        extra_meta = self._value(metadata, f"metadata of entry {entry_id}") if metadata else None
        if status is StepStatus.FAILED:
            # Index first: a crash before the history write leaves an index object that
            # points at a running entry (replayable), never a failure nobody can find.
            self._index_failure(file_key, entry_id, current.step, error)
        if all_produced:
            self._derive_many(all_produced, LineageRef(file_key=file_key, entry_id=entry_id), file_key)
        completed = utc_now()
        resolved: list[HistoryEntry] = []

        def finish(doc: FileHistory | None) -> FileHistory | None:
            if doc is None:
                raise HistoryNotFoundError(f"history of {file_key!r} disappeared before entry {entry_id} finished")
            entry = doc.entry(entry_id)
            if entry is None:
                raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
            resolved.clear()
            changed = False
            if entry.status is not status or entry.completed_at is None:
                if entry.finished and entry.status is not status:
                    raise LoreError(
                        f"entry {entry_id} of {file_key!r} already finished as {entry.status.value}; "
                        f"cannot mark it {status.value}"
                    )
                entry.status = status
                entry.completed_at = completed
                entry.duration_ms = _duration_ms(entry.started_at, completed)
                entry.lease_expires_at = None
                if status is StepStatus.SUCCESS:
                    entry.output = output
                    entry.produces = all_produced or entry.produces
                if error is not None:
                    entry.error = error
                if extra_meta:
                    entry.metadata = {**(entry.metadata or {}), **extra_meta}
                changed = True
            for produced in all_produced:
                changed |= _add_ref(doc.derived_to, LineageRef(file_key=produced, entry_id=entry_id))
            if status is StepStatus.SUCCESS:
                resolved.extend(_resolve_failures(doc, entry))
                changed |= bool(resolved)
            return doc if changed else None

        doc = self._update(file_key, finish)
        self._unmark_running(file_key, entry_id)
        self._unindex(file_key, resolved)
        result = doc.entry(entry_id) if doc is not None else None
        if result is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        return result

    def record(
        self,
        file_key: str,
        step: str,
        status: StepStatus | str = StepStatus.SUCCESS,
        *,
        input: Any = None,
        output: Any = None,
        error: BaseException | ErrorInfo | str | dict[str, Any] | None = None,
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        orchestrator: OrchestratorInfo | dict[str, Any] | None = None,
        replay_of: str | None = None,
        attempt: int | None = None,
        produces: str | Iterable[str] | None = None,
        derived_from: Iterable[LineageRef | str] = (),
    ) -> HistoryEntry:
        """Record a finished entry in one write (for callers that saw the step run elsewhere).

        ``derived_from`` names the files this one was made from (``LineageRef`` or a
        key; an entry id of None means the source's latest successful entry); they
        are linked both ways, as ``register_derived_file`` does.
        """
        file_key = self._file_key(file_key)
        status = StepStatus(status)
        if status is StepStatus.RUNNING:
            raise LoreError("record() writes finished entries; use start() for a running one")
        completed = completed_at or utc_now()
        started = started_at or completed
        entry = HistoryEntry(
            id=new_entry_id(),
            step=step,
            description=description,
            status=status,
            input=self._value(input, f"input of {step} on {file_key}"),
            output=self._value(output, f"output of {step} on {file_key}") if status is StepStatus.SUCCESS else None,
            error=self._error(error) if error is not None else None,
            produces=[self._file_key(p) for p in _as_list(produces)] or None,
            started_at=started,
            completed_at=completed,
            duration_ms=_duration_ms(started, completed),
            metadata=self._value(metadata, f"metadata of {step} on {file_key}") if metadata else None,
            replay_of=replay_of,
            attempt=attempt,
            orchestrator=_as_orchestrator(orchestrator),
        )
        if status is StepStatus.FAILED:
            if entry.error is None:
                entry.error = ErrorInfo(message="failed")
            self._index_failure(file_key, entry.id, step, entry.error)
        sources = [self._source_ref(ref) for ref in derived_from]
        source_docs = self._fetch_many([(s.bucket, s.file_key) for s in sources])
        sources = [_with_default_entry(s, source_docs.get((s.bucket or self.bucket, s.file_key))) for s in sources]
        ancestry = self._ancestry_for(sources, source_docs, target_bucket=self.bucket)
        produced = entry.produces or []
        if produced and status is StepStatus.SUCCESS:
            self._derive_many(produced, LineageRef(file_key=file_key, entry_id=entry.id), file_key)
        resolved: list[HistoryEntry] = []

        def add_finished(doc: FileHistory | None) -> FileHistory | None:
            doc = doc or self._new_history(file_key)
            resolved.clear()
            changed = False
            if doc.entry(entry.id) is None:
                if entry.attempt is None:
                    original = doc.entry(replay_of) if replay_of else None
                    entry.attempt = (original.attempt or 1) + 1 if original is not None else 1
                doc.entries.append(entry.model_copy(deep=True))
                changed = True
            for source in sources:
                changed |= _add_ref(doc.derived_from, _rebase(source, self.bucket))
            changed |= _merge_ancestry(doc, ancestry, self.max_ancestry)
            for p in produced if status is StepStatus.SUCCESS else []:
                changed |= _add_ref(doc.derived_to, LineageRef(file_key=p, entry_id=entry.id))
            if status is StepStatus.SUCCESS:
                stored = doc.entry(entry.id)
                assert stored is not None
                resolved.extend(_resolve_failures(doc, stored))
                changed |= bool(resolved)
            return doc if changed else None

        doc = self._update(file_key, add_finished)
        self._unindex(file_key, resolved)
        for source in sources:
            self._link_forward(source, LineageRef(file_key=file_key, entry_id=source.entry_id))
        stored = doc.entry(entry.id) if doc is not None else None
        if stored is None:
            raise EntryNotFoundError(f"history of {file_key!r} lost entry {entry.id!r} while it was written")
        return stored

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
        orchestrator: OrchestratorInfo | dict[str, Any] | None = None,
        replay_of: str | None = None,
    ) -> StepResult:
        """Run ``handler(ctx)`` as step ``step`` of ``file_key`` and record it.

        Costs 1 read and 2 writes (running, then final) plus 1 write per produced
        file. The handler's exception is recorded and the result says ``failed``;
        it is re-raised only with ``raise_on_failure=True``. With
        ``skip_if_succeeded`` a step that already succeeded on the file is not run
        again: the result says ``skipped`` and carries the earlier entry's id and output.
        """
        file_key = self._file_key(file_key)
        handler = handler or self.handler_for(step)
        if handler is None:
            raise StepNotRegisteredError(
                f"no handler for step {step!r}: pass handler= or register one with @tracker.step({step!r})"
            )
        if skip_if_succeeded:
            doc = self._load(file_key, fresh=True)
            done = doc.latest(step=step, status=StepStatus.SUCCESS) if doc is not None else None
            if done is not None:
                return StepResult(StepStatus.SKIPPED, done.id, file_key, step, output=done.output)
        planned = _as_list(produces)
        entry_id = self.start(
            file_key,
            step,
            input,
            description=description,
            metadata=metadata,
            produces=planned,
            orchestrator=orchestrator,
            replay_of=replay_of,
        )
        started = self._entry_of(file_key, entry_id)
        ctx = StepContext(
            file_key=file_key,
            bucket=self.bucket,
            step=step,
            entry_id=entry_id,
            # The handler gets the value as given; the history holds its stored (redacted) form.
            input=input,
            tracker=self,
            attempt=started.attempt or 1,
            replay_of=replay_of,
            produces=list(planned),
        )
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat_loop, args=(file_key, entry_id, stop), name=f"lore-heartbeat-{entry_id}", daemon=True
        )
        beat.start()
        try:
            output = handler(ctx)
        except BaseException as exc:
            stop.set()
            beat.join()
            recorded = self.fail(file_key, entry_id, exc)
            if raise_on_failure or not isinstance(exc, Exception):
                raise
            return StepResult(StepStatus.FAILED, entry_id, file_key, step, error=recorded.error, replay_of=replay_of)
        stop.set()
        beat.join()
        recorded = self.succeed(file_key, entry_id, output, produces=ctx.produces)
        return StepResult(StepStatus.SUCCESS, entry_id, file_key, step, output=recorded.output, replay_of=replay_of)

    def _heartbeat_loop(self, file_key: str, entry_id: str, stop: threading.Event) -> None:
        # The first beat comes early (it writes the marker that lets list_failed find the
        # step should the worker die), later ones at a third of the lease, so that two
        # missed beats still leave the lease valid. Steps shorter than the first wait cost
        # nothing extra.
        interval = self.lease_seconds / 3
        wait = min(interval, self.first_heartbeat_seconds)
        while not stop.wait(wait):
            wait = interval
            try:
                self.heartbeat(file_key, entry_id)
            except LoreError as exc:
                log.warning("lore: could not renew the lease of entry %s on %r: %s", entry_id, file_key, exc)

    def replay(
        self,
        file_key: str,
        entry_id: str,
        handler: Handler | None = None,
        *,
        force: bool = False,
        orchestrator: OrchestratorInfo | dict[str, Any] | None = None,
        raise_on_failure: bool = False,
    ) -> StepResult:
        """Run a recorded entry's step again with its original input; the new entry has ``replay_of``.

        The handler is ``handler`` or the one registered for the step. A failure that
        a later run already resolved is not run again (the result says ``skipped``
        and carries the resolving entry's id) unless ``force=True``.
        """
        file_key = self._file_key(file_key)
        doc = self._load(file_key, fresh=True)
        if doc is None:
            raise HistoryNotFoundError(f"no history for {file_key!r} at {self.history_location(file_key)}")
        original = doc.entry(entry_id)
        if original is None and doc.archived:
            original = self._with_archive(doc).entry(entry_id)
        if original is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        if original.status is StepStatus.RUNNING and not original.abandoned and not force:
            raise LoreError(f"entry {entry_id} of {file_key!r} is still running; pass force=True to replay it anyway")
        if original.resolved_by and not force:
            self._unindex(file_key, [original])  # repairs an index object a crash left behind
            return StepResult(StepStatus.SKIPPED, original.resolved_by, file_key, original.step, replay_of=entry_id)
        handler = handler or self.handler_for(original.step)
        if handler is None:
            raise StepNotRegisteredError(
                f"cannot replay entry {entry_id} of {file_key!r}: no handler for step {original.step!r}; "
                f"pass handler= or register one with @tracker.step({original.step!r})"
            )
        return self.run(
            file_key,
            original.step,
            handler,
            input=original.input,
            produces=original.produces,
            description=original.description,
            metadata=original.metadata,
            raise_on_failure=raise_on_failure,
            orchestrator=orchestrator,
            replay_of=entry_id,
        )

    # ------------------------------------------------------------------ lineage

    def _source_ref(self, ref: LineageRef | str) -> LineageRef:
        if isinstance(ref, str):
            ref = LineageRef(file_key=ref)
        self._file_key(ref.file_key)
        bucket = None if ref.bucket in (None, self.bucket) else ref.bucket
        return ref.model_copy(update={"bucket": bucket})

    def register_derived_file(
        self,
        derived_key: str,
        source_key: str,
        source_entry_id: str | None = None,
        *,
        source_bucket: str | None = None,
    ) -> None:
        """Record that ``derived_key`` was made from ``source_key`` by entry ``source_entry_id``.

        With no entry id, the source's latest successful entry is used. The derived
        file's ``derivedFrom`` and ``ancestry`` and the source's ``derivedTo`` are updated.
        """
        derived_key = self._file_key(derived_key)
        source = self._source_ref(LineageRef(file_key=source_key, entry_id=source_entry_id, bucket=source_bucket))
        source_doc = self._load(source.file_key, source.bucket, fresh=True)
        if source_entry_id is not None and (source_doc is None or source_doc.entry(source_entry_id) is None):
            raise EntryNotFoundError(f"history of {source_key!r} has no entry {source_entry_id!r}")
        source = _with_default_entry(source, source_doc)
        self._derive_many([derived_key], source, source.file_key, source_doc=source_doc)
        self._link_forward(source, LineageRef(file_key=derived_key, entry_id=source.entry_id))

    def _link_forward(self, source: LineageRef, child: LineageRef) -> None:
        """Add ``child`` to the source's ``derivedTo`` (the source may live in another bucket)."""
        child = _rebase(child.model_copy(update={"bucket": self.bucket}), source.bucket or self.bucket)

        def add(doc: FileHistory | None) -> FileHistory | None:
            doc = doc or self._new_history(source.file_key, source.bucket)
            return doc if _add_ref(doc.derived_to, child) else None

        self._update(source.file_key, add, bucket=source.bucket)

    def _derive_many(
        self,
        derived_keys: Sequence[str],
        source: LineageRef,
        source_key: str,
        *,
        source_doc: FileHistory | None = None,
    ) -> None:
        """Point each derived file's history at ``source`` (one write each when the file is new)."""
        if source_doc is None:
            source_doc = self._load(source_key, source.bucket)
        docs = {(source.bucket or self.bucket, source.file_key): source_doc}
        ancestry = self._ancestry_for([source], docs, target_bucket=self.bucket)
        ref = _rebase(source, self.bucket)

        def derive(key: str) -> None:
            def add(doc: FileHistory | None) -> FileHistory | None:
                doc = doc or self._new_history(key)
                changed = _add_ref(doc.derived_from, ref)
                changed |= _merge_ancestry(doc, ancestry, self.max_ancestry)
                return doc if changed else None

            self._update(key, add, assume_new=True)

        if len(derived_keys) == 1:
            derive(derived_keys[0])
            return
        with ThreadPoolExecutor(max_workers=min(16, len(derived_keys))) as pool:
            list(pool.map(derive, derived_keys))

    def _ancestry_for(
        self,
        sources: Sequence[LineageRef],
        docs: dict[tuple[str, str], FileHistory | None],
        *,
        target_bucket: str,
    ) -> list[LineageRef]:
        """The ancestry a file derived from ``sources`` inherits: the sources, then their ancestors."""
        out: list[LineageRef] = []
        for source in sources:
            _add_ref(out, _rebase(source, target_bucket), by_file=True)
        for source in sources:
            source_bucket = source.bucket or self.bucket
            doc = docs.get((source_bucket, source.file_key))
            if doc is None:
                continue
            inherited = doc.ancestry if doc.ancestry is not None else doc.derived_from
            for ref in inherited:
                absolute = ref if ref.bucket else ref.model_copy(update={"bucket": source_bucket})
                _add_ref(out, _rebase(absolute, target_bucket), by_file=True)
        return out[: self.max_ancestry]

    def _fetch_many(self, wanted: Iterable[tuple[str | None, str]]) -> dict[tuple[str, str], FileHistory | None]:
        """Read many histories at once, in parallel (one round trip)."""
        unique = list(dict.fromkeys((bucket or self.bucket, key) for bucket, key in wanted))
        if not unique:
            return {}

        def fetch(item: tuple[str, str]) -> FileHistory | None:
            return self._load(item[1], item[0], fresh=True)

        if len(unique) == 1:
            return {unique[0]: fetch(unique[0])}
        with ThreadPoolExecutor(max_workers=min(32, len(unique))) as pool:
            return dict(zip(unique, pool.map(fetch, unique), strict=True))

    def get_lineage(self, file_key: str) -> LineageNode | None:
        """The file and, recursively, the files it was derived from.

        Two round trips at any depth: the file's history, then every ancestor its
        ``ancestry`` lists, fetched in parallel. Ancestors missing from ``ancestry``
        (documents written by other tools) are fetched level by level.
        """
        from .lineage import build_lineage

        file_key = self._file_key(file_key)
        return build_lineage(self, file_key)

    def get_descendants(self, file_key: str) -> list[str]:
        """Files derived directly from ``file_key`` (one read, via ``derivedTo``).

        Children in another bucket are given as ``s3://bucket/key``.
        """
        doc = self.get_history(file_key)
        if doc is None:
            return []
        out: list[str] = []
        for ref in doc.derived_to:
            name = ref.file_key if ref.bucket in (None, self.bucket) else f"s3://{ref.bucket}/{ref.file_key}"
            if name not in out:
                out.append(name)
        return out

    # ------------------------------------------------------------------ reading

    def get_history(
        self, file_key: str, bucket: str | None = None, *, include_archived: bool = False
    ) -> FileHistory | None:
        """The file's history as stored now (one read), or None if it has none.

        The live document keeps the newest ``max_entries`` entries; older ones sit in
        archive segments, which ``include_archived=True`` reads too (in parallel) and
        puts first, so ``entries`` is the whole history, oldest first.
        """
        file_key = self._file_key(file_key)
        doc = self._load(file_key, bucket, fresh=True)
        if doc is not None and include_archived and doc.archived:
            return self._with_archive(doc, bucket)
        return doc

    def _with_archive(self, doc: FileHistory, bucket: str | None = None) -> FileHistory:
        store = self._store_for(bucket)
        refs = list(doc.archived or [])

        def fetch(ref: ArchiveRef) -> list[HistoryEntry]:
            found = store.get(ref.key)
            if found is None:
                raise CorruptHistoryError(store.location(ref.key), "archive segment listed in the history is missing")
            try:
                data = json.loads(found.data)
                return [HistoryEntry.model_validate(e) for e in data["entries"]]
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise CorruptHistoryError(store.location(ref.key), f"archive segment does not parse: {exc}") from None

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(refs)))) as pool:
            segments = list(pool.map(fetch, refs))
        merged = doc.model_copy(deep=True)
        merged.entries = [e for segment in segments for e in segment] + merged.entries
        return merged

    def _archive_overflow(self, store: Store, file_key: str, doc: FileHistory) -> None:
        """Move the oldest finished entries into an immutable segment once the live document is full.

        Running entries and unresolved failures stay live (replay and the index need them).
        A fifth of the cap moves at once, so archiving costs one extra write every
        ``max_entries / 5`` steps and the live document never grows past the cap.
        """
        if len(doc.entries) <= self.max_entries:
            return
        excess = len(doc.entries) - self.max_entries + self.max_entries // 5
        moving = [e for e in doc.entries if e.finished and not e.unresolved_failure][:excess]
        if not moving:
            return
        key = keys.archive_key(self.prefix, file_key, moving[0].id, moving[-1].id, len(moving))
        body = {
            "schemaVersion": SCHEMA_VERSION,
            "fileKey": file_key,
            "bucket": doc.bucket,
            "entries": [e.to_json_dict() for e in moving],
            "createdAt": format_timestamp(utc_now()),
        }
        # A 412 means an earlier try of this same update wrote it: segments are immutable.
        with contextlib.suppress(ConditionFailed):
            store.put(key, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(), if_none_match=True)
        moved = {e.id for e in moving}
        doc.entries = [e for e in doc.entries if e.id not in moved]
        doc.archived = [
            *(doc.archived or []),
            ArchiveRef(key=key, count=len(moving), first_entry_id=moving[0].id, last_entry_id=moving[-1].id),
        ]

    def get_failed_steps(self, file_key: str, include_resolved: bool = False) -> list[HistoryEntry]:
        """Failed entries of the file that no later success has resolved (all of them with ``include_resolved``)."""
        doc = self.get_history(file_key)
        return doc.failed_entries(include_resolved) if doc is not None else []

    def list_tracked_files(self, prefix: str | None = None) -> Iterator[str]:
        """Keys of tracked files (optionally under ``prefix``), in key order; one LIST per 1,000."""
        list_prefix = f"{self.prefix}/{self._file_prefix(prefix)}"
        reserved = keys.reserved_root(self.prefix)
        start_after: str | None = None
        while True:
            hit_reserved = False
            for obj in self.store.list(list_prefix, start_after):
                if obj.key.startswith(reserved):
                    hit_reserved = True
                    break
                file_key = keys.file_key_from_history_key(self.prefix, obj.key)
                if file_key is not None:
                    yield file_key
            if not hit_reserved:
                return
            # Skip Lore's own index in one step: '0' is the character after '/'.
            start_after = reserved[:-1] + "0"

    def list_all_histories(self, prefix: str | None = None, batch_size: int = 32) -> Iterator[FileHistory]:
        """Every history (optionally under ``prefix``), read in parallel batches."""
        batch: list[str] = []
        for file_key in self.list_tracked_files(prefix):
            batch.append(file_key)
            if len(batch) >= batch_size:
                yield from self._read_batch(batch)
                batch = []
        if batch:
            yield from self._read_batch(batch)

    def _read_batch(self, file_keys: list[str]) -> Iterator[FileHistory]:
        docs = self._fetch_many((None, k) for k in file_keys)
        for key in file_keys:
            doc = docs.get((self.bucket, key))
            if doc is not None:
                yield doc

    def list_failed(self, prefix: str | None = None, step: str | None = None) -> Iterator[FailedEntry]:
        """Unresolved failed entries across the bucket, from the failure index (one LIST per 1,000)."""
        list_prefix = keys.failure_index_prefix(self.prefix, self._file_prefix(prefix))
        now = utc_now()
        last: tuple[str, str] | None = None
        for obj in self.store.list(list_prefix):
            parsed = keys.parse_failure_index_key(self.prefix, obj.key)
            if parsed is None:
                continue
            file_key, entry_id, entry_step, lease = parsed
            if (step is not None and entry_step != step) or last == (file_key, entry_id):
                continue  # a failure sorts before its entry's running marker: report it once
            abandoned = False
            failed_at = obj.last_modified
            if lease is not None:
                # A running marker: its LastModified is the last heartbeat (S3 keeps whole
                # seconds, hence the extra second before calling the lease expired).
                if obj.last_modified is None or obj.last_modified + timedelta(seconds=lease + 1) > now:
                    continue  # still alive
                abandoned = True
                failed_at = obj.last_modified + timedelta(seconds=lease + 1)
            last = (file_key, entry_id)
            yield FailedEntry(
                file_key=file_key,
                entry_id=entry_id,
                step=entry_step,
                bucket=self.bucket,
                failed_at=failed_at,
                abandoned=abandoned,
            )

    def _file_prefix(self, prefix: str | None) -> str:
        if not prefix:
            return ""
        if prefix.startswith("/") or any(seg in (".", "..") for seg in prefix.split("/")):
            raise InvalidKeyError(f"file key prefix {prefix!r} must be relative and contain no '.' or '..' segments")
        return prefix

    # ------------------------------------------------------------------ maintenance

    def clear_history(self, file_key: str) -> None:
        """Drop the file's entries; keep its lineage links (``derivedFrom``, ``derivedTo``, ``ancestry``)."""
        file_key = self._file_key(file_key)
        dropped: list[HistoryEntry] = []

        segments: list[str] = []

        def clear(doc: FileHistory | None) -> FileHistory | None:
            dropped.clear()
            segments.clear()
            if doc is None or (not doc.entries and not doc.archived):
                return None
            dropped.extend(e for e in doc.entries if e.unresolved_failure)
            segments.extend(ref.key for ref in doc.archived or [])
            doc.entries = []
            doc.archived = None
            return doc

        if self._load(file_key, fresh=True) is None:
            return
        self._update(file_key, clear)
        self._unindex(file_key, dropped)
        for key in segments:
            self.store.delete(key)

    # ------------------------------------------------------------------ failure index

    def _index_failure(self, file_key: str, entry_id: str, step: str, error: ErrorInfo | None) -> None:
        body = {
            "fileKey": file_key,
            "entryId": entry_id,
            "step": step,
            "failedAt": format_timestamp(utc_now()),
            "error": (error.message[:500] if error is not None else None),
        }
        key = keys.failure_index_key(self.prefix, file_key, entry_id, step)
        self.store.put(key, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def _unindex(self, file_key: str, entries: Iterable[HistoryEntry]) -> None:
        for entry in entries:
            if entry.error is not None and entry.error.name == _LEASE_EXPIRED:
                # A dead worker's marker: its lease length is in its key, so find it by listing.
                for obj in self.store.list(keys.entry_index_prefix(self.prefix, file_key, entry.id)):
                    self.store.delete(obj.key)
            else:
                self.store.delete(keys.failure_index_key(self.prefix, file_key, entry.id, entry.step))


def _summarise(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "document"
        return f"{exc.error_count()} validation error(s); first at {where}: {first.get('msg')}"
    return str(exc)


def _add_ref(refs: list[LineageRef], ref: LineageRef, *, by_file: bool = False) -> bool:
    for existing in refs:
        if existing.same_file(ref) and (by_file or existing.entry_id == ref.entry_id):
            return False
    refs.append(ref)
    return True


def _rebase(ref: LineageRef, target_bucket: str) -> LineageRef:
    """``ref`` as written in a document of ``target_bucket`` (bucket only when it differs)."""
    if ref.bucket == target_bucket:
        return ref.model_copy(update={"bucket": None})
    return ref


def _merge_ancestry(doc: FileHistory, ancestry: Sequence[LineageRef], limit: int) -> bool:
    current = list(doc.ancestry or [])
    changed = doc.ancestry is None
    for ref in ancestry:
        if ref.same_file(LineageRef(file_key=doc.file_key)) and ref.bucket is None:
            continue
        changed |= _add_ref(current, ref, by_file=True)
    doc.ancestry = current[:limit]
    return changed


def _with_default_entry(ref: LineageRef, doc: FileHistory | None) -> LineageRef:
    if ref.entry_id is not None or doc is None:
        return ref
    latest = doc.latest(status=StepStatus.SUCCESS) or doc.latest()
    return ref.model_copy(update={"entry_id": latest.id if latest else None})


def _resolve_failures(doc: FileHistory, success: HistoryEntry) -> list[HistoryEntry]:
    """Mark earlier unresolved failures of the same step (and the replayed entry) as resolved.

    An abandoned entry (lease expired) becomes a failure with a ``LeaseExpired`` error on the way.
    """
    resolved = []
    for entry in doc.entries:
        if not entry.unresolved_failure or entry.id == success.id:
            continue
        if entry.id == success.replay_of or (entry.step == success.step and entry.id < success.id):
            if entry.status is StepStatus.RUNNING:
                expired = entry.lease_expires_at or utc_now()
                entry.status = StepStatus.FAILED
                entry.error = ErrorInfo(
                    name=_LEASE_EXPIRED,
                    message=f"abandoned: the worker stopped renewing its lease, which expired at "
                    f"{format_timestamp(expired)}",
                )
                entry.completed_at = expired
                entry.duration_ms = _duration_ms(entry.started_at, expired)
            entry.resolved_by = success.id
            resolved.append(entry)
    return resolved
