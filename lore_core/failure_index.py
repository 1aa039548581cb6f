"""The failure index: one small object per failed (or possibly abandoned) entry, beside the histories.

Promises: ``list_failed`` answers "which entries failed?" with one LIST per 1,000
index objects, and never returns an entry whose history says it succeeded, was
resolved, or is still running within its lease: each candidate is checked against
its history (one parallel read per file named by a failure), and the orphans met on
the way are removed. Writers keep it exact without any state in memory: a failure
object is written only after the transition was validated, and whoever finishes,
resolves or clears an entry removes its objects by name (a running marker's name is
recorded on its entry as ``markerLease``).

It does not decide transitions (``mutations``) or read documents itself (it is
handed a fetch function).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta

from . import keys
from .errors import StoreError
from .ids import format_timestamp, utc_now
from .models import ErrorInfo, FailedEntry, FileHistory, HistoryEntry, StepStatus
from .stores import ListedObject, Store

__all__ = ["ORPHAN_GRACE", "FailureIndex"]

# An index object whose entry is nowhere to be found is removed only once it is this old:
# until then its history write may still be in flight (retries, a slow worker).
ORPHAN_GRACE = timedelta(minutes=15)
log = logging.getLogger("lore")
_PAGE = 1000
Fetch = Callable[[list[str]], dict[str, FileHistory | None]]
#: Told of each running entry found abandoned (its lease ran out), with its file key.
OnAbandoned = Callable[[str, HistoryEntry], None]


class FailureIndex:
    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    # ------------------------------------------------------------------ writing

    def add_failure(self, file_key: str, entry_id: str, step: str, error: ErrorInfo | None) -> None:
        body = {
            "fileKey": file_key,
            "entryId": entry_id,
            "step": step,
            "failedAt": format_timestamp(utc_now()),
            "error": (error.message[:500] if error is not None else None),
        }
        key = keys.failure_index_key(self.prefix, file_key, entry_id, step)
        self.store.put(key, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def remove_failure(self, file_key: str, entry_id: str, step: str) -> None:
        self.store.delete(keys.failure_index_key(self.prefix, file_key, entry_id, step))

    def mark_running(self, file_key: str, entry_id: str, step: str, lease: int) -> None:
        """The marker whose LastModified is the entry's last heartbeat (lets a dead worker's entry be found)."""
        self.store.put(keys.running_marker_key(self.prefix, file_key, entry_id, step, lease), b"{}")

    def remove_marker(self, file_key: str, entry_id: str, step: str, lease: int) -> None:
        self.store.delete(keys.running_marker_key(self.prefix, file_key, entry_id, step, lease))

    def forget(self, file_key: str, entries: Iterable[HistoryEntry]) -> None:
        """Remove the index objects of entries that are resolved, succeeded or cleared."""
        for entry in entries:
            if entry.marker_lease is not None:
                self.remove_marker(file_key, entry.id, entry.step, entry.marker_lease)
            elif entry.error is not None and entry.error.name == "LeaseExpired":
                # Written by an older Lore that did not record the marker's name: find it by listing.
                for obj in self.store.list(keys.entry_index_prefix(self.prefix, file_key, entry.id)):
                    self.store.delete(obj.key)
            if entry.status is StepStatus.FAILED and (entry.error is None or entry.error.name != "LeaseExpired"):
                self.remove_failure(file_key, entry.id, entry.step)

    # ------------------------------------------------------------------ reading

    def failed(
        self,
        file_prefix: str,
        step: str | None,
        fetch: Fetch | None,
        *,
        now: datetime | None = None,
        on_abandoned: OnAbandoned | None = None,
    ) -> Iterator[FailedEntry]:
        """Unresolved failed and abandoned entries; checked against their histories unless ``fetch`` is None.

        ``on_abandoned(file_key, entry)`` is called for each running entry whose history shows
        it abandoned (so only when checked against the histories).
        """
        now = now or utc_now()
        page: list[tuple[ListedObject, tuple[str, str, str, int | None]]] = []
        for obj in self.store.list(keys.failure_index_prefix(self.prefix, file_prefix)):
            parsed = keys.parse_failure_index_key(self.prefix, obj.key)
            if parsed is None or (step is not None and parsed[2] != step):
                continue
            lease = parsed[3]
            if (
                lease is not None
                and obj.last_modified is not None
                and obj.last_modified + timedelta(seconds=lease + 1) > now
            ):
                continue  # a running marker renewed within its lease: the step is alive, no read needed
            page.append((obj, parsed))
            if len(page) >= _PAGE:
                yield from self._settle(page, fetch, now, on_abandoned)
                page = []
        if page:
            yield from self._settle(page, fetch, now, on_abandoned)

    def _settle(
        self,
        page: list[tuple[ListedObject, tuple[str, str, str, int | None]]],
        fetch: Fetch | None,
        now: datetime,
        on_abandoned: OnAbandoned | None = None,
    ) -> Iterator[FailedEntry]:
        docs = fetch(list(dict.fromkeys(parsed[0] for _, parsed in page))) if fetch is not None else None
        reported: set[tuple[str, str]] = set()
        for obj, (file_key, entry_id, step, lease) in page:
            if (file_key, entry_id) in reported:
                continue  # a failure sorts before its entry's running marker: report it once
            if docs is None:
                modified = obj.last_modified
                failed_at = modified + timedelta(seconds=lease + 1) if lease is not None and modified else modified
                reported.add((file_key, entry_id))
                yield self._failed(file_key, entry_id, step, failed_at, abandoned=lease is not None)
                continue
            doc = docs.get(file_key)
            entry = doc.entry(entry_id) if doc is not None else None
            if entry is None:
                if obj.last_modified is not None and now - obj.last_modified > ORPHAN_GRACE:
                    self._repair(obj.key)  # its entry never landed, or was cleared
                continue
            if entry.status is StepStatus.SUCCESS or entry.status is StepStatus.SKIPPED or entry.resolved_by:
                self._repair(obj.key)  # left behind by a crash after the entry was resolved
                continue
            if entry.status is StepStatus.RUNNING and not entry.abandoned:
                continue  # alive, or its failure is being written right now
            abandoned = entry.status is StepStatus.RUNNING or (
                entry.error is not None and entry.error.name == "LeaseExpired"
            )
            failed_at = entry.completed_at or entry.lease_expires_at or obj.last_modified
            if on_abandoned is not None and entry.status is StepStatus.RUNNING:
                on_abandoned(file_key, entry)
            reported.add((file_key, entry_id))
            yield self._failed(file_key, entry_id, entry.step, failed_at, abandoned=abandoned, error=entry.error)

    def _repair(self, key: str) -> None:
        """Remove an orphan; a reader without delete rights (a read-only role) just skips it."""
        try:
            self.store.delete(key)
        except StoreError as exc:
            log.debug("lore: left orphan index object %s in place: %s", key, exc)

    def _failed(
        self,
        file_key: str,
        entry_id: str,
        step: str,
        failed_at: datetime | None,
        *,
        abandoned: bool,
        error: ErrorInfo | None = None,
    ) -> FailedEntry:
        return FailedEntry(
            file_key=file_key,
            entry_id=entry_id,
            step=step,
            bucket=self.store.bucket,
            failed_at=failed_at,
            abandoned=abandoned,
            error=error,
        )
