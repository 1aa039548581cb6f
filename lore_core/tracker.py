"""LoreTracker: records what happens to each file, in the bucket beside the file.

The tracker is a thin facade: each guarantee lives in a module named after it
(``documents``, ``mutations``, ``failure_index``, ``archive``, ``leases``,
``claims``, ``lifecycle``, ``derivation``, ``lineage``).

Example::

    from lore_core import LoreTracker

    tracker = LoreTracker.from_url("memory://demo")

    with tracker.track("uploads/report.csv", step="validate") as ctx:
        ctx.output = {"rows": 42}
        ctx.produce("clean/report.parquet")

    assert tracker.get_history("uploads/report.csv").entries[-1].status == "success"
    assert tracker.get_descendants("uploads/report.csv") == ["clean/report.parquet"]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from . import keys
from .config import TrackerOptions
from .documents import Documents
from .errors import InvalidKeyError, LoreError
from .events import EventSink, StepEvent
from .lifecycle import ActiveStep, ErrorLike, ErrorPolicy, Lifecycle, Orchestrator
from .lineage import LineageNode, build_lineage
from .models import FailedEntry, FileHistory, HistoryEntry, LineageRef, StepStatus
from .redaction import Masker, Redactor
from .settings import load_config
from .steps import Handler, HandlerRegistry, StepContext, StepResult, register_step
from .stores import S3Store, Store, open_store

__all__ = ["LoreTracker", "register_step"]

_F = TypeVar("_F", bound=Callable[..., Any])
_STORE_OPTIONS = ("expected_bucket_owner", "sse", "sse_kms_key_id", "outage_timeout")


def _openlineage_sink(openlineage: bool | EventSink) -> EventSink:
    """The sink ``openlineage=`` asks for: the process's shared one for ``True``, else the one given."""
    if openlineage is not True:
        if not callable(getattr(openlineage, "emit", None)):
            raise LoreError(
                f"openlineage= takes True or an event sink (an object with emit(event)), got {openlineage!r}"
            )
        return openlineage  # type: ignore[return-value]
    try:
        # Imported only when asked for: openlineage-python is an optional extra.
        from .openlineage import shared_sink
    except ImportError as exc:
        raise LoreError(
            f"openlineage=True needs openlineage-python: pip install 'lore-s3[openlineage]' ({exc})"
        ) from None
    return shared_sink()


