"""Entry ids and timestamps: ULIDs that sort by time, UTC times at millisecond precision.

Promises: ``new_entry_id()`` is unique and monotonic within a process and sorts by
creation time across processes (to the millisecond); ``stable_entry_id(when, *parts)``
is the same in every process for the same arguments (an event several processes see); ``utc_now()`` compares equal
to itself after a round trip through ``format_timestamp``. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime

__all__ = ["as_utc", "duration_ms", "format_timestamp", "new_entry_id", "stable_entry_id", "utc_now"]


def utc_now() -> datetime:
    # Millisecond precision, as stored: a value read back compares equal.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    value = as_utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def duration_ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ulid_lock = threading.Lock()
_ulid_last: list[int] = [0, 0]  # [ms, random] of the last id, for monotonic ids within a process


def new_entry_id() -> str:
    """A ULID: 26 characters that sort by creation time (monotonic within a process)."""
    with _ulid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _ulid_last[0]:
            ms = _ulid_last[0]
            rand = _ulid_last[1] + 1
        else:
            rand = int.from_bytes(os.urandom(10), "big") >> 1  # leave room to increment
        _ulid_last[0], _ulid_last[1] = ms, rand
    return _ulid(ms, rand)


def stable_entry_id(when: datetime, *parts: str) -> str:
    """The ULID of an entry that several processes may record for one event (the same for each).

    Its time is ``when`` (to the millisecond); its random part a hash of ``parts`` (say a run
    id and an event id). Recording it twice is a no-op, as for any entry id.
    """
    ms = int(as_utc(when).timestamp() * 1000)
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return _ulid(ms, int.from_bytes(digest[:10], "big"))


def _ulid(ms: int, rand: int) -> str:
    value = (ms << 80) | (rand & ((1 << 80) - 1))
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
