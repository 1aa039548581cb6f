"""Timestamps: validated in compiled code, stored as ISO-8601 UTC with milliseconds, and a
timezone-less value (another tool's, or a caller's naive datetime) taken as UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from lore_core import LoreTracker
from lore_core.keys import history_key


def test_a_document_with_naive_timestamps_is_read_as_utc_and_written_back_in_utc(tmp_path: Path) -> None:
    tracker = LoreTracker.from_url((tmp_path / "b").as_uri())
    tracker.record("a.csv", step="s", status="success")
    path = tmp_path / "b" / history_key(".lore-s3", "a.csv")
    raw = json.loads(path.read_text())
    # Another tool rewrote it without timezones, and with an offset on one value.
    raw["createdAt"] = "2026-11-01T10:00:00"
    raw["entries"][0]["startedAt"] = "2026-11-01T10:00:00.250"
    raw["entries"][0]["completedAt"] = "2026-11-01T12:00:01.000+02:00"
    path.write_text(json.dumps(raw))

    fresh = LoreTracker.from_url((tmp_path / "b").as_uri())
    doc = fresh.get_history("a.csv")
    assert doc is not None
    entry = doc.entries[0]
    assert entry.started_at == datetime(2026, 11, 1, 10, 0, 0, 250000, tzinfo=UTC)
    assert entry.completed_at == datetime(2026, 11, 1, 10, 0, 1, tzinfo=UTC)
    assert doc.created_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

    fresh.record("a.csv", step="t", status="success")
    stored = json.loads(path.read_text())
    assert stored["createdAt"] == "2026-11-01T10:00:00.000Z"
    # An entry nobody changed is written back as it was read; what Lore writes is UTC.
    assert stored["entries"][0]["completedAt"] == "2026-11-01T12:00:01.000+02:00"
    assert stored["entries"][1]["startedAt"].endswith("Z")


def test_naive_and_offset_datetimes_given_to_record_are_stored_as_utc(tmp_path: Path) -> None:
    tracker = LoreTracker.from_url((tmp_path / "b").as_uri())
    naive = datetime(2026, 11, 2, 8, 30, 0)
    offset = datetime(2026, 11, 2, 10, 31, 0, tzinfo=timezone(timedelta(hours=2)))
    entry = tracker.record("a.csv", step="s", status="success", started_at=naive, completed_at=offset)
    assert entry.started_at == naive.replace(tzinfo=UTC)
    assert entry.duration_ms == 60_000
    raw = json.loads((tmp_path / "b" / history_key(".lore-s3", "a.csv")).read_text())
    assert (raw["entries"][0]["startedAt"], raw["entries"][0]["completedAt"]) == (
        "2026-11-02T08:30:00.000Z",
        "2026-11-02T08:31:00.000Z",
    )


def test_a_timestamp_that_is_not_one_is_a_corrupt_history_naming_the_field(tmp_path: Path) -> None:
    from lore_core import CorruptHistoryError

    tracker = LoreTracker.from_url((tmp_path / "b").as_uri())
    tracker.record("a.csv", step="s", status="success")
    path = tmp_path / "b" / history_key(".lore-s3", "a.csv")
    raw = json.loads(path.read_text())
    raw["entries"][0]["startedAt"] = "yesterday"
    path.write_text(json.dumps(raw))
    try:
        LoreTracker.from_url((tmp_path / "b").as_uri()).get_history("a.csv")
    except CorruptHistoryError as exc:
        assert "startedAt" in str(exc)
    else:
        raise AssertionError("a bad timestamp was accepted")
