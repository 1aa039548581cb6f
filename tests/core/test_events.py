"""Lifecycle events (``tracker.on``): sent after the history says so, never breaking a step."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from lore_core import LoreTracker, StepContext, StepEvent


def test_events_follow_the_history_and_a_failing_subscriber_breaks_nothing(
    tracker: LoreTracker, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str, str, tuple[str, ...]]] = []

    def note(event: StepEvent) -> None:
        # Sent after the write: the history already holds the entry in this state.
        stored = tracker.get_history(event.file_key)
        assert stored is not None and stored.entry(event.entry.id) is not None
        assert stored.entry(event.entry.id).status == event.entry.status  # type: ignore[union-attr]
        seen.append((event.kind, event.file_key, str(event.entry.status), event.produces))

    def broken(event: StepEvent) -> None:
        raise RuntimeError("subscriber bug")

    tracker.on("*", note)
    tracker.on("step.failed", broken)

    def fails(ctx: StepContext) -> None:
        raise ValueError("bad")

    def produces(ctx: StepContext) -> None:
        ctx.produce("out.csv")

    with caplog.at_level(logging.ERROR, logger="lore"):
        ok = tracker.run("in.csv", step="a", handler=produces)
        bad = tracker.run("in.csv", step="b", handler=fails)
        tracker.record("rec.csv", step="c", status="success", derived_from=["in.csv"])
    assert (ok.status, bad.status) == ("success", "failed")
    assert seen == [
        ("step.started", "in.csv", "running", ()),
        ("step.succeeded", "in.csv", "success", ("out.csv",)),
        ("step.started", "in.csv", "running", ()),
        ("step.failed", "in.csv", "failed", ()),
        ("step.succeeded", "rec.csv", "success", ()),
    ]
    assert "an event subscriber failed on step.failed" in caplog.text


def test_unsubscribe_and_unknown_kinds(tracker: LoreTracker) -> None:
    seen: list[Any] = []
    off = tracker.on("step.succeeded", seen.append)
    tracker.record("a.csv", step="s", status="success")
    off()
    tracker.record("a.csv", step="s", status="success")
    assert len(seen) == 1
    assert seen[0].recorded_finished is True
    with pytest.raises(ValueError, match=r"unknown event kind 'step\.done'"):
        tracker.on("step.done", seen.append)
