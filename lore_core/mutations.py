"""Pure document -> document changes, each idempotent by entry id.

Promises: a mutation depends only on the document it is given and the values it
was built with, so the compare-and-swap loop can re-apply it to a fresh read as
often as needed; applied to a document that already holds its change, it returns
None ("nothing to do"). Transitions are checked here (a finished entry is never
rewritten to say something else, except that a real success replaces an
``abandoned`` marking, and a real error replaces the ``LeaseExpired`` stand-in).
Lineage refs are kept one per related file. What a mutation learned for the caller
(entries it resolved, markers to remove) is left in its ``Outcome``.
It does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import EntryNotFoundError, HistoryNotFoundError, InvalidTransitionError
from .ids import duration_ms, format_timestamp, utc_now
from .models import ErrorInfo, FileHistory, HistoryEntry, LineageRef, StepStatus

__all__ = [
    "LEASE_EXPIRED",
    "Outcome",
    "add_finished",
    "add_running",
    "check_transition",
    "clear_entries",
    "finish",
    "link_derived_from",
    "link_derived_to",
    "merge_ancestry",
    "own",
    "renew_lease",
    "upsert_ref",
]

LEASE_EXPIRED = "LeaseExpired"
Mutation = Callable[[FileHistory | None], FileHistory | None]
NewDoc = Callable[[], FileHistory]


@dataclass
class Outcome:
    """What the last application of a mutation found (reset on every attempt)."""

    entry: HistoryEntry | None = None
    previous: StepStatus | None = None
    resolved: list[HistoryEntry] = field(default_factory=list)
    dropped: list[HistoryEntry] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)

    def reset(self) -> None:
        """Forget what the last attempt saw, except the clean-up lists.

        Those accumulate: when an attempt's write landed but was answered 412 (botocore
        retried it), the next attempt finds its change already there and sees nothing left
        to resolve or drop; the objects the first attempt found must still be removed.
        Removing the index objects of an entry that someone else resolved is harmless.
        """
        self.entry = None
        self.previous = None

    def add_resolved(self, entries: list[HistoryEntry]) -> None:
        known = {e.id for e in self.resolved}
        self.resolved.extend(e for e in entries if e.id not in known)


def own(doc: FileHistory, entry: HistoryEntry) -> HistoryEntry:
    """A private copy of ``entry``, put in its place in ``doc``, to change.

    Documents handed to a mutation share their entry objects with the cached copy the
    next update starts from (copying every entry per step would cost more than the
    step), so an entry is copied the moment a mutation changes it, never changed in place.
    """
    for i, item in enumerate(doc.entries):
        if item is entry:
            copy = entry.model_copy()
            doc.entries[i] = copy
            return copy
    raise ValueError(f"entry {entry.id} is not in the document of {doc.file_key!r}")


# ---------------------------------------------------------------------- lineage refs


def upsert_ref(refs: list[LineageRef], ref: LineageRef) -> bool:
    """Keep one ref per file: the newest entry id wins and ``count`` says how often they were linked."""
    for i, existing in enumerate(refs):
        if not existing.same_file(ref):
            continue
        if ref.entry_id is None or existing.entry_id == ref.entry_id:
            return False
        if existing.entry_id is not None and ref.entry_id < existing.entry_id:
            return False  # an older link arriving late: the newer one stays
        refs[i] = ref.model_copy(update={"count": (existing.count or 1) + 1})
        return True
    refs.append(ref.model_copy(update={"count": None}))
    return True


def _dedupe(refs: list[LineageRef]) -> list[LineageRef]:
    """One ref per file (documents written before refs were per file kept one per entry)."""
    out: list[LineageRef] = []
    for ref in refs:
        for i, kept in enumerate(out):
            if kept.same_file(ref):
                newer = ref if (ref.entry_id or "") > (kept.entry_id or "") else kept
                out[i] = newer.model_copy(update={"count": (kept.count or 1) + (ref.count or 1)})
                break
        else:
            out.append(ref)
    return out


def _normalise(doc: FileHistory) -> bool:
    changed = False
    for name in ("derived_from", "derived_to"):
        refs: list[LineageRef] = getattr(doc, name)
        deduped = _dedupe(refs)
        if len(deduped) != len(refs):
            setattr(doc, name, deduped)
            changed = True
    return changed


def merge_ancestry(doc: FileHistory, ancestry: Sequence[LineageRef], limit: int) -> bool:
    """Add ancestors (each file once, with its newest known entry; never the file itself), keeping at most ``limit``."""
    current = _dedupe(list(doc.ancestry or []))
    changed = doc.ancestry is None or len(current) != len(doc.ancestry or [])
    for ref in ancestry:
        if ref.bucket is None and ref.file_key == doc.file_key:
            continue
        if any(existing.same_file(ref) for existing in current):
            for i, existing in enumerate(current):
                if existing.same_file(ref) and ref.entry_id and (existing.entry_id or "") < ref.entry_id:
                    current[i] = existing.model_copy(update={"entry_id": ref.entry_id})
                    changed = True
            continue
        if len(current) >= limit:
            break
        current.append(LineageRef(file_key=ref.file_key, entry_id=ref.entry_id, bucket=ref.bucket))
        changed = True
    doc.ancestry = current[:limit]
    return changed


# ---------------------------------------------------------------------- transitions


def _same_entry_attempt(doc: FileHistory, entry: HistoryEntry, replay_of: str | None) -> int:
    original = doc.entry(replay_of) if replay_of else None
    return (original.attempt or 1) + 1 if original is not None else 1


def check_transition(entry: HistoryEntry, status: StepStatus, file_key: str) -> None:
    """Raise InvalidTransitionError unless ``entry`` may end (or be recorded again) as ``status``."""
    if not entry.finished or entry.status is status:
        return
    expired = entry.error is not None and entry.error.name == LEASE_EXPIRED
    if status is StepStatus.SUCCESS and entry.status is StepStatus.FAILED and expired:
        return  # a late success is accepted: the worker was alive after all
    raise InvalidTransitionError(
        f"entry {entry.id} of {file_key!r} already finished as {entry.status.value}; cannot mark it {status.value}"
    )


def add_running(entry: HistoryEntry, new_doc: NewDoc) -> Mutation:
    def mutate(doc: FileHistory | None) -> FileHistory | None:
        doc = doc or new_doc()
        if doc.entry(entry.id) is not None:
            return None
        added = entry.model_copy()
        if added.attempt is None:
            added.attempt = _same_entry_attempt(doc, added, added.replay_of)
        doc.entries.append(added)
        return doc

    return mutate


def renew_lease(file_key: str, entry_id: str, expires: datetime, marker_lease: int | None, out: Outcome) -> Mutation:
    """Push a running entry's lease to ``expires`` (and note its marker); nothing for a finished entry."""

    def mutate(doc: FileHistory | None) -> FileHistory | None:
        out.reset()
        entry = doc.entry(entry_id) if doc is not None else None
        if doc is None or entry is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        out.entry = entry
        out.previous = entry.status
        if entry.finished:
            return None
        entry = own(doc, entry)
        changed = False
        if entry.lease_expires_at is None or entry.lease_expires_at < expires:
            entry.lease_expires_at = expires
            changed = True
        if marker_lease is not None and entry.marker_lease != marker_lease:
            entry.marker_lease = marker_lease
            changed = True
        return doc if changed else None

    return mutate


