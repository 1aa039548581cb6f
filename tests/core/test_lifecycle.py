"""issue 8, defect 1: one lifecycle (``tracker.track``) that renews the lease, and a late success is
accepted, never refused or rewritten as a failure.

Today a step that outlives its lease reads as abandoned; the next success of the same step
rewrites it as ``failed/LeaseExpired`` and the slow step's own ``succeed()`` is refused.
"""

from __future__ import annotations

import time

import pytest

from lore_core import LoreTracker, StepStatus

from .support import open_tracker


def test_late_success_after_the_lease_expired_is_accepted(store_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 1 (the repro): start a, let its 1 s lease run out, start and succeed b of the
    same step on the same file (another worker), then succeed a: accepted, a is a success with no
    error, its outputs are linked to a success, and no failure is reported anywhere."""
    slow = open_tracker(store_url, request, lease_seconds=1)
    other = open_tracker(store_url, request, lease_seconds=1)
    a = slow.start("in/report.csv", step="convert", input={"dpi": 150})
    time.sleep(1.5)  # a's worker never renews: its lease expires
    b = other.start("in/report.csv", step="convert", input={"dpi": 150})
    other.succeed("in/report.csv", b, output={"who": "b"})

    slow.succeed("in/report.csv", a, output={"who": "a"}, produces=["out/report-a.png"])

    reader = open_tracker(store_url, request, lease_seconds=1)
    history = reader.get_history("in/report.csv")
    assert history is not None
    entry_a, entry_b = history.entry(a), history.entry(b)
    assert entry_a is not None and entry_b is not None
    assert entry_a.status is StepStatus.SUCCESS, entry_a
    assert entry_a.error is None and entry_a.output == {"who": "a"}
    assert entry_a.resolved_by is None  # a success is not a resolved failure
    assert entry_b.status is StepStatus.SUCCESS and entry_b.output == {"who": "b"}
    assert list(reader.list_failed()) == []
    assert reader.get_failed_steps("in/report.csv") == []
    assert reader.get_failed_steps("in/report.csv", include_resolved=True) == []
    product = reader.get_history("out/report-a.png")
    assert product is not None and [(r.file_key, r.entry_id) for r in product.derived_from] == [("in/report.csv", a)]


def test_track_renews_the_lease_of_a_step_that_outlives_it(store_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 1: a ``track()`` block lasting 2.5 times its 1 s lease is never seen as
    abandoned (a background heartbeat renews the lease), and ends as a success."""
    tracker = open_tracker(store_url, request, lease_seconds=1, first_heartbeat_seconds=0.2)
    reader = open_tracker(store_url, request, lease_seconds=1)
    with tracker.track("in/long.csv", step="slow", input={"n": 1}) as ctx:
        entry_id = ctx.entry_id
        assert (ctx.file_key, ctx.step, ctx.input) == ("in/long.csv", "slow", {"n": 1})
        for _ in range(2):
            time.sleep(1.2)  # the step runs past its lease: only the heartbeat keeps it alive
            history = reader.get_history("in/long.csv")
            entry = history.entry(entry_id) if history is not None else None
            assert entry is not None and entry.status is StepStatus.RUNNING
            assert not entry.abandoned, f"lease not renewed: expires {entry.lease_expires_at}"
            assert list(reader.list_failed()) == []
            assert reader.get_failed_steps("in/long.csv") == []
        ctx.output = {"pages": 3}

    history = reader.get_history("in/long.csv")
    entry = history.entry(entry_id) if history is not None else None
    assert entry is not None and entry.status is StepStatus.SUCCESS
    assert entry.output == {"pages": 3} and entry.error is None
    assert list(reader.list_failed()) == []


def test_track_records_a_failure_and_reraises(tracker: LoreTracker) -> None:
    """issue 8, defect 1: the one lifecycle records the exception of a failed block (type, message)
    and re-raises it; the failure is in the index."""
    seen: list[str] = []
    with pytest.raises(ValueError, match="bad row 7"), tracker.track("in/rows.csv", step="parse") as ctx:
        seen.append(ctx.entry_id)
        raise ValueError("bad row 7")

    [entry_id] = seen
    history = tracker.get_history("in/rows.csv")
    entry = history.entry(entry_id) if history is not None else None
    assert entry is not None and entry.status is StepStatus.FAILED
    assert entry.error is not None and entry.error.name == "ValueError" and "bad row 7" in entry.error.message
    assert [(f.file_key, f.entry_id, f.step) for f in tracker.list_failed()] == [("in/rows.csv", entry_id, "parse")]


def test_track_records_output_products_and_metadata(tracker: LoreTracker) -> None:
    """issue 8, defect 1: ``track()`` takes input, produces, orchestrator, metadata and description,
    and on a clean exit records ``ctx.output`` and every produced file as derived from the entry."""
    with tracker.track(
        "in/a.pdf",
        step="render",
        input={"dpi": 150},
        produces=["out/a-0.png"],
        orchestrator={"system": "test", "run_id": "r1"},
        metadata={"host": "w1"},
        description="render pages",
    ) as ctx:
        ctx.produce("out/a-1.png")
        ctx.output = {"pages": 2}
        entry_id = ctx.entry_id

    history = tracker.get_history("in/a.pdf")
    entry = history.entry(entry_id) if history is not None else None
    assert entry is not None and entry.status is StepStatus.SUCCESS
    assert entry.input == {"dpi": 150} and entry.output == {"pages": 2}
    assert entry.metadata == {"host": "w1"} and entry.description == "render pages"
    assert entry.orchestrator is not None and entry.orchestrator.run_id == "r1"
    assert set(entry.produces or []) == {"out/a-0.png", "out/a-1.png"}
    assert set(tracker.get_descendants("in/a.pdf")) == {"out/a-0.png", "out/a-1.png"}
    for product in ("out/a-0.png", "out/a-1.png"):
        doc = tracker.get_history(product)
        assert doc is not None and [(r.file_key, r.entry_id) for r in doc.derived_from] == [("in/a.pdf", entry_id)]
