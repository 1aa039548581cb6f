"""The tracker's options, checked once: a bad value is an error naming the option, never silently changed.

Promises: every option of ``LoreTracker`` is validated here before anything is
built; values are used exactly as given (``max_entries=3`` keeps three entries).
It does not read environment variables or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import LoreConfigError

__all__ = ["TrackerOptions"]


def _positive(name: str, value: float, *, integer: bool = False, allow_zero: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise LoreConfigError(f"{name} must be {kind}, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise LoreConfigError(f"{name} must be {bound}, got {value!r}")


def _bucket_names(name: str, value: object) -> None:
    if isinstance(value, str) or not isinstance(value, (tuple, list, set, frozenset)):
        raise LoreConfigError(f"{name} must be a list of bucket names, got {value!r}")
    for bucket in value:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise LoreConfigError(f"{name} must hold bucket names (no 's3://', no '/'), got {bucket!r}")


@dataclass(frozen=True)
class TrackerOptions:
    """Limits and timings of a tracker (see the README's Configuration table)."""

    cas_max_attempts: int = 60
    max_ancestry: int = 1000
    cache_size: int = 256
    max_value_bytes: int = 64 * 1024
    max_entries: int = 500
    max_live_bytes: int = 48 * 1024
    max_document_bytes: int = 256 * 1024 * 1024
    lease_seconds: float = 600.0
    first_heartbeat_seconds: float = 5.0
    claim_seconds: float | None = None
    mark_running: bool = False
    outage_timeout: float = 60.0
    verify_conditional_writes: bool = True
    max_lineage_nodes: int = 2000
    writable_buckets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _bucket_names("writable_buckets", self.writable_buckets)
        # A list or set given by the caller is kept as a tuple: the options stay hashable.
        object.__setattr__(self, "writable_buckets", tuple(dict.fromkeys(self.writable_buckets)))
        _positive("cas_max_attempts", self.cas_max_attempts, integer=True)
        _positive("max_ancestry", self.max_ancestry, integer=True, allow_zero=True)
        _positive("cache_size", self.cache_size, integer=True, allow_zero=True)
        _positive("max_value_bytes", self.max_value_bytes, integer=True)
        _positive("max_entries", self.max_entries, integer=True)
        _positive("max_live_bytes", self.max_live_bytes, integer=True)
        _positive("max_document_bytes", self.max_document_bytes, integer=True)
        _positive("lease_seconds", self.lease_seconds)
        _positive("first_heartbeat_seconds", self.first_heartbeat_seconds)
        if self.claim_seconds is not None:
            _positive("claim_seconds", self.claim_seconds)
            # The heartbeat renews claims every third of the lease: a claim must outlive two beats.
            if self.claim_seconds < self.lease_seconds * 2 / 3:
                raise LoreConfigError(
                    f"claim_seconds ({self.claim_seconds!r}) must be at least two heartbeats, "
                    f"2/3 of lease_seconds ({self.lease_seconds!r}), or a live claim could expire"
                )
        _positive("outage_timeout", self.outage_timeout, allow_zero=True)
        _positive("max_lineage_nodes", self.max_lineage_nodes, integer=True)

    @property
    def claim_lease(self) -> float:
        """How long a claim holds without renewal (the entry's lease unless set)."""
        return self.claim_seconds if self.claim_seconds is not None else self.lease_seconds
