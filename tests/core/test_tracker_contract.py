"""The tracker's behaviour, the same on every store (S3 over HTTP, file, memory)."""

from __future__ import annotations

from typing import Any

import pytest

from lore_core import (
    EntryNotFoundError,
    LineageRef,
    LoreTracker,
    StepContext,
    StepNotRegisteredError,
    StepStatus,
    lineage_to_json,
)


def test_run_records_success_with_input_output_timing(tracker: LoreTracker) -> None:
    seen: dict[str, Any] = {}

    def handler(ctx: StepContext) -> dict[str, int]:
        seen.update(file_key=ctx.file_key, bucket=ctx.bucket, step=ctx.step, entry_id=ctx.entry_id, input=ctx.input)
        return {"rows": 42}

    result = tracker.run("uploads/report.pdf", step="validate", handler=handler, input={"strict": True})

    assert result.status == "success" and result.ok
    assert result.output == {"rows": 42} and result.error is None
    assert seen == {
        "file_key": "uploads/report.pdf",
        "bucket": tracker.bucket,
        "step": "validate",
        "entry_id": result.entry_id,
        "input": {"strict": True},
    }
    history = tracker.get_history("uploads/report.pdf")
    assert history is not None
    assert history.file_key == "uploads/report.pdf" and history.bucket == tracker.bucket
    (entry,) = history.entries
    assert entry.id == result.entry_id and entry.step == "validate" and entry.status is StepStatus.SUCCESS
    assert entry.input == {"strict": True} and entry.output == {"rows": 42}
    assert entry.completed_at is not None and entry.completed_at >= entry.started_at
    assert entry.duration_ms is not None and entry.duration_ms >= 0
    assert entry.attempt == 1
    assert history.created_at <= history.updated_at


def test_handler_exception_is_recorded_and_not_raised(tracker: LoreTracker) -> None:
    def broken(ctx: StepContext) -> None:
        raise ValueError("bad header in row 3")

    result = tracker.run("raw/a.csv", step="parse", handler=broken)

    assert result.status == "failed" and not result.ok
    assert result.error is not None
    assert result.error.message == "bad header in row 3" and result.error.name == "ValueError"
    assert result.error.stack is not None and "broken" in result.error.stack
    (failed,) = tracker.get_failed_steps("raw/a.csv")
    assert failed.id == result.entry_id and failed.error is not None and failed.error.name == "ValueError"


def test_raise_on_failure_reraises_after_recording(tracker: LoreTracker) -> None:
    with pytest.raises(KeyError):
        tracker.run("raw/b.csv", step="parse", handler=lambda ctx: {}["missing"], raise_on_failure=True)
    history = tracker.get_history("raw/b.csv")
    assert history is not None and history.entries[0].status is StepStatus.FAILED


def test_produces_string_or_list_creates_derived_histories(tracker: LoreTracker) -> None:
    one = tracker.run("raw/c.pdf", step="render", handler=lambda ctx: None, produces="renders/c-1.png")
    many = tracker.run("raw/c.pdf", step="thumbs", handler=lambda ctx: None, produces=["t/1.png", "t/2.png"])

    for key, entry_id in [("renders/c-1.png", one.entry_id), ("t/1.png", many.entry_id), ("t/2.png", many.entry_id)]:
        derived = tracker.get_history(key)
        assert derived is not None
        assert derived.derived_from == [LineageRef(file_key="raw/c.pdf", entry_id=entry_id)]
    assert tracker.get_descendants("raw/c.pdf") == ["renders/c-1.png", "t/1.png", "t/2.png"]
    source = tracker.get_history("raw/c.pdf")
    assert source is not None and source.entries[1].produces == ["t/1.png", "t/2.png"]


def test_handler_can_declare_produced_files(tracker: LoreTracker) -> None:
    def split(ctx: StepContext) -> int:
        for i in range(3):
            ctx.produce(f"parts/{i}.csv")
        return 3

    tracker.run("raw/big.csv", step="split", handler=split)
    assert tracker.get_descendants("raw/big.csv") == ["parts/0.csv", "parts/1.csv", "parts/2.csv"]


def test_lineage_tree_of_depth_three(tracker: LoreTracker) -> None:
    tracker.run("a.txt", step="s1", handler=lambda ctx: None, produces="b.txt")
    tracker.run("b.txt", step="s2", handler=lambda ctx: None, produces="c.txt")
    tracker.run("c.txt", step="s3", handler=lambda ctx: None, produces="d.txt")

    node = tracker.get_lineage("d.txt")
    assert node is not None
    chain = []
    while node is not None:
        chain.append(node.file_key)
        node = node.parents[0] if node.parents else None
    assert chain == ["d.txt", "c.txt", "b.txt", "a.txt"]
    d = tracker.get_history("d.txt")
    assert d is not None and [r.file_key for r in d.ancestry or []] == ["c.txt", "b.txt", "a.txt"]
    tree = lineage_to_json(tracker.get_lineage("c.txt"))  # type: ignore[arg-type]
    assert tree["parents"][0]["fileKey"] == "b.txt" and tree["parents"][0]["latestStatus"] == "success"
    assert tracker.get_lineage("never-seen.txt") is None


