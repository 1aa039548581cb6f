"""issue 8, defect 5: the first write through a store proves that the backend honours conditional
writes (a PUT with a wrong ``If-Match`` gets 412, a second create with ``If-None-Match: *`` fails),
or Lore refuses to write, naming the endpoint.

Today nothing checks: on an S3-compatible server that ignores ``If-Match`` updates are lost
silently. ``LocalS3Server(honour_conditions=False)`` is such a server (moto over HTTP, with the
conditional headers dropped before moto sees them).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import lore_core
from lore_core import LoreTracker, StepStatus, StoreError
from lore_core.testing import LocalS3Server


@pytest.fixture(scope="module")
def lax_server(_fake_aws_credentials: None) -> Iterator[LocalS3Server]:
    """A real S3 server over HTTP that ignores If-Match / If-None-Match."""
    with LocalS3Server(honour_conditions=False) as server:
        yield server


def _bucket(server: LocalS3Server) -> tuple[Any, str]:
    client = server.client()
    name = f"lore-lax-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def _objects(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


class Requests:
    """A botocore hook pair: every request's method, and the HTTP status of every response."""

    def __init__(self, client: Any) -> None:
        self.methods: list[str] = []
        self.statuses: list[tuple[str, int]] = []
        client.meta.events.register("before-send.s3.*", self._sent)
        client.meta.events.register("needs-retry.s3.*", self._answered)

    def _sent(self, request: Any, **kwargs: Any) -> None:
        self.methods.append(request.method)

    def _answered(self, response: Any = None, operation: Any = None, **kwargs: Any) -> None:
        if response is not None:
            self.statuses.append((getattr(operation, "name", "?"), response[0].status_code))

    def clear(self) -> None:
        self.methods.clear()
        self.statuses.clear()


WRITES: dict[str, Callable[[LoreTracker], object]] = {
    "record": lambda t: t.record("in/a.csv", step="s"),
    "start": lambda t: t.start("in/a.csv", step="s"),
    "run": lambda t: t.run("in/a.csv", step="s", handler=lambda ctx: None),
    "record(failed)": lambda t: t.record("in/a.csv", step="s", status="failed", error="boom"),
}


@pytest.mark.moto_only
@pytest.mark.parametrize("write", list(WRITES))
def test_backend_ignoring_conditional_writes_is_refused_at_the_first_write(
    lax_server: LocalS3Server, write: str
) -> None:
    """issue 8, defect 5: on a server that ignores conditional headers the first write raises
    ConditionalWritesUnsupportedError (a StoreError) naming the endpoint, writes no history and
    leaves no probe object behind; the next write is refused too."""
    client, bucket = _bucket(lax_server)
    tracker = LoreTracker(bucket=bucket, s3_client=client)

    with pytest.raises(StoreError, match=re.escape(lax_server.endpoint_url)) as refused:
        WRITES[write](tracker)

    assert isinstance(refused.value, lore_core.ConditionalWritesUnsupportedError)
    assert _objects(client, bucket) == []  # no history, no index, and the probe is gone
    with pytest.raises(lore_core.ConditionalWritesUnsupportedError):
        tracker.record("in/b.csv", step="s")
    assert _objects(client, bucket) == []


@pytest.mark.moto_only
def test_the_check_can_be_skipped(lax_server: LocalS3Server) -> None:
    """issue 8, defect 5: ``verify_conditional_writes=False`` skips the check (documented for
    read-only use and for backends the operator vouches for): writes go through."""
    client, bucket = _bucket(lax_server)
    tracker = LoreTracker(bucket=bucket, s3_client=client, verify_conditional_writes=False)

    result = tracker.run("in/a.csv", step="s", handler=lambda ctx: 42)

    assert result.status == StepStatus.SUCCESS
    history = tracker.get_history("in/a.csv")
    assert history is not None and [e.output for e in history.entries] == [42]


