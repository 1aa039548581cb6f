"""Helpers shared by the regression tests of issue 8 (trackers per store kind, polling, fault hooks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest

from lore_core import LoreTracker

T = TypeVar("T")
TrackerFactory = Callable[..., LoreTracker]


def open_tracker(store_url: str, request: pytest.FixtureRequest, **options: Any) -> LoreTracker:
    """A new tracker instance (its own store object, cache and client) on the store ``store_url`` names."""
    if store_url.startswith("s3://"):
        endpoint = request.getfixturevalue("s3_endpoint")
        return LoreTracker.from_url(store_url, endpoint_url=endpoint, region="us-east-1", **options)
    return LoreTracker.from_url(store_url, **options)


def wait_for(condition: Callable[[], T | None], what: str, deadline_s: float = 60.0) -> T:
    """Poll ``condition`` until it returns something truthy (waiting on a condition, not a fixed sleep)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


def stored_document(tracker: LoreTracker, file_key: str) -> bytes:
    """The bytes of the file's live history object, as the store holds them."""
    found = tracker.store.get(f"{tracker.prefix}/{file_key}.json")
    assert found is not None, f"no history object for {file_key!r}"
    return found.data


class SimulatedCrash(Exception):
    """Raised from a botocore hook in place of a write: the process died before the request left."""


WRITE_METHODS = ("PUT", "POST", "DELETE")


class WriteCounter:
    """A ``before-send.s3.*`` hook: counts the writes (PUT/POST/DELETE) a client sends to one bucket,
    and from the ``crash_at``-th write on makes every write raise ``SimulatedCrash`` (a dead
    process sends nothing more)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.writes: list[str] = []
        self.crash_at: int | None = None

    def install(self, s3_client: Any) -> WriteCounter:
        s3_client.meta.events.register_first("before-send.s3.*", self)
        return self

    def __call__(self, request: Any, **kwargs: Any) -> None:
        if request.method not in WRITE_METHODS:
            return
        path = unquote(request.url.split("://", 1)[-1].split("?", 1)[0])
        if f"/{self.bucket}/" not in path and not path.split("/", 1)[0].startswith(self.bucket + "."):
            return
        self.writes.append(f"{request.method} {path}")
        if self.crash_at is not None and len(self.writes) >= self.crash_at:
            raise SimulatedCrash(f"crashed at write {len(self.writes)}: {request.method} {path}")
