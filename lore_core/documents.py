"""History documents: reading and parsing them, and the compare-and-swap update loop.

Promises: a document that does not parse (or is over ``max_document_bytes``) raises
``CorruptHistoryError`` naming its location and is never overwritten; every write is
conditional (``If-None-Match: *`` to create, ``If-Match`` to replace) and, on 412/409,
the same pure mutation is re-applied to a fresh read, with jittered backoff, until it
sticks or ``cas_max_attempts`` is reached; a mutation that finds its change already
there ends the loop as a success (a PUT that landed, was retried by botocore and then
answered 412 is our own). The ETag this process wrote last is cached, so the next
update of the same document needs no read. It does not decide what a change means:
that is ``mutations``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from . import keys
from .archive import archive_overflow, read_archived
from .config import TrackerOptions
from .errors import ConcurrentUpdateError, CorruptHistoryError, EntryNotFoundError
from .ids import utc_now
from .models import SCHEMA_VERSION, FileHistory, parse_history
from .stores import ConditionFailed, Store

__all__ = ["Documents", "Mutation", "encode", "working_copy"]

# A mutation gets a private copy of the current document (None if there is none) and
# returns the new document, or None when the document already holds the change.
Mutation = Callable[[FileHistory | None], FileHistory | None]
DocKey = tuple[str, str]


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class _Version:
    model: FileHistory
    payload: dict[str, Any]  # its own object graph: nothing in it is shared with ``model``
    data: bytes
    etag: str


def working_copy(doc: FileHistory) -> FileHistory:
    """A copy of ``doc`` whose lists a mutation may change; the entries themselves are shared."""
    return doc.model_copy(
        update={
            "entries": list(doc.entries),
            "derived_from": list(doc.derived_from),
            "derived_to": list(doc.derived_to),
            "ancestry": list(doc.ancestry) if doc.ancestry is not None else None,
            "archived": list(doc.archived) if doc.archived is not None else None,
        }
    )


def _payload(doc: FileHistory, base: _Version | None) -> dict[str, Any]:
    """``doc`` as stored; entries that are the very objects of ``base`` reuse their stored JSON."""
    top = doc.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"entries"})
    reuse: dict[int, Any] = {}
    if base is not None:
        stored = base.payload.get("entries")
        if isinstance(stored, list) and len(stored) == len(base.model.entries):
            reuse = {id(e): raw for e, raw in zip(base.model.entries, stored, strict=True)}
    entries = [reuse.get(id(e)) or e.to_json_dict() for e in doc.entries]
    out: dict[str, Any] = {}
    for key, value in top.items():
        if key in ("archived", "createdAt", "updatedAt") and "entries" not in out:
            out["entries"] = entries
        out[key] = value
    out.setdefault("entries", entries)
    return out


def _summarise(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "document"
        return f"{exc.error_count()} validation error(s); first at {where}: {first.get('msg')}"
    return str(exc)


class Documents:
    """Reads and compare-and-swap updates of the history documents under one prefix."""

    def __init__(self, store: Store, prefix: str, options: TrackerOptions) -> None:
        self.store = store
        self.bucket = store.bucket
        self.prefix = prefix
        self.options = options
        # The last version read or written of each document: its model (never changed in
        # place: mutations work on a shallow copy and copy an entry before changing it), the
        # JSON it was stored as (unchanged entries are written back from it, not dumped
        # again) and its ETag. A step on a long history so costs little more than on a new one.
        self._cache: OrderedDict[DocKey, _Version] = OrderedDict()
        self._lock = threading.Lock()

    def store_for(self, bucket: str | None) -> Store:
        return self.store if bucket is None or bucket == self.bucket else self.store.for_bucket(bucket)

    def history_key(self, file_key: str) -> str:
        return keys.history_key(self.prefix, file_key)

    # ------------------------------------------------------------------ ETag cache

    def _cached(self, store: Store, hkey: str) -> _Version | None:
        with self._lock:
            found = self._cache.get((store.bucket, hkey))
            if found is not None:
                self._cache.move_to_end((store.bucket, hkey))
            return found

    def _remember(self, store: Store, hkey: str, version: _Version) -> None:
        if self.options.cache_size <= 0:
            return
        with self._lock:
            self._cache[(store.bucket, hkey)] = version
            self._cache.move_to_end((store.bucket, hkey))
            while len(self._cache) > self.options.cache_size:
                self._cache.popitem(last=False)

    def forget(self, store: Store, hkey: str) -> None:
        with self._lock:
            self._cache.pop((store.bucket, hkey), None)

    # ------------------------------------------------------------------ reading

    def read(self, store: Store, hkey: str) -> _Version | None:
        """The stored document, validated once (shared: never change it), or None.

        When a version is cached, the read is conditional: an unchanged document (304)
        costs neither its body nor a parse.
        """
        known = self._cached(store, hkey)
        found = store.get(hkey, if_none_match=known.etag if known is not None else None)
        if found is None:
            self.forget(store, hkey)
            return None
        if found.not_modified and known is not None:
            return known
        limit = self.options.max_document_bytes
        if len(found.data) > limit:
            raise CorruptHistoryError(
                store.location(hkey),
                f"document is {len(found.data)} bytes, over the limit of {limit} (max_document_bytes)",
            )
        try:
            raw = json.loads(found.data)
            # Validated from the bytes, not from ``raw``: the two must share no dict or list, or
            # a change to one (by a user holding the model) would be written back from the other.
            model = parse_history(found.data)
        except RecursionError:
            raise CorruptHistoryError(store.location(hkey), "document is nested too deeply to parse") from None
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0] if isinstance(exc, json.JSONDecodeError) else _summarise(exc)
            raise CorruptHistoryError(store.location(hkey), reason) from None
        version = _Version(model, raw, found.data, found.etag)
        self._remember(store, hkey, version)
        return version

    def load(self, file_key: str, bucket: str | None = None, *, fresh: bool = False) -> FileHistory | None:
        """The document of ``file_key`` (from the cache unless ``fresh``), or None. Shared: don't change it."""
        store = self.store_for(bucket)
        hkey = self.history_key(file_key)
        version = None if fresh else self._cached(store, hkey)
        if version is None:
            version = self.read(store, hkey)
        return version.model if version is not None else None

    def load_copy(self, file_key: str, bucket: str | None = None, *, fresh: bool = True) -> FileHistory | None:
        """A model of the caller's own (for users, who may change what they get): a fresh read,
        or with ``fresh=False`` the version last read or written here when there is one."""
        store = self.store_for(bucket)
        hkey = self.history_key(file_key)
        version = None if fresh else self._cached(store, hkey)
        if version is None:
            version = self.read(store, hkey)
        return parse_history(version.data) if version is not None else None

    def fetch_many(
        self, wanted: Iterable[tuple[str | None, str]], *, copies: bool = False
    ) -> dict[DocKey, FileHistory | None]:
        """Read many histories at once, in parallel (one round trip); shared models unless ``copies``."""
        unique = list(dict.fromkeys((bucket or self.bucket, key) for bucket, key in wanted))
        if not unique:
            return {}

        def fetch(item: DocKey) -> FileHistory | None:
            if copies:
                return self.load_copy(item[1], item[0])
            return self.load(item[1], item[0], fresh=True)

        if len(unique) == 1:
            return {unique[0]: fetch(unique[0])}
        with ThreadPoolExecutor(max_workers=min(32, len(unique))) as pool:
            return dict(zip(unique, pool.map(fetch, unique), strict=True))

    def with_archive(self, doc: FileHistory, bucket: str | None = None) -> FileHistory:
        """``doc`` with the entries of its archive segments put first (the whole history, oldest first)."""
        if not doc.archived:
            return doc
        merged = doc.model_copy(deep=True)
        merged.entries = read_archived(self.store_for(bucket), doc.archived) + merged.entries
        return merged

    def new_history(self, file_key: str, bucket: str | None = None) -> FileHistory:
        now = utc_now()
        return FileHistory(
            schema_version=SCHEMA_VERSION,
            file_key=file_key,
            bucket=bucket or self.bucket,
            created_at=now,
            updated_at=now,
        )

    # ------------------------------------------------------------------ the compare-and-swap loop

    def update(
        self, file_key: str, mutate: Mutation, *, bucket: str | None = None, assume_new: bool = False
    ) -> FileHistory | None:
        """Apply ``mutate`` to the document with compare-and-swap, retrying until it sticks.

        Starts from the cached document and ETag when this process wrote last (no read),
        or from "no document" when ``assume_new`` (a create needs no read). A speculative
        start that the mutation rejects (``EntryNotFoundError``, or "nothing to do" on a
        document that may exist) is decided again on a fresh read.
        """
        store = self.store_for(bucket)
        hkey = self.history_key(file_key)
        base = self._cached(store, hkey)
        speculative = base is not None or assume_new
        if base is None and not assume_new:
            base = self.read(store, hkey)
        attempt = 0
        while True:
            try:
                new = mutate(working_copy(base.model) if base is not None else None)
            except EntryNotFoundError:
                if not speculative:
                    raise
                speculative = False  # the cached copy may be stale; decide on a fresh read
                base = self.read(store, hkey)
                continue
            if new is None:
                if base is None and speculative:
                    speculative = False
                    base = self.read(store, hkey)
                    continue
                return base.model if base is not None else None
            new.updated_at = utc_now()
            new.schema_version = SCHEMA_VERSION
            payload = _payload(new, base)
            data = encode(payload)
            if archive_overflow(
                store,
                self.prefix,
                new,
                max_entries=self.options.max_entries,
                max_live_bytes=self.options.max_live_bytes,
                size=len(data),
            ):
                payload = _payload(new, base)
                data = encode(payload)
            etag = base.etag if base is not None else None
            try:
                new_etag = store.put(hkey, data, if_match=etag, if_none_match=etag is None)
            except ConditionFailed as conflict:
                attempt += 1
                self.forget(store, hkey)
                if attempt >= self.options.cas_max_attempts:
                    raise ConcurrentUpdateError(
                        f"gave up updating {store.location(hkey)} after {attempt} conflicting writes "
                        f"(last: HTTP {conflict.status}); other writers kept changing it"
                    ) from None
                if not speculative or attempt > 1:
                    # Full jitter: spreads competing writers out instead of letting them collide again.
                    time.sleep(random.uniform(0, min(0.5, 0.01 * (2**attempt))))
                speculative = False
                base = self.read(store, hkey)
                continue
            self._remember(store, hkey, _Version(new, payload, data, new_etag))
            return new
