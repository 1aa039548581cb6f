"""Tracking off the critical path: the running write overlaps the handler; only the final write waits.

Each test holds a real request to the S3 server (through botocore's own ``before-send``
event, in the thread that sends it) until the handler or another request has got to a
given point. Were the requests still sequential, the held request would wait for
something that never comes and the test would see the hold time out; the timeout only
guards against a hang, it never stands in for synchronisation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest

from lore_core import LoreError, LoreTracker, StepContext
from lore_core.models import StepStatus

GUARD_S = 20.0


class Gate:
    """Holds matching PUTs of the client until ``open()`` (or the guard runs out: ``timed_out``)."""

    def __init__(self, client: Any, matches: Callable[[str], bool]) -> None:
        self.matches = matches
        self.opened = threading.Event()
        self.held = threading.Event()
        self.timed_out = False
        self.sent: list[str] = []
        client.meta.events.register("before-send.s3.PutObject", self._before_send)

    def _before_send(self, request: Any, **_: Any) -> None:
        path = unquote(request.url.split("?", 1)[0])
        self.sent.append(path)
        if self.matches(path) and not self.opened.is_set():
            self.held.set()
            if not self.opened.wait(GUARD_S):
                self.timed_out = True

    def open(self) -> None:
        self.opened.set()


def _history_path(bucket: str, key: str) -> str:
    return f"/{bucket}/.lore-s3/{key}.json"


def test_the_handler_runs_while_the_running_entry_is_written(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("seed", step="warm", handler=lambda ctx: None)  # the store's self-check is done
    doc = _history_path(bucket, "data/a.csv")
    gate = Gate(s3_client, lambda path: path.endswith(doc))
    seen: dict[str, Any] = {}

    def handler(ctx: StepContext) -> dict[str, int]:
        seen["ran_while_held"] = gate.held.wait(GUARD_S)  # the running write is in flight now
        gate.open()
        ctx.wait_started()
        seen["attempt"] = ctx.attempt
        return {"rows": 3}

    result = tracker.run("data/a.csv", step="load", handler=handler, input={"n": 1})
    assert result.status is StepStatus.SUCCESS
    assert seen == {"ran_while_held": True, "attempt": 1}
    assert not gate.timed_out, "the running write waited for the handler: it was on the critical path"
    history = LoreTracker(bucket=bucket, s3_client=s3_client).get_history("data/a.csv")
    assert history is not None
    [entry] = history.entries
    assert (entry.id, entry.status, entry.input, entry.output) == (result.entry_id, "success", {"n": 1}, {"rows": 3})


def test_track_block_overlaps_the_running_write_too(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("seed", step="warm", handler=lambda ctx: None)
    gate = Gate(s3_client, lambda path: path.endswith(_history_path(bucket, "data/b.csv")))
    with tracker.track("data/b.csv", step="load") as ctx:
        assert gate.held.wait(GUARD_S)
        gate.open()
        ctx.output = {"ok": True}
    assert not gate.timed_out
    assert ctx.recorded is not None and ctx.recorded.status is StepStatus.SUCCESS


def test_produced_files_are_linked_while_the_final_entry_is_written(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("in.csv", step="warm", handler=lambda ctx: None)
    own = _history_path(bucket, "in.csv")
    products = [_history_path(bucket, f"out/{n}.csv") for n in range(2)]
    own_final_sent = threading.Event()
    holds: list[bool] = []

    def before_send(request: Any, **_: Any) -> None:
        path = unquote(request.url.split("?", 1)[0])
        if path.endswith(own):
            own_final_sent.set()
        elif any(path.endswith(p) for p in products):
            # A product's link waits until the entry's own final write has been sent.
            holds.append(own_final_sent.wait(GUARD_S))

    def handler(ctx: StepContext) -> None:
        ctx.wait_started()
        own_final_sent.clear()  # from here on, only the final write of the entry counts
        ctx.produce("out/0.csv")
        ctx.produce("out/1.csv")

    s3_client.meta.events.register("before-send.s3.PutObject", before_send)
    result = tracker.run("in.csv", step="split", handler=handler)
    assert result.status is StepStatus.SUCCESS
    assert holds == [True, True], "the products were linked before the final write was sent: two round trips"
    reader = LoreTracker(bucket=bucket, s3_client=s3_client)
    for n in range(2):
        doc = reader.get_history(f"out/{n}.csv")
        assert doc is not None and [(r.file_key, r.entry_id) for r in doc.derived_from] == [("in.csv", result.entry_id)]


@pytest.mark.parametrize("outcome", ["success", "failed"])
def test_a_running_write_that_fails_is_folded_into_the_final_write(
    s3_client: Any, bucket: str, outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, outage_timeout=1.0)
    tracker.run("seed", step="warm", handler=lambda ctx: None)
    doc = _history_path(bucket, "data/c.csv")
    handler_done = threading.Event()

    def refuse_while_running(request: Any, **_: Any) -> Any:
        path = unquote(request.url.split("?", 1)[0])
        if path.endswith(doc) and not handler_done.is_set():
            # What S3 answers an overloaded client: botocore retries it, then gives up.
            from botocore.awsrequest import AWSResponse

            return AWSResponse(request.url, 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>"))
        return None

    s3_client.meta.events.register("before-send.s3.PutObject", refuse_while_running)

    def handler(ctx: StepContext) -> dict[str, int]:
        ctx.wait_started()  # the running write has given up by now
        handler_done.set()
        if outcome == "failed":
            raise ValueError("bad row 7")
        return {"rows": 1}

    result = tracker.run("data/c.csv", step="load", handler=handler, input={"n": 2})
    assert result.status == outcome
    history = LoreTracker(bucket=bucket, s3_client=s3_client).get_history("data/c.csv")
    assert history is not None
    [entry] = history.entries
    assert (entry.id, entry.status, entry.input) == (result.entry_id, outcome, {"n": 2})
    assert entry.started_at < entry.completed_at  # type: ignore[operator]
    if outcome == "failed":
        assert entry.error is not None and entry.error.message == "bad row 7"
        assert [f.entry_id for f in tracker.list_failed()] == [result.entry_id]
    else:
        assert entry.output == {"rows": 1}
    assert "could not be written" in caplog.text


def test_a_bad_argument_is_still_refused_before_the_handler_runs(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    ran: list[bool] = []
    with pytest.raises(LoreError):
        tracker.run("../escape", step="load", handler=lambda ctx: ran.append(True))
    with pytest.raises(LoreError):
        tracker.run("data/d.csv", step="", handler=lambda ctx: ran.append(True))
    assert ran == []


class _Raw:
    """The raw body botocore reads from an ``AWSResponse``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body

    def read(self, *_: Any) -> bytes:
        body, self._body = self._body, b""
        return body


