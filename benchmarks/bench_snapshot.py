"""SQL over all history: snapshot and query times, and what an incremental snapshot costs.

Histories are seeded fast, as documents written straight into a file store (``file://``,
the same format S3 holds: 5 entries per file, every other file derived from the one
before, entries spread over 30 days), then:

- the first snapshot (every history read) and a query or two through DuckDB, for 10k and
  100k entries;
- 1% of the files get a new entry through the tracker, and the next snapshot's requests
  to the histories are counted (it reads only those files) and timed;
- with ``--s3``, the same incremental run against the local S3 server (moto, on 127.0.0.1)
  for the 10k case, so LIST and GET are real HTTP requests.

Figures are printed, never asserted. ``--quick`` runs the 10k case only.

    python benchmarks/bench_snapshot.py [--quick] [--s3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lore_core import LoreTracker
from lore_core.ids import format_timestamp, stable_entry_id
from lore_core.query import query_snapshot
from lore_core.snapshot import write_snapshot

ENTRIES_PER_FILE = 5
DAYS = 30
START = datetime(2026, 1, 1, tzinfo=UTC)
QUERIES = {
    "count by step and status": "select step, status, count(*) as n from entries group by all",
    "failures per day": "select date, count(*) from entries where status = 'failed' group by all order by date",
    "lineage join (parents' last status)": (
        "select count(*) from lineage l join (select file_key, arg_max(status, started_at) as status "
        "from entries group by file_key) e on e.file_key = l.parent_file_key where l.entry_id is null"
    ),
}


def history(i: int, bucket: str) -> dict[str, Any]:
    key = f"data/{i // 1000:04d}/file-{i:07d}.csv"
    entries = []
    for n in range(ENTRIES_PER_FILE):
        started = START + timedelta(days=(i + n) % DAYS, seconds=i % 86_000, milliseconds=n)
        failed = (i + n) % 23 == 0
        entry: dict[str, Any] = {
            "id": stable_entry_id(started, key, str(n)),
            "step": ("ingest", "validate", "convert", "render", "publish")[n],
            "status": "failed" if failed else "success",
            "startedAt": format_timestamp(started),
            "completedAt": format_timestamp(started + timedelta(milliseconds=250)),
            "durationMs": 250,
            "attempt": 1,
            "output": {"rows": i % 1000},
        }
        if failed:
            entry["error"] = {"name": "ValueError", "message": f"bad row {i % 97}"}
        entries.append(entry)
    doc: dict[str, Any] = {
        "schemaVersion": 1,
        "fileKey": key,
        "bucket": bucket,
        "entries": entries,
        "createdAt": entries[0]["startedAt"],
        "updatedAt": entries[-1]["completedAt"],
    }
    if i % 2 == 1:
        doc["derivedFrom"] = [{"fileKey": f"data/{(i - 1) // 1000:04d}/file-{i - 1:07d}.csv"}]
    return doc


def seed_files(root: Path, files: int) -> None:
    bucket = root.name
    for i in range(files):
        doc = history(i, bucket)
        path = root / ".lore-s3" / f"{doc['fileKey']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")


def seed_s3(client: Any, bucket: str, files: int) -> None:
    def put(i: int) -> None:
        doc = history(i, bucket)
        client.put_object(Bucket=bucket, Key=f".lore-s3/{doc['fileKey']}.json", Body=json.dumps(doc).encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(files)))


def change_one_percent(tracker: LoreTracker, files: int) -> int:
    changed = range(0, files, 100)
    for i in changed:
        tracker.record(f"data/{i // 1000:04d}/file-{i:07d}.csv", "republish", started_at=START + timedelta(days=DAYS))
    return len(changed)


def requests_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {kind.upper()}" for kind, n in sorted(counts.items())) or "none"


def run_file_store(entries: int, work: Path) -> None:
    files = entries // ENTRIES_PER_FILE
    root = work / f"bucket-{entries}"
    started = time.perf_counter()
    seed_files(root, files)
    print(
        f"\n{entries} entries ({files} files x {ENTRIES_PER_FILE}, {DAYS} days), file store, seeded in "
        f"{time.perf_counter() - started:.1f} s"
    )
    tracker = LoreTracker.from_url(root.as_uri())
    snap = str(work / f"snap-{entries}")
    first = write_snapshot(tracker, snap)
    size = sum(p.stat().st_size for p in Path(snap).rglob("*") if p.is_file())
    manifest = (Path(snap) / "_lore_manifest.json.gz").stat().st_size
    print(
        f"  first snapshot:        {first.seconds:6.2f} s  ({first.read} histories, {first.entries} entries, "
        f"{first.lineage} lineage rows, {first.partitions_written} partitions, {size / 1e6:.1f} MB, "
        f"manifest {manifest / 1e3:.0f} kB)"
    )
    for label, sql in QUERIES.items():
        started = time.perf_counter()
        rows = query_snapshot(snap, sql).rows
        print(f"  query: {label + ':':37s} {1000 * (time.perf_counter() - started):7.1f} ms ({len(rows)} rows)")
    again = write_snapshot(tracker, snap)
    print(f"  nothing changed:       {again.seconds:6.2f} s  ({requests_text(again.requests)})")
    changed = change_one_percent(LoreTracker.from_url(root.as_uri()), files)
    tracker.store.stats.reset()
    incremental = write_snapshot(tracker, snap)
    print(
        f"  1% changed ({changed} files): {incremental.seconds:6.2f} s  requests to the histories: "
        f"{requests_text(incremental.requests)}; {incremental.partitions_written} partitions rewritten"
    )


def run_s3(entries: int) -> None:
    from lore_core.testing import LocalS3Server

    files = entries // ENTRIES_PER_FILE
    with LocalS3Server() as server, tempfile.TemporaryDirectory() as tmp:
        client = server.client()
        client.create_bucket(Bucket="bench")
        started = time.perf_counter()
        seed_s3(client, "bench", files)
        print(
            f"\n{entries} entries ({files} files), local S3 server (moto), seeded in "
            f"{time.perf_counter() - started:.1f} s"
        )
        tracker = LoreTracker(bucket="bench", s3_client=client)
        snap = f"{tmp}/snap"
        first = write_snapshot(tracker, snap)
        print(f"  first snapshot:        {first.seconds:6.2f} s  requests: {requests_text(first.requests)}")
        changed = change_one_percent(LoreTracker(bucket="bench", s3_client=client), files)
        incremental = write_snapshot(tracker, snap)
        print(
            f"  1% changed ({changed} files): {incremental.seconds:6.2f} s  requests to the histories: "
            f"{requests_text(incremental.requests)}"
        )
        s3_snap = write_snapshot(tracker, "s3://bench/snapshot", full=True)
        os.environ["LORE_CACHE_DIR"] = f"{tmp}/cache"
        started = time.perf_counter()
        query_snapshot("s3://bench/snapshot", QUERIES["count by step and status"], s3_client=client)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        query_snapshot("s3://bench/snapshot", QUERIES["count by step and status"], s3_client=client)
        print(
            f"  snapshot to s3://:     {s3_snap.seconds:6.2f} s; query from S3: {1000 * cold:.0f} ms cold "
            f"(download to the cache), {1000 * (time.perf_counter() - started):.0f} ms cached"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k entries only")
    parser.add_argument("--s3", action="store_true", help="also run the 10k case against the local S3 server")
    args = parser.parse_args()
    print(
        "SQL over all history: lore snapshot / lore query (load average "
        f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores)"
    )
    work = Path(tempfile.mkdtemp(prefix="lore-bench-snapshot-"))
    try:
        for entries in (10_000,) if args.quick else (10_000, 100_000):
            run_file_store(entries, work)
        if args.s3:
            run_s3(10_000)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