def test_lineage_with_several_sources_and_a_diamond(tracker: LoreTracker) -> None:
    tracker.run("raw/x", step="s", handler=lambda ctx: None, produces=["mid/1", "mid/2"])
    e1 = tracker.run("mid/1", step="t", handler=lambda ctx: None).entry_id
    e2 = tracker.run("mid/2", step="t", handler=lambda ctx: None).entry_id
    tracker.record(
        "summary",
        step="combine",
        derived_from=[LineageRef(file_key="mid/1", entry_id=e1), LineageRef(file_key="mid/2", entry_id=e2)],
    )
    node = tracker.get_lineage("summary")
    assert node is not None
    assert sorted(p.file_key for p in node.parents) == ["mid/1", "mid/2"]
    assert all(p.parents[0].file_key == "raw/x" for p in node.parents)
    assert tracker.get_descendants("mid/1") == ["summary"]


def test_register_derived_file_defaults_to_latest_success(tracker: LoreTracker) -> None:
    first = tracker.run("src", step="load", handler=lambda ctx: None)
    tracker.run("src", step="load", handler=lambda ctx: 1 / 0)
    tracker.register_derived_file("copy", "src")
    copy = tracker.get_history("copy")
    assert copy is not None and copy.derived_from == [LineageRef(file_key="src", entry_id=first.entry_id)]
    assert tracker.get_descendants("src") == ["copy"]
    with pytest.raises(EntryNotFoundError, match="no entry 'nope'"):
        tracker.register_derived_file("copy2", "src", "nope")


def test_manual_lifecycle_start_succeed_fail(tracker: LoreTracker) -> None:
    entry_id = tracker.start("doc.pdf", step="ocr", input={"lang": "en"}, produces=["doc.txt"])
    running = tracker.get_history("doc.pdf")
    assert running is not None and running.entries[0].status is StepStatus.RUNNING
    done = tracker.succeed("doc.pdf", entry_id, output={"pages": 2})
    assert done.status is StepStatus.SUCCESS and done.output == {"pages": 2} and done.produces == ["doc.txt"]
    assert tracker.get_descendants("doc.pdf") == ["doc.txt"]

    other = tracker.start("doc.pdf", step="index")
    failed = tracker.fail("doc.pdf", other, error=RuntimeError("search cluster down"))
    assert failed.status is StepStatus.FAILED and failed.error is not None
    assert failed.error.message == "search cluster down" and failed.error.name == "RuntimeError"
    # Finishing twice the same way is a no-op (idempotent by entry id).
    assert tracker.fail("doc.pdf", other, error="again").error.message == "search cluster down"  # type: ignore[union-attr]
    assert [e.step for e in tracker.list_failed()] == ["index"]


def test_replay_with_registered_step_resolves_failure_index(tracker: LoreTracker) -> None:
    calls: list[Any] = []

    @tracker.step("resize")
    def resize(ctx: StepContext) -> str:
        calls.append((ctx.input, ctx.replay_of, ctx.attempt))
        if len(calls) == 1:
            raise OSError("disk full")
        return "resized"

    failed = tracker.run("img/1.png", step="resize", input={"w": 100}, produces="img/1-small.png")
    assert failed.status == "failed"
    assert [(f.file_key, f.entry_id, f.step) for f in tracker.list_failed()] == [
        ("img/1.png", failed.entry_id, "resize")
    ]

    replayed = tracker.replay("img/1.png", failed.entry_id)

    assert replayed.status == "success" and replayed.replay_of == failed.entry_id
    assert calls == [({"w": 100}, None, 1), ({"w": 100}, failed.entry_id, 2)]
    history = tracker.get_history("img/1.png")
    assert history is not None
    new = history.entry(replayed.entry_id)
    assert new is not None and new.replay_of == failed.entry_id and new.attempt == 2
    old = history.entry(failed.entry_id)
    assert old is not None and old.resolved_by == replayed.entry_id
    assert list(tracker.list_failed()) == [] and tracker.get_failed_steps("img/1.png") == []
    assert len(tracker.get_failed_steps("img/1.png", include_resolved=True)) == 1
    assert tracker.get_descendants("img/1.png") == ["img/1-small.png"]
    # A second replay of a resolved failure does not run the step again.
    again = tracker.replay("img/1.png", failed.entry_id)
    assert again.status == "skipped" and again.entry_id == replayed.entry_id and len(calls) == 2