def _resolve_failures(doc: FileHistory, success: HistoryEntry) -> list[HistoryEntry]:
    """Mark earlier unresolved failures of the same step (and the replayed entry) as resolved.

    An abandoned entry (lease expired) becomes a failure with a ``LeaseExpired`` error on
    the way; should its worker still finish it, ``finish`` accepts that success.
    """
    resolved = []
    for entry in doc.entries:
        if not entry.unresolved_failure or entry.id == success.id:
            continue
        if entry.id == success.replay_of or (entry.step == success.step and entry.id < success.id):
            entry = own(doc, entry)
            if entry.status is StepStatus.RUNNING:
                expired = entry.lease_expires_at or utc_now()
                entry.status = StepStatus.FAILED
                entry.error = ErrorInfo(
                    name=LEASE_EXPIRED,
                    message=f"abandoned: the worker stopped renewing its lease, which expired at "
                    f"{format_timestamp(expired)}",
                )
                entry.completed_at = expired
                entry.duration_ms = duration_ms(entry.started_at, expired)
            entry.resolved_by = success.id
            resolved.append(entry)
    return resolved


def _after_success(doc: FileHistory, entry: HistoryEntry, produces: Sequence[str], out: Outcome) -> bool:
    """What a success also changes: a ``derivedTo`` ref per product, and the failures it resolves."""
    changed = False
    for produced in produces:
        changed |= upsert_ref(doc.derived_to, LineageRef(file_key=produced, entry_id=entry.id))
    resolved = _resolve_failures(doc, entry)
    out.add_resolved(resolved)
    return changed or bool(resolved)