class LoreTracker:
    """Records step history and lineage for files, as JSON documents in a store.

    Build one with ``LoreTracker.from_url("s3://bucket/.lore-s3")`` (also ``file:///dir``
    and ``memory://name``) or ``LoreTracker(bucket=..., prefix=..., s3_client=...)``.
    A tracker is thread-safe; share one per store in a process.

    Secrets are masked before anything is written (``lore_core.redaction``):
    ``secret_keys``/``extra_secret_keys`` set the key words, ``extra_maskers`` adds
    callables that run first on every value and string (an orchestrator's own secrets
    masker), ``redact=False`` leaves only those. ``writable_buckets`` names the other
    buckets whose histories this tracker may write (the ``derivedTo`` side of
    cross-bucket lineage); by default it writes only into its own bucket.
    ``openlineage=True`` (extra ``[openlineage]``) sends each entry's life as OpenLineage run
    events through openlineage-python's client, configured the standard way; pass a
    ``lore_core.openlineage.LoreOpenLineage(...)`` for another namespace (``lore_core.openlineage``).
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
        redact: bool = True,
        secret_keys: Iterable[str] | None = None,
        extra_secret_keys: Iterable[str] = (),
        extra_maskers: Iterable[Masker] = (),
        openlineage: bool | EventSink = False,
        **options: Any,
    ) -> None:
        try:
            self.options = TrackerOptions(**options)
        except TypeError as exc:
            raise LoreError(f"LoreTracker: {exc}") from None
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
                outage_timeout=self.options.outage_timeout,
            )
        elif bucket is not None and bucket != store.bucket:
            raise LoreError(f"bucket {bucket!r} does not match the store's bucket {store.bucket!r}")
        self.store = store
        self.bucket: str = store.bucket
        self.prefix: str = keys.validate_prefix(prefix)
        # extra_maskers (e.g. Airflow's secrets masker) run before Lore's own redaction, even with redact=False.
        maskers = tuple(extra_maskers)
        self.redactor: Redactor | None = (
            Redactor(secret_keys, extra_secret_keys, maskers=maskers, builtin=redact) if redact or maskers else None
        )
        self._handlers = HandlerRegistry()
        self._docs = Documents(store, self.prefix, self.options)
        self._life = Lifecycle(self._docs, self.options, self.redactor, self._handlers)
        self._life.owner = self
        if openlineage:
            self.add_sink(_openlineage_sink(openlineage))

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

        S3 options (``expected_bucket_owner``, ``sse``, ``sse_kms_key_id``, ``outage_timeout``)
        go to the store; the rest (``openlineage=True`` among them) to the tracker.
        """
        TrackerOptions(**{k: v for k, v in options.items() if k in TrackerOptions.__dataclass_fields__})
        store_options = {k: options.pop(k) for k in _STORE_OPTIONS if k in options}
        if "outage_timeout" in store_options:
            options["outage_timeout"] = store_options["outage_timeout"]  # the tracker keeps it too
        if url.startswith("s3://"):
            store_options.update(s3_client=s3_client, endpoint_url=endpoint_url, region=region)
        store, prefix = open_store(url, **store_options)
        return cls(prefix=prefix, store=store, **options)

    @classmethod
    def from_config(cls, s3_client: Any = None, **arguments: Any) -> LoreTracker:
        """A tracker for the store the settings name (``lore_core.settings``): ``arguments``
        (``store=``, ``endpoint_url=``, ``region=``, ``profile=``, any tracker option), then
        ``LORE_*`` variables, ``lore.toml`` / ``[tool.lore]``, then ``~/.config/lore/lore.toml``.

        ``profile`` picks a profile of the AWS config files for the client Lore builds (a
        client passed as ``s3_client`` is used as it is). Unknown keys and bad values raise
        ``LoreConfigError`` naming where they were set.
        """
        config = load_config(arguments)
        url = config.require_store()
        if url.startswith("s3://") and s3_client is None:
            s3_client = config.s3_client()
        return cls.from_url(url, s3_client=s3_client, **config.tracker_options())

    def __repr__(self) -> str:
        return f"LoreTracker({self.store.location(self.prefix)!r})"

    # ------------------------------------------------------------------ options kept as attributes

    def configure(self, **changes: Any) -> None:
        """Change options in place (validated like the constructor's), e.g. ``configure(max_entries=20)``."""
        self.options = dataclasses.replace(self.options, **changes)
        self._docs.options = self._life.options = self.options
        self._life.derivation.max_ancestry = self.options.max_ancestry

    @property
    def lease_seconds(self) -> float:
        return self.options.lease_seconds

    @property
    def max_entries(self) -> int:
        return self.options.max_entries

    @max_entries.setter
    def max_entries(self, value: int) -> None:
        self.configure(max_entries=value)

    @property
    def max_value_bytes(self) -> int:
        return self.options.max_value_bytes

    @max_value_bytes.setter
    def max_value_bytes(self, value: int) -> None:
        self.configure(max_value_bytes=value)

    # ------------------------------------------------------------------ keys

    def _file_key(self, file_key: str) -> str:
        return keys.validate_file_key(file_key, self.prefix)

    def history_location(self, file_key: str, bucket: str | None = None) -> str:
        """Where the history of ``file_key`` is stored, as a URL."""
        return self._docs.store_for(bucket).location(keys.history_key(self.prefix, self._file_key(file_key)))

    # ------------------------------------------------------------------ handlers

    def step(self, name: str) -> Callable[[_F], _F]:
        """Register the decorated function as the handler of step ``name`` (for replay by name)."""

        def decorate(fn: _F) -> _F:
            self._handlers.register(name, fn)
            return fn

        return decorate

    def register_step(self, name: str, handler: Handler) -> None:
        self._handlers.register(name, handler)

    def handler_for(self, step: str) -> Handler | None:
        return self._handlers.get(step)

    # ------------------------------------------------------------------ the step lifecycle

    def track(
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
        on_error: ErrorPolicy = "raise",
        logger: Any = None,
    ) -> AbstractContextManager[StepContext]:
        """Track the block as one step on ``file_key``: running → success, or failed with the exception.

        The entry's lease is renewed in the background while the block runs. Set
        ``ctx.output`` and call ``ctx.produce(key)`` inside. The block's exception is
        recorded and re-raised. ``on_error="log"`` logs tracking failures (the store is
        down, ...) instead of raising them (to ``logger``, default the ``lore`` logger), so the
        block runs untracked rather than not at all.
        """
        return self._life.track(
            file_key,
            step,
            input,
            produces=produces,
            description=description,
            metadata=metadata,
            orchestrator=orchestrator,
            replay_of=replay_of,
            attempt=attempt,
            on_error=on_error,
            logger=logger,
        )

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
        on_error: ErrorPolicy = "raise",
        logger: Any = None,
        prefetch: Iterable[str] = (),
    ) -> ActiveStep:
        """``track()`` for callers whose start and end are different callbacks: the same lifecycle and
        heartbeat, ended by ``active.succeed(output)`` or ``active.fail(error)``.

        The running entry is written while the step runs. ``prefetch`` names files the step
        is likely to produce (an Airflow task's outlets): those with a history are read then
        too, so that linking them at the end is one write in parallel with the entry's own.
        """
        return self._life.begin(
            file_key,
            step,
            input,
            produces=produces,
            description=description,
            metadata=metadata,
            orchestrator=orchestrator,
            replay_of=replay_of,
            attempt=attempt,
            on_error=on_error,
            logger=logger,
            prefetch=prefetch,
        )

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
    ) -> StepResult:
        """Run ``handler(ctx)`` as step ``step`` of ``file_key`` inside ``track()`` and return the result.

        Costs 1 read and 2 writes plus 1 write per produced file. The handler's exception
        is recorded and the result says ``failed``; it is re-raised only with
        ``raise_on_failure=True``. With ``skip_if_succeeded`` a step that already
        succeeded on the file is not run again, and of two concurrent callers only one
        runs it (the other gets ``skipped`` with the winner's entry id).
        """
        return self._life.run(
            file_key,
            step,
            handler,
            input,
            produces,
            skip_if_succeeded,
            description,
            metadata,
            raise_on_failure=raise_on_failure,
            orchestrator=orchestrator,
            replay_of=replay_of,
        )

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
        """Run a recorded entry's step again with its original input; the new entry has ``replay_of``.

        The replay is claimed first: of two concurrent replays of one entry exactly one runs
        the handler, the other returns ``skipped`` naming the winner's entry. A failure that
        a later run already resolved is not run again (``skipped``) unless ``force=True``.
        """
        return self._life.replay(
            file_key, entry_id, handler, force=force, orchestrator=orchestrator, raise_on_failure=raise_on_failure
        )

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
    ) -> str:
        """Record a ``running`` entry and return its id (prefer ``track()``, which also renews the lease)."""
        entry = self._life.start(
            file_key,
            step,
            input,
            description=description,
            metadata=metadata,
            produces=produces,
            orchestrator=orchestrator,
            replay_of=replay_of,
            attempt=attempt,
        )
        return entry.id

    def heartbeat(self, file_key: str, entry_id: str) -> bool:
        """Renew a running entry's lease; False once the entry has finished (nothing is written then)."""
        return self._life.heartbeat(file_key, entry_id)

    def succeed(
        self,
        file_key: str,
        entry_id: str,
        output: Any = None,
        *,
        produces: str | Iterable[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HistoryEntry:
        """Mark an entry successful (accepted even after its lease ran out); products derive from it."""
        return self._life.succeed(file_key, entry_id, output, produces=produces, metadata=metadata)

    def fail(
        self, file_key: str, entry_id: str, error: ErrorLike, *, metadata: dict[str, Any] | None = None
    ) -> HistoryEntry:
        """Mark a running entry failed with ``error`` and index the failure."""
        return self._life.fail(file_key, entry_id, error, metadata=metadata)

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
        """Record a finished entry in one write (for callers that saw the step run elsewhere).

        ``derived_from`` names the files this one was made from (``LineageRef`` or a key;
        no entry id means the source's latest successful entry); they are linked both ways.
        ``entry_id`` (e.g. ``lore_core.ids.stable_entry_id``) lets several processes that saw
        one event record it once: a second record of the same id changes nothing.
        """
        return self._life.record(
            file_key,
            step,
            status,
            input=input,
            output=output,
            error=error,
            started_at=started_at,
            completed_at=completed_at,
            description=description,
            metadata=metadata,
            orchestrator=orchestrator,
            replay_of=replay_of,
            attempt=attempt,
            produces=produces,
            derived_from=derived_from,
            entry_id=entry_id,
        )

    def register_derived_file(
        self,
        derived_key: str,
        source_key: str,
        source_entry_id: str | None = None,
        *,
        source_bucket: str | None = None,
        derived_bucket: str | None = None,
    ) -> None:
        """Record that ``derived_key`` was made from ``source_key`` (default: its latest successful entry).

        Either file may be in another bucket (``source_bucket``, ``derived_bucket``); only this
        tracker's bucket and ``writable_buckets`` are written, so a link to another bucket is
        kept on this side (the derived file's ``derivedFrom``, or the source's ``derivedTo``).
        """
        derived_key = self._file_key(derived_key)
        source = self._life.derivation.source_ref(
            LineageRef(file_key=source_key, entry_id=source_entry_id, bucket=source_bucket)
        )
        self._life.ensure_writable(derived_key)
        self._life.derivation.register(derived_key, source, source_entry_id, derived_bucket)

    def clear_history(self, file_key: str) -> None:
        """Drop the file's entries and their index objects; keep its lineage links."""
        self._life.clear(file_key)

    # ------------------------------------------------------------------ reading

    # ------------------------------------------------------------------ events

    def on(self, kind: str, callback: Callable[[StepEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` on each lifecycle event of ``kind`` (``"*"``: all); returns an unsubscribe.

        Kinds: ``step.started``, ``step.succeeded``, ``step.failed``, ``step.abandoned``. The
        callback runs after the history says so, in the thread that wrote it; one that raises
        is logged and never breaks the step (``lore_core.events``).
        """
        return self._life.events.on(kind, callback)

    def add_sink(self, sink: EventSink) -> Callable[[], None]:
        """Send every lifecycle event to ``sink.emit(event)`` (an exporter, e.g. OpenLineage)."""
        return self._life.events.on("*", sink.emit)

    def get_history(
        self, file_key: str, bucket: str | None = None, *, include_archived: bool = False, fresh: bool = True
    ) -> FileHistory | None:
        """The file's history as stored now (one read), or None; ``include_archived`` adds archived entries first.

        ``fresh=False``: the version this tracker itself last read or wrote, without a request
        when it has one (what it just recorded, say); a read otherwise.
        """
        doc = self._docs.load_copy(self._file_key(file_key), bucket, fresh=fresh)
        if doc is not None and include_archived:
            return self._docs.with_archive(doc, bucket)
        return doc

    def get_lineage(self, file_key: str, *, max_nodes: int | None = None, fresh: bool = True) -> LineageNode | None:
        """The file and every file it was derived from, as a DAG (each file once), in two round trips.

        At most ``max_nodes`` files (default ``max_lineage_nodes``); the root's ``truncated``
        says when more were left out. ``fresh=False`` uses the versions this tracker last
        read or wrote where it has them (see ``get_history``).
        """
        root = self.get_history(file_key, fresh=fresh)
        if root is None:
            return None
        cap = max_nodes if max_nodes is not None else self.options.max_lineage_nodes
        return build_lineage(
            root, self.bucket, lambda bucket, key: self.get_history(key, bucket=bucket, fresh=fresh), cap
        )

    def get_descendants(self, file_key: str) -> list[str]:
        """Files derived directly from ``file_key`` (one read); other buckets' as ``s3://bucket/key``."""
        doc = self.get_history(file_key)
        if doc is None:
            return []
        names = [
            r.file_key if r.bucket in (None, self.bucket) else f"s3://{r.bucket}/{r.file_key}" for r in doc.derived_to
        ]
        return list(dict.fromkeys(names))

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
            start_after = reserved[:-1] + "0"  # skip Lore's own area in one step: '0' follows '/'

    def list_all_histories(self, prefix: str | None = None, batch_size: int = 32) -> Iterator[FileHistory]:
        """Every history (optionally under ``prefix``), read in parallel batches of ``batch_size``.

        This reads every document: one LIST per 1,000 files plus **one GET per file**. Over
        1M files that is 1M GETs (about 2 hours at the rate measured on the development
        machine, and ~4 ms of client CPU per file to parse and validate). For whole-bucket
        questions (counts by step and status, failures over time, lineage edges) take a
        Parquet snapshot and query it with SQL: ``lore snapshot --to DIR`` (incremental: later
        snapshots read only the histories whose ETag changed) and ``lore query``
        (``lore_core.snapshot``, extra ``[sql]``); or ask the indexes where they answer:
        ``list_failed`` for failures, ``get_descendants`` for what was derived from a file.
        """
        batch: list[str] = []
        for file_key in self.list_tracked_files(prefix):
            batch.append(file_key)
            if len(batch) >= batch_size:
                yield from self._read_batch(batch)
                batch = []
        if batch:
            yield from self._read_batch(batch)

    def _read_batch(self, file_keys: list[str]) -> Iterator[FileHistory]:
        docs = self._docs.fetch_many(((None, k) for k in file_keys), copies=True)
        for key in file_keys:
            doc = docs.get((self.bucket, key))
            if doc is not None:
                yield doc

    def list_failed(
        self, prefix: str | None = None, step: str | None = None, *, verify: bool = True
    ) -> Iterator[FailedEntry]:
        """Unresolved failed and abandoned entries across the bucket, from the failure index.

        One LIST per 1,000 index objects; with ``verify`` (the default) each candidate is
        checked against its history (one parallel read per file with failures), so a
        succeeded, resolved or still-running entry is never returned, and orphans left by
        crashes are removed.
        """

        def fetch(file_keys: list[str]) -> dict[str, FileHistory | None]:
            found = self._docs.fetch_many((None, k) for k in file_keys)
            return {k: found.get((self.bucket, k)) for k in file_keys}

        life = self._life

        def abandoned(file_key: str, entry: HistoryEntry) -> None:
            life.publish_abandoned(file_key, [entry])  # step.abandoned, once per entry

        return life.index.failed(self._file_prefix(prefix), step, fetch if verify else None, on_abandoned=abandoned)

    def _file_prefix(self, prefix: str | None) -> str:
        if not prefix:
            return ""
        if prefix.startswith("/") or any(seg in (".", "..") for seg in prefix.split("/")):
            raise InvalidKeyError(f"file key prefix {prefix!r} must be relative and contain no '.' or '..' segments")
        return prefix
