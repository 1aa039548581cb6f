"""The store contract: a bucket-like place with conditional writes.

A store knows nothing of histories; the tracker decides what the keys mean.
Every implementation honours the same compare-and-swap semantics as S3:
``put(if_none_match=True)`` creates only when absent, ``put(if_match=etag)``
replaces only the version with that ETag, and both raise ``ConditionFailed``
otherwise.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConditionalWritesUnsupportedError, LoreError, StoreError

__all__ = [
    "ConditionFailed",
    "ListedObject",
    "RequestStats",
    "Store",
    "StoredObject",
    "verify_conditional_writes",
]


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    etag: str
    #: True when a conditional read (``get(key, if_none_match=etag)``) found the object unchanged;
    #: ``data`` is then empty and the caller's copy is current.
    not_modified: bool = False


@dataclass(frozen=True)
class ListedObject:
    key: str
    last_modified: datetime | None = None
    #: The object's ETag as the listing gives it (S3's LIST does, at no extra cost), or a change
    #: token that differs whenever the object does (the file store's); None when unknown.
    etag: str | None = None


class ConditionFailed(LoreError):
    """A conditional write lost: 412 (precondition failed) or 409 (conflicting concurrent write)."""

    def __init__(self, key: str, status: int) -> None:
        super().__init__(f"conditional write of {key!r} failed with HTTP {status}")
        self.key = key
        self.status = status

    def __reduce__(self) -> tuple[type[ConditionFailed], tuple[str, int]]:
        # Picklable, so it can cross a process pool (a failed unpickle hangs the pool).
        return (type(self), (self.key, self.status))


class RequestStats:
    """Requests a store has made, by kind (``get``, ``put``, ``delete``, ``list``). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counts[kind] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


class Store(ABC):
    """A bucket-like object store with compare-and-swap writes."""

    #: The bucket name recorded in histories.
    bucket: str

    def __init__(self) -> None:
        self.stats = RequestStats()

    @abstractmethod
    def get(self, key: str, *, if_none_match: str | None = None) -> StoredObject | None:
        """The object and its ETag, or None when there is no such object.

        With ``if_none_match`` (an ETag the caller holds), an unchanged object comes back as
        ``StoredObject(b"", etag, not_modified=True)`` without its body (HTTP 304 on S3).
        """

    @abstractmethod
    def put(self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write the object and return its new ETag; raise ConditionFailed if a condition does not hold."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ListedObject]:
        """Objects whose key starts with ``prefix``, in UTF-8 byte order, after ``start_after``."""

    @abstractmethod
    def location(self, key: str) -> str:
        """A URL a person can read, e.g. ``s3://bucket/key``."""

    def identity(self) -> str:
        """Names the backend and bucket (endpoint included), for errors and the self-check cache."""
        endpoint = getattr(getattr(getattr(self, "client", None), "meta", None), "endpoint_url", None)
        where = self.location("")
        return f"{where} at {endpoint}" if endpoint else where

    def for_bucket(self, bucket: str) -> Store:
        """A store for another bucket with the same settings (for cross-bucket lineage)."""
        if bucket == self.bucket:
            return self
        raise StoreError(f"{type(self).__name__} cannot reach other buckets (asked for {bucket!r})")


def utf8_sort_key(key: str) -> bytes:
    return key.encode("utf-8")


_verified: set[str] = set()
_verified_lock = threading.Lock()
_WRONG_ETAG = '"00000000000000000000000000000000"'


def verify_conditional_writes(store: Store, probe_key: str, *, attempts: int = 5) -> None:
    """Prove once per process and backend that ``store`` honours conditional writes, or raise.

    Creates a probe object with ``If-None-Match: *``, then checks that a second create and
    a write with a wrong ``If-Match`` are both refused and one with the right ``If-Match``
    accepted, and deletes the probe (4 PUTs and 1 DELETE, once). A store that gets any of
    these wrong would let concurrent writers overwrite each other's entries without anyone
    noticing (or fail every update), so Lore refuses to write there.

    A refusal can be spurious (a 409 conflict, or botocore retrying a PUT that landed and
    then answering 412), so the steps that must *succeed* are tried again, each time on a
    fresh probe; only the refusals that must happen can be taken at their word.
    """
    identity = store.identity()
    with _verified_lock:
        if identity in _verified:
            return
    ignored: list[str] = []
    for attempt in range(attempts):
        key = f"{probe_key}-{attempt}"
        try:
            etag = store.put(key, b"lore conditional-write probe", if_none_match=True)
        except ConditionFailed:
            store.delete(key)
            continue  # a fresh key cannot exist: the refusal was spurious
        try:
            ignored = []
            try:
                store.put(key, b"lore probe: second create", if_none_match=True)
                ignored.append("If-None-Match: * (a second create of the same key succeeded)")
            except ConditionFailed:
                pass
            try:
                store.put(key, b"lore probe: wrong etag", if_match=_WRONG_ETAG)
                ignored.append("If-Match (a write with a wrong ETag succeeded)")
            except ConditionFailed:
                pass
            if ignored:
                break
            # The object's own ETag must be accepted too (a server that refuses every If-Match,
            # e.g. for the quoting of the ETag, would fail every update; the S3 store learns the
            # form the server accepts here, before the first real update).
            try:
                store.put(key, b"lore probe: right etag", if_match=etag)
            except ConditionFailed:
                ignored = ["If-Match with the object's own ETag (it was refused)"]
                continue  # maybe a spurious conflict: try again on a fresh probe
            ignored = []
            break
        finally:
            store.delete(key)
    else:
        if not ignored:
            ignored = [f"If-None-Match: * on a key that does not exist (refused {attempts} times)"]
    if ignored:
        raise ConditionalWritesUnsupportedError(
            f"{identity} mishandles {' and '.join(ignored)}: concurrent updates would be lost silently, so Lore "
            "refuses to write there. Use a backend with conditional writes (AWS S3, MinIO, Ceph RGW, "
            "Cloudflare R2), or pass verify_conditional_writes=False if nothing writes concurrently"
        )
    with _verified_lock:
        _verified.add(identity)
