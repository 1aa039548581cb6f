"""Archive segments: old entries leave the live document so that it stays small however long a file lives.

Promises: the live document keeps at most ``max_entries`` entries and, as far as
finished entries allow, at most ``max_live_bytes`` of JSON; running entries,
unresolved failures and entries marked abandoned (a late success may still arrive)
always stay live. Only entries that can never change
again are archived, so a segment is never stale.
Moved entries go to an immutable segment object, written before the document
that lists it, so a listed segment always exists. Entries carry their own
``derivedFrom`` refs, so older lineage refs move out with them.
It does not delete segments (``clear_history`` does).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import ValidationError

from . import keys
from .errors import CorruptHistoryError
from .ids import format_timestamp, utc_now
from .models import SCHEMA_VERSION, ArchiveRef, FileHistory, HistoryEntry, assume_utc
from .stores import ConditionFailed, Store

__all__ = ["archive_overflow", "read_archived"]


def _encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _movable(entry: HistoryEntry) -> bool:
    """Only entries that can never change again leave the live document.

    An entry marked abandoned (``LeaseExpired``) can still take its worker's late success
    or real error, so it stays live.
    """
    if not entry.finished or entry.unresolved_failure:
        return False
    return entry.error is None or entry.error.name != "LeaseExpired"


def archive_overflow(
    store: Store, prefix: str, doc: FileHistory, *, max_entries: int, max_live_bytes: int, size: int
) -> bool:
    """Move the oldest movable entries of ``doc`` into a new segment if it is over either limit.

    ``size`` is the document's encoded size. Returns True when ``doc`` changed. A fifth
    of the entry cap moves at once (one extra write every ``max_entries / 5`` steps),
    or, when the document is over ``max_live_bytes``, enough to bring it to three
    quarters of that.
    """
    over_count = len(doc.entries) > max_entries
    over_size = size > max_live_bytes
    if not over_count and not over_size:
        return False
    movable = [e for e in doc.entries if _movable(e)]
    if not movable:
        return False
    moving: list[HistoryEntry] = []
    if over_count:
        excess = len(doc.entries) - max_entries + max_entries // 5
        moving = movable[:excess]
    if over_size:
        to_free = size - max_live_bytes * 3 // 4
        freed = sum(len(_encode(e.to_json_dict())) for e in moving)
        for entry in movable[len(moving) :]:
            if freed >= to_free:
                break
            moving.append(entry)
            freed += len(_encode(entry.to_json_dict()))
    if not moving:
        return False
    key = keys.archive_key(prefix, doc.file_key, moving[0].id, moving[-1].id, len(moving))
    body = {
        "schemaVersion": SCHEMA_VERSION,
        "fileKey": doc.file_key,
        "bucket": doc.bucket,
        "entries": [e.to_json_dict() for e in moving],
        "createdAt": format_timestamp(utc_now()),
    }
    # A 412 means an earlier try of this same update wrote it: segments are immutable.
    with contextlib.suppress(ConditionFailed):
        store.put(key, _encode(body), if_none_match=True)
    moved = {e.id for e in moving}
    doc.entries = [e for e in doc.entries if e.id not in moved]
    doc.archived = [
        *(doc.archived or []),
        ArchiveRef(key=key, count=len(moving), first_entry_id=moving[0].id, last_entry_id=moving[-1].id),
    ]
    return True


def read_archived(store: Store, refs: Sequence[ArchiveRef]) -> list[HistoryEntry]:
    """The entries of the given segments, oldest first (segments read in parallel)."""

    def fetch(ref: ArchiveRef) -> list[HistoryEntry]:
        found = store.get(ref.key)
        if found is None:
            raise CorruptHistoryError(store.location(ref.key), "archive segment listed in the history is missing")
        try:
            data = json.loads(found.data)
            return [HistoryEntry.model_validate(assume_utc(e)) for e in data["entries"]]
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            raise CorruptHistoryError(store.location(ref.key), f"archive segment does not parse: {exc}") from None

    if not refs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(refs)))) as pool:
        segments = list(pool.map(fetch, refs))
    return [e for segment in segments for e in segment]