def test_replay_without_handler_is_a_clear_error(tracker: LoreTracker) -> None:
    failed = tracker.run("f", step="unregistered-step", handler=lambda ctx: 1 / 0)
    with pytest.raises(StepNotRegisteredError, match="unregistered-step"):
        tracker.replay("f", failed.entry_id)
    ok = tracker.replay("f", failed.entry_id, handler=lambda ctx: "fixed")
    assert ok.status == "success"


def test_skip_if_succeeded(tracker: LoreTracker) -> None:
    calls = []
    first = tracker.run("k", step="s", handler=lambda ctx: calls.append(1) or "v")
    second = tracker.run("k", step="s", handler=lambda ctx: calls.append(2), skip_if_succeeded=True)
    assert second.status == "skipped" and second.entry_id == first.entry_id and second.output == "v"
    assert calls == [1]
    history = tracker.get_history("k")
    assert history is not None and len(history.entries) == 1


def test_clear_history_keeps_lineage(tracker: LoreTracker) -> None:
    tracker.run("p", step="s", handler=lambda ctx: None, produces="q")
    tracker.run("q", step="t", handler=lambda ctx: 1 / 0)
    assert len(list(tracker.list_failed())) == 1
    tracker.clear_history("q")
    q = tracker.get_history("q")
    assert q is not None and q.entries == [] and q.derived_from[0].file_key == "p"
    assert list(tracker.list_failed()) == []
    tracker.clear_history("never-tracked")  # nothing to clear is not an error


def test_list_tracked_files_and_histories_hide_the_index(tracker: LoreTracker) -> None:
    for key in ["raw/b", "raw/a", "clean/a", "~tilde-but-not-reserved"]:
        tracker.run(key, step="s", handler=lambda ctx: 1 / 0)
    assert list(tracker.list_tracked_files()) == ["clean/a", "raw/a", "raw/b", "~tilde-but-not-reserved"]
    assert list(tracker.list_tracked_files(prefix="raw/")) == ["raw/a", "raw/b"]
    assert sorted(h.file_key for h in tracker.list_all_histories(prefix="raw/")) == ["raw/a", "raw/b"]
    assert len(list(tracker.list_failed())) == 4
    assert [f.file_key for f in tracker.list_failed(prefix="raw/")] == ["raw/a", "raw/b"]


def test_list_failed_filters_by_step_and_keeps_slashes_in_steps(tracker: LoreTracker) -> None:
    tracker.run("f1", step="asset/with/slashes", handler=lambda ctx: 1 / 0)
    tracker.run("f2", step="dag.task", handler=lambda ctx: 1 / 0)
    assert [f.file_key for f in tracker.list_failed(step="asset/with/slashes")] == ["f1"]
    assert [f.step for f in tracker.list_failed(step="dag.task")] == ["dag.task"]
    assert all(f.failed_at is not None for f in tracker.list_failed())


def test_success_of_a_later_run_resolves_earlier_failures_of_that_step(tracker: LoreTracker) -> None:
    tracker.run("r", step="s", handler=lambda ctx: 1 / 0)
    tracker.run("r", step="other", handler=lambda ctx: 1 / 0)
    tracker.run("r", step="s", handler=lambda ctx: None)
    assert [f.step for f in tracker.list_failed()] == ["other"]
    assert [e.step for e in tracker.get_failed_steps("r")] == ["other"]


def test_record_writes_finished_entries(tracker: LoreTracker) -> None:
    ok = tracker.record("out/x", step="asset/x", status="success", output={"n": 1}, metadata={"partition": "p1"})
    bad = tracker.record("out/x", step="asset/x", status="failed", error=ValueError("boom"))
    history = tracker.get_history("out/x")
    assert history is not None
    assert [e.status for e in history.entries] == [StepStatus.SUCCESS, StepStatus.FAILED]
    assert history.entry(ok.id).metadata == {"partition": "p1"}  # type: ignore[union-attr]
    assert [f.entry_id for f in tracker.list_failed()] == [bad.id]


def test_orchestrator_info_is_stored(tracker: LoreTracker) -> None:
    tracker.run(
        "o",
        step="dag.task",
        handler=lambda ctx: None,
        orchestrator={"system": "airflow", "runId": "manual__1", "tryNumber": 2, "url": "http://x/ti"},
    )
    history = tracker.get_history("o")
    assert history is not None
    info = history.entries[0].orchestrator
    assert info is not None and info.system == "airflow" and info.run_id == "manual__1" and info.try_number == 2
