"""Requests per operation and wall time: Lore against a naive read-modify-write baseline.

Both run on the same local S3 server (moto, one lock per request) with an added
latency per request (default 20 ms) to stand in for a real network. The naive
baseline is what one writes first: unconditional read-modify-write, descendants by
scanning every history, lineage walked one level at a time. Figures are printed,
never asserted.

    python benchmarks/bench_requests.py [--latency-ms 20] [--files 200] [--depth 8]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lore_core import LoreTracker
from lore_core.ids import new_entry_id, utc_now
from lore_core.testing import LocalS3Server

PREFIX = ".lore-s3"


class Naive:
    """The baseline: no conditional writes, no forward links, no ancestry."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def _key(self, file_key: str) -> str:
        return f"{PREFIX}/{file_key}.json"

    def _get(self, file_key: str) -> dict[str, Any] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(file_key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return dict(json.loads(body))

    def _put(self, file_key: str, doc: dict[str, Any]) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(file_key), Body=json.dumps(doc).encode())

    def _modify(self, file_key: str, change: Callable[[dict[str, Any]], None]) -> None:
        now = utc_now().isoformat()
        doc = self._get(file_key) or {
            "fileKey": file_key,
            "bucket": self.bucket,
            "derivedFrom": [],
            "entries": [],
            "createdAt": now,
            "updatedAt": now,
        }
        change(doc)
        self._put(file_key, doc)

    def run(self, file_key: str, step: str, produces: list[str] = ()) -> None:  # type: ignore[assignment]
        entry_id = new_entry_id()
        self._modify(file_key, lambda d: d["entries"].append({"id": entry_id, "step": step, "status": "running"}))
        self._modify(file_key, lambda d: d["entries"][-1].update(status="success"))
        for key in produces:
            self._modify(key, lambda d: d["derivedFrom"].append({"fileKey": file_key, "entryId": entry_id}))

    def descendants(self, file_key: str) -> list[str]:
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PREFIX + "/"):
            for item in page.get("Contents", []):
                key = item["Key"][len(PREFIX) + 1 : -len(".json")]
                doc = self._get(key)
                if doc and any(r["fileKey"] == file_key for r in doc.get("derivedFrom", [])):
                    out.append(key)
        return out

    def lineage(self, file_key: str) -> list[str]:
        seen, frontier = [], [file_key]
        while frontier:
            key = frontier.pop()
            doc = self._get(key)
            seen.append(key)
            frontier.extend(r["fileKey"] for r in (doc or {}).get("derivedFrom", []))
        return seen


