"""SQL over all history (issue 12): ``lore snapshot`` writes Parquet, ``lore query`` runs DuckDB over it.

Against the local S3 server and the file store; the commands through the ``lore`` entry point;
a second engine (pyarrow datasets) reads the same files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from lore_core import LoreTracker
from lore_core.models import LineageRef, StepStatus
from lore_core.query import query_snapshot
from lore_core.snapshot import (
    ENTRIES_COLUMNS,
    LINEAGE_COLUMNS,
    MANIFEST_NAME,
    SnapshotError,
    write_snapshot,
)

LORE = str(Path(sys.executable).parent / "lore")
DAY1 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def lore(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The ``lore`` command, as a user runs it (no LORE_* variables but those given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    return subprocess.run(
        [LORE, *args], capture_output=True, text=True, env={**base, **env}, cwd=cwd, timeout=120, check=False
    )


def _fail() -> None:
    raise ValueError("bad row 7")


def populate(tracker: LoreTracker) -> None:
    """Three files in a chain, a failure replayed, and entries on two days."""
    tracker.run("raw/a.csv", step="validate", handler=lambda ctx: {"rows": 2}, produces="clean/a.parquet")
    tracker.run("clean/a.parquet", step="render", handler=lambda ctx: None, produces="png/a.png")
    failed = tracker.run("raw/b.csv", step="validate", handler=lambda ctx: _fail())
    tracker.replay("raw/b.csv", failed.entry_id, handler=lambda ctx: None)
    tracker.record("old/c.csv", "import", started_at=DAY1, completed_at=DAY1 + timedelta(seconds=3))
    tracker.record(
        "old/d.csv",
        "import",
        started_at=DAY2,
        completed_at=DAY2 + timedelta(seconds=1),
        derived_from=[LineageRef(file_key="old/c.csv")],
    )


def all_entries(tracker: LoreTracker) -> set[tuple[str, str, str]]:
    """(file, entry id, status) of every entry of every history, archived ones included."""
    out = set()
    for key in tracker.list_tracked_files():
        doc = tracker.get_history(key, include_archived=True)
        assert doc is not None
        out |= {(key, e.id, e.status.value) for e in doc.entries}
    return out


def snapshot_entries(url: str, **options: Any) -> list[tuple[str, str, str]]:
    rows = query_snapshot(url, "select file_key, entry_id, status from entries order by all", **options).rows
    return [tuple(r) for r in rows]


@pytest.fixture()
def s3_tracker(s3_client: Any, bucket: str) -> LoreTracker:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    populate(tracker)
    return tracker


@pytest.fixture()
def file_tracker(tmp_path: Path) -> LoreTracker:
    tracker = LoreTracker.from_url((tmp_path / "bucket").as_uri())
    populate(tracker)
    return tracker


# --------------------------------------------------------------------------- the commands


@pytest.mark.moto_only
def test_snapshot_and_query_through_the_entry_point(s3_tracker: LoreTracker, s3_endpoint: str, tmp_path: Path) -> None:
    env = {"LORE_STORE": f"s3://{s3_tracker.bucket}/.lore-s3", "LORE_ENDPOINT_URL": s3_endpoint}
    written = lore("snapshot", "--to", "./snap", cwd=tmp_path, **env)
    assert written.returncode == 0, written.stderr
    assert f"s3://{s3_tracker.bucket}/.lore-s3" in written.stdout and "6 histories read" in written.stdout
    assert (tmp_path / "snap" / MANIFEST_NAME).is_file()
    assert (tmp_path / "snap" / "entries" / "date=2026-03-01" / "part-0.parquet").is_file()

    sql = "select step, status, count(*) as n from entries group by all order by step, status"
    as_json = lore("query", "--snapshot", "./snap", "--json", sql, cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"step": "import", "status": "success", "n": 2},
        {"step": "render", "status": "success", "n": 1},
        {"step": "validate", "status": "failed", "n": 1},
        {"step": "validate", "status": "success", "n": 2},
    ]
    as_csv = lore("query", "--csv", sql, cwd=tmp_path, LORE_SNAPSHOT="./snap")  # the default location
    assert as_csv.returncode == 0, as_csv.stderr
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["step", "status", "n"],
        ["import", "success", "2"],
        ["render", "success", "1"],
        ["validate", "failed", "1"],
        ["validate", "success", "2"],
    ]
    table = lore("query", "--snapshot", "./snap", sql, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["step", "status", "n"] and lines[-1] == "(4 rows)"
    assert lines[4].split() == ["validate", "failed", "1"]


@pytest.mark.moto_only
def test_query_values_errors_and_lineage(s3_tracker: LoreTracker, tmp_path: Path) -> None:
    write_snapshot(s3_tracker, str(tmp_path / "snap"))
    rows = lore(
        "query",
        "--snapshot",
        str(tmp_path / "snap"),
        "--json",
        "select file_key, error_name, error_message, replay_of, attempt, started_at, date, produces, output_json"
        " from entries order by file_key, started_at",
        cwd=tmp_path,
    )
    data = json.loads(rows.stdout)
    by_file = {(r["file_key"], r["error_name"]): r for r in data}
    failure = by_file[("raw/b.csv", "ValueError")]
    assert failure["error_message"] == "bad row 7" and failure["attempt"] == 1
    replay = by_file[("raw/b.csv", None)]
    assert replay["replay_of"] is not None and replay["attempt"] == 2
    assert by_file[("raw/a.csv", None)]["produces"] == ["clean/a.parquet"]
    assert json.loads(by_file[("raw/a.csv", None)]["output_json"]) == {"rows": 2}
    assert by_file[("old/c.csv", None)]["started_at"] == "2026-03-01T12:00:00.000Z"
    assert by_file[("old/c.csv", None)]["date"] == "2026-03-01"

    edges = query_snapshot(
        str(tmp_path / "snap"),
        "select file_key, parent_file_key, entry_id is not null as entry_level from lineage order by all",
    ).rows
    assert edges == [
        ("clean/a.parquet", "raw/a.csv", False),
        ("old/d.csv", "old/c.csv", False),
        ("old/d.csv", "old/c.csv", True),  # the link the entry recorded, and the file's
        ("png/a.png", "clean/a.parquet", False),
    ]


def test_bad_sql_is_one_line_exit_1(file_tracker: LoreTracker, tmp_path: Path) -> None:
    write_snapshot(file_tracker, str(tmp_path / "snap"))
    for sql in ("selec step from entries", "select nope from entries", "select * from missing_table"):
        done = lore("query", "--snapshot", str(tmp_path / "snap"), sql, cwd=tmp_path)
        assert done.returncode == 1, done
        assert done.stdout == ""
        assert done.stderr.startswith("lore: error: query failed: ") and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
    missing = lore("query", "--snapshot", str(tmp_path / "nowhere"), "select 1", cwd=tmp_path)
    assert missing.returncode == 1 and "no snapshot at" in missing.stderr and "Traceback" not in missing.stderr
    usage = lore("query", "select 1", cwd=tmp_path)
    assert usage.returncode == 2 and "--snapshot" in usage.stderr
    no_store = lore("snapshot", "--to", "x", cwd=tmp_path)
    assert no_store.returncode == 2 and "LORE_STORE" in no_store.stderr


# --------------------------------------------------------------------------- what is written


def test_archived_entries_are_included(tmp_path: Path) -> None:
    tracker = LoreTracker.from_url((tmp_path / "bucket").as_uri(), max_entries=5)
    for i in range(23):
        tracker.run("busy.csv", step=f"s{i % 3}", handler=lambda ctx: None)
    doc = tracker.get_history("busy.csv")
    assert doc is not None and doc.archived and len(doc.entries) <= 5  # most are in archive segments
    write_snapshot(tracker, str(tmp_path / "snap"))
    rows = query_snapshot(
        str(tmp_path / "snap"), "select archived, count(*), count(distinct entry_id) from entries group by all"
    ).rows
    counts = {archived: (n, distinct) for archived, n, distinct in rows}
    assert counts[True][0] == 23 - len(doc.entries) and counts[False][0] == len(doc.entries)
    assert sum(n for n, _ in counts.values()) == sum(d for _, d in counts.values()) == 23

    # More steps archive more: the new segment's entries come in, the moved ones are not doubled.
    for _ in range(10):
        tracker.run("busy.csv", step="late", handler=lambda ctx: None)
    reader = LoreTracker.from_url((tmp_path / "bucket").as_uri())
    write_snapshot(reader, str(tmp_path / "snap"))
    assert snapshot_entries(str(tmp_path / "snap")) == sorted(all_entries(reader))
    assert len(snapshot_entries(str(tmp_path / "snap"))) == 33


def test_refuses_to_write_inside_the_history_prefix(tmp_path: Path, s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker.from_url((tmp_path / "bucket").as_uri())
    tracker.run("a", step="s", handler=lambda ctx: None)
    with pytest.raises(SnapshotError, match="inside the history prefix"):
        write_snapshot(tracker, str(tmp_path / "bucket" / ".lore-s3" / "snap"))
    s3 = LoreTracker(bucket=bucket, s3_client=s3_client)
    s3.run("a", step="s", handler=lambda ctx: None)
    with pytest.raises(SnapshotError, match="inside the history prefix"):
        write_snapshot(s3, f"s3://{bucket}/.lore-s3/snap")
    assert not any(
        o["Key"].startswith(".lore-s3/snap") for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    )


def test_a_snapshot_of_another_store_is_not_overwritten(tmp_path: Path) -> None:
    one = LoreTracker.from_url((tmp_path / "one").as_uri())
    one.run("a", step="s", handler=lambda ctx: None)
    two = LoreTracker.from_url((tmp_path / "two").as_uri())
    two.run("b", step="s", handler=lambda ctx: None)
    write_snapshot(one, str(tmp_path / "snap"))
    with pytest.raises(SnapshotError, match="holds a snapshot of"):
        write_snapshot(two, str(tmp_path / "snap"))
    assert snapshot_entries(str(tmp_path / "snap"))[0][0] == "a"


def test_empty_store_gives_empty_tables_with_their_columns(tmp_path: Path) -> None:
    tracker = LoreTracker.from_url((tmp_path / "bucket").as_uri())
    result = write_snapshot(tracker, str(tmp_path / "snap"))
    assert result.files == 0 and result.entries == 0
    for table, columns in (("entries", ENTRIES_COLUMNS), ("lineage", LINEAGE_COLUMNS)):
        described = query_snapshot(str(tmp_path / "snap"), f"select * from {table}")
        assert described.rows == [] and described.columns == [c for c, _ in columns] + ["date"]


# --------------------------------------------------------------------------- incremental


def _count(tracker: LoreTracker) -> dict[str, int]:
    counts = {k: v for k, v in tracker.store.stats.snapshot().items() if v}
    tracker.store.stats.reset()
    return counts


@pytest.mark.moto_only
def test_second_snapshot_reads_only_the_changed_history(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    writer = LoreTracker(bucket=bucket, s3_client=s3_client)
    for i in range(12):
        writer.record(f"files/{i:02d}.csv", "ingest", started_at=DAY1 + timedelta(minutes=i))
    writer.record("files/05.csv", "ingest", status=StepStatus.FAILED, error=ValueError("x"), started_at=DAY2)
    snap = str(tmp_path / "snap")

    reader = LoreTracker(bucket=bucket, s3_client=s3_client)  # nothing cached
    first = write_snapshot(reader, snap)
    assert first.read == 12 and _count(reader)["get"] == 12

    unchanged = write_snapshot(reader, snap)
    assert (unchanged.read, unchanged.partitions_written) == (0, 0)
    assert set(_count(reader)) == {"list"}  # a LIST and nothing else

    day1 = (tmp_path / "snap" / "entries" / "date=2026-03-01" / "part-0.parquet").read_bytes()
    writer.record("files/07.csv", "render", started_at=DAY2 + timedelta(hours=1))
    second = write_snapshot(reader, snap)
    counts = _count(reader)
    assert counts.get("get") == 1, counts  # exactly one history read: the changed one
    assert set(counts) == {"list", "get"}  # nothing written to the histories' bucket
    assert (second.read, second.changed, second.unchanged) == (1, 1, 11)
    # Only the day the change landed on was rewritten; the other day's file is untouched.
    assert second.partitions_written == 1
    assert (tmp_path / "snap" / "entries" / "date=2026-03-01" / "part-0.parquet").read_bytes() == day1
    # Rows replaced, not duplicated.
    assert snapshot_entries(snap) == sorted(all_entries(reader))
    assert len(snapshot_entries(snap)) == 14


@pytest.mark.moto_only
def test_changed_rows_replaced_and_deleted_histories_removed(s3_client: Any, bucket: str, tmp_path: Path) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    populate(tracker)
    snap = str(tmp_path / "snap")
    write_snapshot(tracker, snap)
    before = snapshot_entries(snap)

    # A running entry finishes: the same row changes (status), it is not added again.
    entry_id = tracker.start("raw/a.csv", "slow")
    write_snapshot(tracker, snap)
    assert ("raw/a.csv", entry_id, "running") in snapshot_entries(snap)
    tracker.succeed("raw/a.csv", entry_id)
    write_snapshot(tracker, snap)
    rows = snapshot_entries(snap)
    assert ("raw/a.csv", entry_id, "success") in rows and ("raw/a.csv", entry_id, "running") not in rows
    assert len(rows) == len(before) + 1

    # A history deleted from the bucket: every row of it goes, entries and lineage.
    s3_client.delete_object(Bucket=bucket, Key=".lore-s3/old/d.csv.json")
    removed = write_snapshot(tracker, snap)
    assert removed.removed == 1 and removed.read == 0
    assert not [r for r in snapshot_entries(snap) if r[0] == "old/d.csv"]
    assert query_snapshot(snap, "select count(*) from lineage where file_key = 'old/d.csv'").rows == [(0,)]
    assert not (tmp_path / "snap" / "entries" / "date=2026-03-02").exists()  # its only day: gone

    # A cleared history keeps its lineage links and loses its entries.
    tracker.clear_history("clean/a.parquet")
    write_snapshot(tracker, snap)
    assert not [r for r in snapshot_entries(snap) if r[0] == "clean/a.parquet"]
    parents = query_snapshot(snap, "select parent_file_key from lineage where file_key = 'clean/a.parquet'").rows
    assert parents == [("raw/a.csv",)]
    assert snapshot_entries(snap) == sorted(all_entries(tracker))


def test_file_store_incremental_and_full_rebuild(file_tracker: LoreTracker, tmp_path: Path) -> None:
    snap = str(tmp_path / "snap")
    write_snapshot(file_tracker, snap)
    file_tracker.store.stats.reset()
    assert write_snapshot(file_tracker, snap).read == 0
    assert "get" not in file_tracker.store.stats.snapshot()  # the listing's change token was enough
    file_tracker.run("raw/a.csv", step="again", handler=lambda ctx: None)
    assert write_snapshot(file_tracker, snap).read == 1
    full = write_snapshot(file_tracker, snap, full=True)
    assert full.read == 6 and snapshot_entries(snap) == sorted(all_entries(file_tracker))


def test_a_snapshot_cut_short_is_repaired_by_the_next(
    file_tracker: LoreTracker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lore_core import snapshot

    snap = str(tmp_path / "snap")
    write_snapshot(file_tracker, snap)
    # old/c.csv gains a row on a day the manifest does not know; old/d.csv one on its own day.
    file_tracker.record("old/c.csv", "fix", started_at=DAY2 + timedelta(days=1))
    file_tracker.record("old/d.csv", "fix", started_at=DAY2 + timedelta(hours=1))
    real_write = snapshot.LocalLocation.write
    day3 = tmp_path / "snap" / "entries" / "date=2026-03-03" / "part-0.parquet"

    def crash_on_one_day(self: snapshot.LocalLocation, rel: str, data: bytes) -> None:
        if rel == "entries/date=2026-03-02/part-0.parquet":
            raise snapshot.SnapshotError("disk full (simulated)")
        real_write(self, rel, data)

    monkeypatch.setattr(snapshot.LocalLocation, "write", crash_on_one_day)
    with pytest.raises(snapshot.SnapshotError, match="simulated"):
        write_snapshot(file_tracker, snap)
    monkeypatch.setattr(snapshot.LocalLocation, "write", real_write)
    # old/c.csv's new day was written, the manifest was not: the journal says what to rebuild.
    assert day3.is_file() and (tmp_path / "snap" / "_lore_journal.json").exists()
    # Meanwhile old/c.csv's history is deleted: its rows on the day only the journal knows go too.
    (tmp_path / "bucket" / ".lore-s3" / "old" / "c.csv.json").unlink()
    write_snapshot(file_tracker, snap)
    assert not (tmp_path / "snap" / "_lore_journal.json").exists()
    assert not day3.exists()
    assert snapshot_entries(snap) == sorted(all_entries(file_tracker))


# --------------------------------------------------------------------------- interoperability


def test_pyarrow_datasets_read_the_same_answer_as_duckdb(file_tracker: LoreTracker, tmp_path: Path) -> None:
    """A second engine reads the files as they are (Hive partitioning), with the same result."""
    for i in range(5):
        file_tracker.record(f"more/{i}.csv", "ingest", started_at=DAY1 + timedelta(days=i))
    snap = tmp_path / "snap"
    write_snapshot(file_tracker, str(snap))
    for table in ("entries", "lineage"):
        dataset = ds.dataset(snap / table, format="parquet", partitioning="hive")
        arrow = dataset.to_table()
        assert set(arrow.column_names) == {
            c for c, _ in dict(entries=ENTRIES_COLUMNS, lineage=LINEAGE_COLUMNS)[table]
        } | {"date"}
        by_pyarrow = Counter((row["date"], row["file_key"]) for row in arrow.select(["date", "file_key"]).to_pylist())
        duck = query_snapshot(
            str(snap), f"select strftime(date, '%Y-%m-%d'), file_key, count(*) from {table} group by all"
        )
        assert by_pyarrow == Counter({(d, k): n for d, k, n in duck.rows})
    statuses = (
        ds.dataset(snap / "entries", partitioning="hive")
        .to_table(columns=["step", "status"])
        .group_by(["step", "status"])
        .aggregate([([], "count_all")])
    )
    duck = query_snapshot(str(snap), "select step, status, count(*) from entries group by all").rows
    assert Counter({(r["step"], r["status"]): r["count_all"] for r in statuses.to_pylist()}) == Counter(
        {(s, st): n for s, st, n in duck}
    )


@pytest.mark.moto_only
def test_s3_snapshot_round_trip(s3_tracker: LoreTracker, s3_client: Any, s3_endpoint: str, tmp_path: Path) -> None:
    url = f"s3://{s3_tracker.bucket}/exports/lore"
    result = write_snapshot(s3_tracker, url)
    assert result.url == url and result.read == 6
    listed = {
        o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_tracker.bucket, Prefix="exports/").get("Contents", [])
    }
    assert f"exports/lore/{MANIFEST_NAME}" in listed
    assert "exports/lore/entries/date=2026-03-01/part-0.parquet" in listed
    assert "exports/lore/lineage/date=2026-03-02/part-0.parquet" in listed
    # Read back through the entry point, from a fresh cache, with no DuckDB extension.
    env = {"LORE_ENDPOINT_URL": s3_endpoint, "LORE_CACHE_DIR": str(tmp_path / "cache")}
    done = lore("query", "--snapshot", url, "--json", "select count(*) as n from entries", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"n": len(all_entries(s3_tracker))}]
    # A change reaches the next query: the cached partition of that day is replaced.
    s3_tracker.record("old/c.csv", "again", started_at=DAY1 + timedelta(hours=1))
    write_snapshot(s3_tracker, url)
    done = lore("query", "--snapshot", url, "--csv", "select count(*) as n from entries", cwd=tmp_path, **env)
    assert done.stdout.splitlines() == ["n", str(len(all_entries(s3_tracker)))]
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*.parquet") if "date=2026-03-01" in str(p))
    assert cached == ["part-g2.parquet"]  # that day's entries, at the new generation only


# --------------------------------------------------------------------------- the extra


def test_lore_core_imports_without_the_sql_extra(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['duckdb'] = None; sys.modules['pyarrow'] = None; "
        "import lore_core, lore_core.snapshot, lore_core.query, lore_core.cli; "
        "from lore_core import LoreTracker; from lore_core.snapshot import write_snapshot, SnapshotError; "
        "t = LoreTracker.from_url('memory://x')\n"
        "try:\n    write_snapshot(t, sys.argv[1])\nexcept SnapshotError as e:\n    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, str(tmp_path / "snap")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'lore-s3[sql]'" in done.stdout
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['duckdb'] = None; from lore_core.cli import main; "
            "sys.exit(main(['query', '--snapshot', sys.argv[1], 'select 1']))",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and "[sql] extra" in cli.stderr and "Traceback" not in cli.stderr
