"""Leases of running entries, and the heartbeat that renews them while a step runs.

Promises: a running entry carries ``leaseExpiresAt``; while ``track()`` runs, a
background heartbeat renews it (first after ``first_heartbeat_seconds``, then every
third of the lease, so two missed beats still leave it valid) and writes the marker
that lets ``list_failed`` find the entry should the worker die. A step that outlives
its lease is therefore never reported abandoned while its worker is alive.
It does not decide what an expired lease means (``mutations`` and ``failure_index``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from .errors import LoreError
from .ids import utc_now

__all__ = ["Heartbeat", "lease_expiry", "marker_lease"]

log = logging.getLogger("lore")


def lease_expiry(lease_seconds: float, now: datetime | None = None) -> datetime:
    return (now or utc_now()) + timedelta(seconds=lease_seconds)


def marker_lease(lease_seconds: float) -> int:
    """The lease written into a marker's name (whole seconds, at least 1)."""
    return max(1, round(lease_seconds))


class Heartbeat:
    """Calls ``beat()`` in a daemon thread until stopped, or until ``beat()`` returns False."""

    def __init__(self, beat: Callable[[], bool], lease_seconds: float, first_seconds: float, name: str) -> None:
        self._beat = beat
        self._interval = lease_seconds / 3
        self._first = min(self._interval, first_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            wait = self._interval
            try:
                if not self._beat():
                    return
            except LoreError as exc:
                log.warning("lore: could not renew a lease (%s: %s); will try again", type(exc).__name__, exc)
