"""Per-step cost must not grow with history: entries past the cap move to immutable archive
segments; oversized values are stored truncated with a marker."""

from __future__ import annotations

import json
from typing import Any

from lore_core import LoreTracker, StepStatus
from lore_core.values import TRUNCATED_MARK


def test_live_document_is_capped_and_archive_keeps_everything(tracker: LoreTracker) -> None:
    tracker.max_entries = 20
    ids = [
        tracker.run("busy", step=f"s{i % 3}", handler=lambda ctx: ctx.input, input={"i": i}).entry_id for i in range(75)
    ]
    failed = tracker.run("busy", step="never-fixed", handler=lambda ctx: 1 / 0)
    for _ in range(30):
        tracker.run("busy", step="more", handler=lambda ctx: None)

    live = tracker.get_history("busy")
    assert live is not None and len(live.entries) <= 20 and live.archived
    assert failed.entry_id in {e.id for e in live.entries}  # unresolved failures stay live
    full = tracker.get_history("busy", include_archived=True)
    assert full is not None
    assert [e.id for e in full.entries][:75] == ids and len(full.entries) == 106
    assert len({e.id for e in full.entries}) == 106
    assert sum(ref.count for ref in live.archived) + len(live.entries) == 106
    # An archived entry can still be replayed with its original input.
    replayed = tracker.replay("busy", ids[3], handler=lambda ctx: ctx.input)
    assert replayed.status == "success" and replayed.output == {"i": 3}
    assert [f.entry_id for f in tracker.list_failed()] == [failed.entry_id]
    # Archive segments are Lore's own objects: never listed as tracked files.
    assert list(tracker.list_tracked_files()) == ["busy"]
    tracker.clear_history("busy")
    cleared = tracker.get_history("busy", include_archived=True)
    assert cleared is not None and cleared.entries == [] and not cleared.archived


def test_oversized_values_are_truncated_with_marker_and_size(tracker: LoreTracker) -> None:
    tracker.max_value_bytes = 1000
    big = {"rows": ["x" * 50] * 100}
    result = tracker.run("big", step="s", handler=lambda ctx: "y" * 5000, input=big, metadata={"blob": "z" * 2000})
    assert result.status == "success"
    entry = tracker.get_history("big").entries[0]  # type: ignore[union-attr]
    original = len(json.dumps(big, separators=(",", ":")))
    assert entry.input[TRUNCATED_MARK] is True and entry.input["originalBytes"] == original
    assert entry.input["preview"].startswith('{"rows":["xxx')
    assert entry.output[TRUNCATED_MARK] is True and entry.output["originalBytes"] == 5002
    assert entry.metadata is not None and entry.metadata[TRUNCATED_MARK] is True

    def boom(ctx: Any) -> None:
        raise ValueError("m" * 5000)

    failed = tracker.run("big", step="t", handler=boom)
    assert failed.error is not None and len(failed.error.message) < 1100
    assert failed.error.message.endswith("[truncated by lore: 5000 bytes originally]")
    small = tracker.run("big", step="u", handler=lambda ctx: {"fine": True}, input={"small": 1})
    stored = tracker.get_history("big").entry(small.entry_id)  # type: ignore[union-attr]
    assert stored is not None and stored.input == {"small": 1} and stored.status is StepStatus.SUCCESS