def test_a_product_that_already_has_a_history_is_linked_in_one_write(s3_client: Any, bucket: str) -> None:
    LoreTracker(bucket=bucket, s3_client=s3_client).run(
        "in.csv", step="s", handler=lambda ctx: None, produces="out.csv"
    )
    for how in ("produces", "prefetch"):
        tracker = LoreTracker(bucket=bucket, s3_client=s3_client)  # a new worker: nothing cached
        tracker.store.stats.reset()
        if how == "produces":
            tracker.run("in.csv", step="s", handler=lambda ctx: None, produces="out.csv")
        else:  # an Airflow task: its outlets are known at the start, linked at the end
            active = tracker.begin("in.csv", "s", prefetch=["out.csv"])
            active.succeed(produces=["out.csv"])
        counts = {k: v for k, v in tracker.store.stats.snapshot().items() if v}
        # The input and the product read while the step runs; running, final and link written:
        # no create refused with 412 and retried after a read on the critical path.
        assert counts == {"get": 2, "put": 3}, (how, counts)
    doc = LoreTracker(bucket=bucket, s3_client=s3_client).get_history("out.csv")
    assert doc is not None and len(doc.derived_from) == 1


def test_a_callers_logger_needs_only_error(s3_client: Any, bucket: str) -> None:
    """An adapter's logger (Dagster's run log wrapper) may have error() alone: a failed running write
    is still folded into the final one, never an AttributeError."""
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, outage_timeout=1.0)
    tracker.run("seed", step="warm", handler=lambda ctx: None)
    doc = _history_path(bucket, "data/e.csv")
    done = threading.Event()

    def refuse(request: Any, **_: Any) -> Any:
        if unquote(request.url.split("?", 1)[0]).endswith(doc) and not done.is_set():
            from botocore.awsrequest import AWSResponse

            return AWSResponse(request.url, 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>"))
        return None

    s3_client.meta.events.register("before-send.s3.PutObject", refuse)
    errors: list[str] = []

    class ErrorOnly:
        def error(self, msg: str, *args: Any) -> None:
            errors.append(msg % args)

    active = tracker.begin("data/e.csv", "load", on_error="log", logger=ErrorOnly())
    active.wait_started()
    done.set()
    entry = active.succeed({"rows": 2})
    assert entry is not None and entry.status == "success" and errors == []


def test_a_link_that_fails_after_the_entry_landed_still_finishes_the_entry(tmp_path: Any) -> None:
    """The product's link is written beside the entry: should it fail, the entry is still recorded,
    its success told to subscribers, and the failure index cleaned, before the error is raised."""
    from pathlib import Path

    from lore_core import CorruptHistoryError
    from lore_core.keys import history_key

    root = Path(tmp_path) / "b"
    tracker = LoreTracker.from_url(root.as_uri())
    tracker.record("p.csv", step="seed", status="success")
    (root / history_key(".lore-s3", "p.csv")).write_text("{not json")  # the product's history is broken
    bad = tracker.run("in.csv", step="load", handler=lambda ctx: 1 / 0)  # a failure to resolve
    events: list[str] = []
    tracker.on("step.succeeded", lambda event: events.append(event.entry.id))
    fresh = LoreTracker.from_url(root.as_uri())
    fresh.on("step.succeeded", lambda event: events.append(event.entry.id))
    with pytest.raises(CorruptHistoryError):
        fresh.run("in.csv", step="load", handler=lambda ctx: ctx.produce("p.csv"), raise_on_failure=True)
    doc = fresh.get_history("in.csv")
    assert doc is not None
    latest = doc.entries[-1]
    assert latest.status == "success" and events == [latest.id]
    assert [f.entry_id for f in fresh.list_failed()] == []  # the earlier failure is resolved and gone
    assert bad.entry_id in {e.id for e in doc.entries}