def finish(
    file_key: str,
    entry_id: str,
    status: StepStatus,
    out: Outcome,
    *,
    completed: datetime,
    output: Any = None,
    error: ErrorInfo | None = None,
    produces: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
) -> Mutation:
    """End a running entry as ``status`` (idempotent); a success links its products and resolves failures."""

    def mutate(doc: FileHistory | None) -> FileHistory | None:
        out.reset()
        if doc is None:
            raise HistoryNotFoundError(f"history of {file_key!r} disappeared before entry {entry_id} finished")
        entry = doc.entry(entry_id)
        if entry is None:
            raise EntryNotFoundError(f"history of {file_key!r} has no entry {entry_id!r}")
        out.previous = entry.status
        check_transition(entry, status, file_key)
        changed = _normalise(doc)
        expired = entry.error is not None and entry.error.name == LEASE_EXPIRED
        if not entry.finished or (entry.status is not status) or (status is StepStatus.FAILED and expired):
            entry = own(doc, entry)
            entry.status = status
            entry.completed_at = completed
            entry.duration_ms = duration_ms(entry.started_at, completed)
            entry.lease_expires_at = None
            if status is StepStatus.SUCCESS:
                entry.output = output
                entry.error = None
                entry.resolved_by = None
                entry.produces = list(produces) or entry.produces
            else:
                entry.error = error or ErrorInfo(message="failed")
            if metadata:
                entry.metadata = {**(entry.metadata or {}), **metadata}
            changed = True
        if status is StepStatus.SUCCESS:
            changed |= _after_success(doc, entry, produces, out)
        out.entry = entry
        return doc if changed else None

    return mutate


def add_finished(
    entry: HistoryEntry,
    new_doc: NewDoc,
    out: Outcome,
    *,
    sources: Sequence[LineageRef] = (),
    ancestry: Sequence[LineageRef] = (),
    max_ancestry: int = 1000,
) -> Mutation:
    """Append a finished entry in one write, with the files it was derived from."""

    def mutate(doc: FileHistory | None) -> FileHistory | None:
        out.reset()
        doc = doc or new_doc()
        changed = _normalise(doc)
        stored = doc.entry(entry.id)
        if stored is None:
            stored = entry.model_copy(deep=True)
            if stored.attempt is None:
                stored.attempt = _same_entry_attempt(doc, stored, stored.replay_of)
            doc.entries.append(stored)
            changed = True
        for source in sources:
            changed |= upsert_ref(doc.derived_from, source)
        changed |= merge_ancestry(doc, ancestry, max_ancestry)
        if stored.status is StepStatus.SUCCESS:
            changed |= _after_success(doc, stored, stored.produces or [], out)
        out.entry = stored
        return doc if changed else None

    return mutate


def link_derived_from(
    source: LineageRef, ancestry: Sequence[LineageRef], max_ancestry: int, new_doc: NewDoc
) -> Mutation:
    """Point a derived file's document at ``source`` (one ref per source file) and inherit its ancestry."""

    def mutate(doc: FileHistory | None) -> FileHistory | None:
        doc = doc or new_doc()
        changed = _normalise(doc)
        changed |= upsert_ref(doc.derived_from, source)
        changed |= merge_ancestry(doc, ancestry, max_ancestry)
        return doc if changed else None

    return mutate


def link_derived_to(child: LineageRef, new_doc: NewDoc) -> Mutation:
    def mutate(doc: FileHistory | None) -> FileHistory | None:
        doc = doc or new_doc()
        changed = _normalise(doc)
        changed |= upsert_ref(doc.derived_to, child)
        return doc if changed else None

    return mutate


def clear_entries(out: Outcome) -> Mutation:
    """Drop every entry (the caller removes their index objects and segments); lineage links stay."""

    def mutate(doc: FileHistory | None) -> FileHistory | None:
        out.reset()
        if doc is None or (not doc.entries and not doc.archived):
            return None
        known = {e.id for e in out.dropped}
        out.dropped.extend(e for e in doc.entries if e.id not in known)
        out.segments = list(dict.fromkeys([*out.segments, *(ref.key for ref in doc.archived or [])]))
        doc.entries = []
        doc.archived = None
        return doc

    return mutate
