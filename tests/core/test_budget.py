"""Request budget: counted requests per operation (figures, not timings)."""

from __future__ import annotations

import json
from typing import Any

from lore_core import LoreTracker
from lore_core.keys import failure_index_key


def _count(tracker: LoreTracker) -> dict[str, int]:
    snapshot = tracker.store.stats.snapshot()
    tracker.store.stats.reset()
    return {k: v for k, v in snapshot.items() if v}


def test_tracked_step_costs_one_read_two_writes_plus_one_per_product(s3_client: Any, bucket: str) -> None:
    LoreTracker(bucket=bucket, s3_client=s3_client).run("seed", step="s", handler=lambda ctx: None)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)  # fresh: nothing cached
    tracker.run("seed", step="s2", handler=lambda ctx: None)
    assert _count(tracker) == {"get": 1, "put": 2}
    tracker.run("new-file", step="s", handler=lambda ctx: None, produces=["o1", "o2", "o3"])
    assert _count(tracker) == {"get": 1, "put": 2 + 3}
    # The tracker remembers the ETag it wrote: the next step on the file needs no read.
    tracker.run("new-file", step="again", handler=lambda ctx: None)
    assert _count(tracker) == {"put": 2}


def test_lineage_reads_the_file_then_all_ancestry_descendants_one_read(s3_client: Any, bucket: str) -> None:
    writer = LoreTracker(bucket=bucket, s3_client=s3_client)
    for depth in range(6):
        writer.run(f"level{depth}", step="s", handler=lambda ctx: None, produces=f"level{depth + 1}")
    reader = LoreTracker(bucket=bucket, s3_client=s3_client)
    node = reader.get_lineage("level6")
    assert node is not None and len(node.walk()) == 7
    # 1 read of the file, then 6 ancestors fetched together from its ancestry.
    assert _count(reader) == {"get": 7}
    assert reader.get_descendants("level0") == ["level1"]
    assert _count(reader) == {"get": 1}


def test_listing_pages_of_one_thousand(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    stub = json.dumps(
        {
            "fileKey": "x",
            "bucket": bucket,
            "entries": [],
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
        }
    ).encode()
    for i in range(1500):
        s3_client.put_object(Bucket=bucket, Key=f".lore-s3/files/{i:05d}.csv.json", Body=stub)
    for i in range(1100):
        s3_client.put_object(
            Bucket=bucket, Key=failure_index_key(".lore-s3", f"files/{i:05d}.csv", f"E{i:05d}", "step/a"), Body=b"{}"
        )
    _count(tracker)

    files = list(tracker.list_tracked_files())
    assert len(files) == 1500 and files[0] == "files/00000.csv" and files[-1] == "files/01499.csv"
    # Two pages of histories; the index is skipped with one listing that comes back empty.
    assert _count(tracker) == {"list": 3}

    # The raw index: one LIST per 1,000 objects.
    failed = list(tracker.list_failed(step="step/a", verify=False))
    assert len(failed) == 1100 and failed[0].entry_id == "E00000"
    assert _count(tracker) == {"list": 2}
    # Checked against the histories (issue 8): these index objects name entries that no
    # history holds, so none is reported; one read per file named, in parallel.
    assert list(tracker.list_failed(step="step/a")) == []
    assert _count(tracker) == {"list": 2, "get": 1100}