def measure(server: LocalS3Server, fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float]:
    """(requests per call, milliseconds per call), as the server saw them."""
    before, start = server.requests, time.perf_counter()
    for _ in range(repeat):
        fn()
    elapsed = (time.perf_counter() - start) * 1000 / repeat
    return (server.requests - before) / repeat, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--files", type=int, default=200, help="histories in the bucket for the descendants scan")
    parser.add_argument("--depth", type=int, default=8, help="depth of the lineage chain")
    parser.add_argument("--writers", type=int, default=8, help="threads writing one file in the contention run")
    args = parser.parse_args()

    with LocalS3Server() as server:
        client = server.client(max_pool_connections=64)
        lore_bucket, naive_bucket = "bench-lore", "bench-naive"
        for name in (lore_bucket, naive_bucket):
            client.create_bucket(Bucket=name)
        lore = LoreTracker(bucket=lore_bucket, s3_client=client)
        naive = Naive(client, naive_bucket)

        # Seed both buckets alike, without added latency: a chain for lineage, many files for descendants.
        for i in range(args.depth):
            lore.run(f"chain/{i}", step="s", handler=lambda ctx: None, produces=f"chain/{i + 1}")
            naive.run(f"chain/{i}", "s", [f"chain/{i + 1}"])
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: lore.run(f"many/{i}", step="s", handler=lambda ctx: None), range(args.files)))
            list(pool.map(lambda i: naive.run(f"many/{i}", "s"), range(args.files)))
        lore.run("parent", step="s", handler=lambda ctx: None, produces=["child/1", "child/2"])
        naive.run("parent", "s", ["child/1", "child/2"])
        server.set_latency(args.latency_ms)

        rows: list[tuple[str, tuple[float, float], tuple[float, float]]] = []
        counter = iter(range(10**6))

        def fresh() -> LoreTracker:  # a new tracker per call: no cached ETag, the worst case
            return LoreTracker(bucket=lore_bucket, s3_client=client)

        rows.append(
            (
                "tracked step (existing file)",
                measure(server, lambda: fresh().run("many/0", step="s", handler=lambda ctx: None)),
                measure(server, lambda: naive.run("many/0", "s")),
            )
        )
        rows.append(
            (
                "tracked step producing 3 files",
                measure(
                    server,
                    lambda: (
                        n := next(counter),
                        fresh().run(
                            f"p/{n}", step="s", handler=lambda ctx: None, produces=[f"o/{n}/{j}" for j in range(3)]
                        ),
                    ),
                ),
                measure(
                    server, lambda: (n := next(counter), naive.run(f"p/{n}", "s", [f"o/{n}/{j}" for j in range(3)]))
                ),
            )
        )
        rows.append(
            (
                f"get_lineage (depth {args.depth})",
                measure(server, lambda: fresh().get_lineage(f"chain/{args.depth}")),
                measure(server, lambda: naive.lineage(f"chain/{args.depth}"), repeat=1),
            )
        )
        rows.append(
            (
                f"get_descendants ({args.files + 2 * args.depth + 10} histories)",
                measure(server, lambda: fresh().get_descendants("parent")),
                measure(server, lambda: naive.descendants("parent"), repeat=1),
            )
        )
        rows.append(
            (
                "list_tracked_files (all)",
                measure(server, lambda: list(fresh().list_tracked_files())),
                measure(
                    server,
                    lambda: list(
                        client.get_paginator("list_objects_v2").paginate(Bucket=naive_bucket, Prefix=PREFIX + "/")
                    ),
                ),
            )
        )

        print(f"Lore vs naive read-modify-write, local S3 server, +{args.latency_ms:g} ms per request\n")
        print(f"{'operation':44} {'lore req':>9} {'naive req':>10} {'lore ms':>9} {'naive ms':>10} {'speed-up':>9}")
        for name, (lr, lt), (nr, nt) in rows:
            print(f"{name:44} {lr:9.1f} {nr:10.1f} {lt:9.0f} {nt:10.0f} {nt / lt:8.1f}x")

        # Contention: many writers on one file. Count what survives.
        server.set_latency(args.latency_ms / 4)
        runs = 5

        def contend(write: Callable[[int], None]) -> float:
            barrier = threading.Barrier(args.writers)

            def worker(w: int) -> None:
                barrier.wait()
                for _ in range(runs):
                    write(w)

            start = time.perf_counter()
            with ThreadPoolExecutor(args.writers) as pool:
                list(pool.map(worker, range(args.writers)))
            return time.perf_counter() - start

        lore_s = contend(lambda w: fresh().run("hot", step=f"w{w}", handler=lambda ctx: None) and None)
        naive_s = contend(lambda w: naive.run("hot", f"w{w}"))
        kept_lore = len(lore.get_history("hot").entries)  # type: ignore[union-attr]
        kept_naive = len(naive._get("hot")["entries"])  # type: ignore[index]
        expected = args.writers * runs
        print(f"\n{args.writers} writers x {runs} steps on one file (+{args.latency_ms / 4:g} ms per request):")
        print(f"  lore : {kept_lore}/{expected} entries kept in {lore_s:.2f} s")
        print(f"  naive: {kept_naive}/{expected} entries kept in {naive_s:.2f} s ({expected - kept_naive} lost)")


if __name__ == "__main__":
    main()