def _seed(client: Any, bucket: str) -> None:
    """Two histories in the documented format, written straight to the bucket: in/a.csv (a success
    that produced out/a.csv, then a failure) and out/a.csv."""
    stamp = "2026-01-01T00:00:00.000Z"
    docs = {
        "in/a.csv": {
            "fileKey": "in/a.csv",
            "bucket": bucket,
            "derivedFrom": [],
            "derivedTo": [{"fileKey": "out/a.csv", "entryId": "01JAAAAAAAAAAAAAAAAAAAAAA1"}],
            "entries": [
                {
                    "id": "01JAAAAAAAAAAAAAAAAAAAAAA1",
                    "step": "s",
                    "status": "success",
                    "produces": ["out/a.csv"],
                    "startedAt": stamp,
                    "completedAt": stamp,
                },
                {
                    "id": "01JAAAAAAAAAAAAAAAAAAAAAA2",
                    "step": "t",
                    "status": "failed",
                    "error": {"message": "boom"},
                    "startedAt": stamp,
                    "completedAt": stamp,
                },
            ],
            "createdAt": stamp,
            "updatedAt": stamp,
        },
        "out/a.csv": {
            "fileKey": "out/a.csv",
            "bucket": bucket,
            "derivedFrom": [{"fileKey": "in/a.csv", "entryId": "01JAAAAAAAAAAAAAAAAAAAAAA1"}],
            "entries": [],
            "createdAt": stamp,
            "updatedAt": stamp,
        },
    }
    for key, doc in docs.items():
        client.put_object(Bucket=bucket, Key=f".lore-s3/{key}.json", Body=json.dumps(doc).encode())


@pytest.mark.moto_only
def test_reads_never_trigger_the_check_but_the_first_write_does(lax_server: LocalS3Server) -> None:
    """issue 8, defect 5: reading (get_history, list_tracked_files, list_all_histories,
    get_descendants, get_lineage, get_failed_steps) on such a server works and sends no write;
    the first write is refused."""
    client, bucket = _bucket(lax_server)
    _seed(client, bucket)
    before = _objects(client, bucket)
    reader = LoreTracker(bucket=bucket, s3_client=client)
    seen = Requests(client)

    history = reader.get_history("in/a.csv")
    assert history is not None and len(history.entries) == 2
    assert list(reader.list_tracked_files()) == ["in/a.csv", "out/a.csv"]
    assert len(list(reader.list_all_histories())) == 2
    assert reader.get_descendants("in/a.csv") == ["out/a.csv"]
    lineage = reader.get_lineage("out/a.csv")
    assert lineage is not None
    assert [e.step for e in reader.get_failed_steps("in/a.csv")] == ["t"]
    assert seen.methods and set(seen.methods) <= {"GET", "HEAD"}, seen.methods

    with pytest.raises(StoreError, match=re.escape(lax_server.endpoint_url)) as refused:
        reader.record("in/a.csv", step="u")
    assert isinstance(refused.value, lore_core.ConditionalWritesUnsupportedError)
    assert _objects(client, bucket) == before


def test_a_conforming_server_passes_the_check_once_per_store(s3_client: Any, bucket: str) -> None:
    """issue 8, defect 5: on moto's normal server the first write proves the conditions (some
    request is answered 412), once per store: the next steps cost the normal 1 read + 2 writes or
    less, and probe nothing."""
    seen = Requests(s3_client)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)

    first = tracker.run("in/a.csv", step="one", handler=lambda ctx: 1)

    assert first.status == StepStatus.SUCCESS
    assert any(status == 412 for _, status in seen.statuses), f"no conditional write was tested: {seen.statuses}"
    for key, step in (("in/a.csv", "two"), ("in/b.csv", "one")):
        seen.clear()
        assert tracker.run(key, step=step, handler=lambda ctx: 2).status == StepStatus.SUCCESS
        assert seen.methods.count("GET") <= 1 and seen.methods.count("PUT") <= 2, (key, step, seen.methods)
        assert set(seen.methods) <= {"GET", "PUT"}, seen.methods
        assert not any(status == 412 for _, status in seen.statuses), f"probed again: {seen.statuses}"
    history = tracker.get_history("in/a.csv")
    assert history is not None and [e.step for e in history.entries] == ["one", "two"]
