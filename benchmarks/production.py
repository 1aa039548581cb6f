"""A month of a daily pipeline at production shape, on the local S3 server with latency per request.

Simulates ``--days`` days (30) of a 4-step chain over ``--files`` files (200):
``ingest`` (raw → clean), ``transform`` (clean → features), ``score`` (features → out),
``publish`` (out). About 5% of steps fail; at the end of each day two replayers (separate
trackers, as two sensors would be) race over ``list_failed()`` and replay every failure.
A few steps each day run longer than the lease (the heartbeat must keep them alive), and
every week ``clear_history`` empties some files. Prints, never asserts:

- the largest history document,
- requests and wall time of ``get_lineage`` on the deepest file,
- CPU time per step on the first and the last day,
- ``list_failed`` false positives / false negatives against the histories (want 0 / 0),
- handler runs per replayed failure (want exactly 1).

    python benchmarks/production.py [--days 30] [--files 200] [--latency-ms 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lore_core import LoreTracker, StepContext, StepStatus
from lore_core.testing import LocalS3Server

BUCKET = "production"
CHAIN = [
    ("ingest", "raw", "clean"),
    ("transform", "clean", "features"),
    ("score", "features", "out"),
    ("publish", "out", None),
]
LEASE_S = 2.0


class Pipeline:
    def __init__(self, client: Any, files: int, seed: int) -> None:
        options: dict[str, Any] = {"lease_seconds": LEASE_S, "first_heartbeat_seconds": 0.5}
        self.tracker = LoreTracker(bucket=BUCKET, s3_client=client, **options)
        # Two replayers with trackers of their own: nothing shared in memory, as two sensors.
        self.replayers = [LoreTracker(bucket=BUCKET, s3_client=client, **options) for _ in range(2)]
        self.files = [f"{i:04d}.csv" for i in range(files)]
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.replay_runs: Counter[str] = Counter()  # original failed entry id -> handler runs
        self.cpu: dict[int, list[float]] = {}

    def handler(self, fail: bool, slow: bool) -> Any:
        def run(ctx: StepContext) -> dict[str, Any]:
            if slow:
                time.sleep(LEASE_S * 1.5)  # longer than the lease: only the heartbeat keeps it alive
            if fail:
                raise RuntimeError(f"simulated failure of {ctx.step} on {ctx.file_key}")
            return {"rows": len(ctx.file_key)}

        return run

    def replay_handler(self, ctx: StepContext) -> dict[str, Any]:
        assert ctx.replay_of is not None
        with self.lock:
            self.replay_runs[ctx.replay_of] += 1
        return {"replayed": True}

    def process(self, day: int, name: str, slow_files: set[str]) -> None:
        for step, src, dst in CHAIN:
            with self.lock:
                fail = self.rng.random() < 0.05
            key = f"{src}/{name}"
            produces = [f"{dst}/{name}"] if dst else None
            started = time.thread_time()
            result = self.tracker.run(
                key,
                step=step,
                handler=self.handler(fail, slow=name in slow_files and step == "transform"),
                input={"day": day},
                produces=produces,
            )
            with self.lock:
                self.cpu.setdefault(day, []).append(time.thread_time() - started)
            if result.status is not StepStatus.SUCCESS:
                return  # the chain stops for this file today; the replay picks it up

    def replay_all(self) -> int:
        failures = list(self.replayers[0].list_failed())

        def replayer(tracker: LoreTracker, order: list[Any]) -> None:
            for failed in order:
                tracker.replay(failed.file_key, failed.entry_id, handler=self.replay_handler)

        shuffled = failures[:]
        random.Random(len(failures)).shuffle(shuffled)
        threads = [
            threading.Thread(target=replayer, args=(self.replayers[0], failures)),
            threading.Thread(target=replayer, args=(self.replayers[1], shuffled)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return len(failures)


def truth(tracker: LoreTracker) -> set[tuple[str, str]]:
    out = set()
    for doc in tracker.list_all_histories():
        for entry in doc.failed_entries():
            out.add((doc.file_key, entry.id))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with LocalS3Server(latency_ms=args.latency_ms) as server:
        client = server.client(max_pool_connections=64)
        client.create_bucket(Bucket=BUCKET)
        pipe = Pipeline(client, args.files, args.seed)
        fp = fn = checks = 0
        replayed = 0
        began = time.perf_counter()
        for day in range(1, args.days + 1):
            slow = set(pipe.rng.sample(pipe.files, 3))
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                list(pool.map(lambda name, day=day, slow=slow: pipe.process(day, name, slow), pipe.files))
            replayed += pipe.replay_all()
            if day % 7 == 0:
                for name in pipe.rng.sample(pipe.files, max(1, args.files // 20)):
                    pipe.tracker.clear_history(f"raw/{name}")
            if day % 7 == 0 or day in (1, args.days):
                listed = {(f.file_key, f.entry_id) for f in pipe.tracker.list_failed()}
                expected = truth(pipe.tracker)
                fp += len(listed - expected)
                fn += len(expected - listed)
                checks += 1
            print(
                f"day {day:2d}: done in {time.perf_counter() - began:6.1f} s, {replayed} failures replayed so far",
                flush=True,
            )

        largest = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=".lore-s3/"):
            for obj in page.get("Contents", []):
                if "/~lore/" not in obj["Key"]:
                    largest = max(largest, obj["Size"])

        deepest = f"out/{pipe.files[0]}"
        reader = LoreTracker(bucket=BUCKET, s3_client=client, cache_size=0)
        reader.store.stats.reset()
        t0 = time.perf_counter()
        node = reader.get_lineage(deepest)
        lineage_ms = (time.perf_counter() - t0) * 1000
        gets = reader.store.stats.snapshot().get("get", 0)
        nodes = len(node.walk()) if node else 0

        runs = Counter(pipe.replay_runs.values())
        day1 = statistics.mean(pipe.cpu[1]) * 1000
        day2 = statistics.mean(pipe.cpu[min(2, args.days)]) * 1000
        last = statistics.mean(pipe.cpu[args.days]) * 1000
        print()
        print(
            f"{args.days} days x {args.files} files x {len(CHAIN)} steps, +{args.latency_ms:g} ms per request, "
            f"{args.workers} workers, in {time.perf_counter() - began:.0f} s ({server.requests} requests)"
        )
        print(f"  largest history document:          {largest / 1024:.1f} KiB")
        print(f"  get_lineage({deepest}):     {nodes} nodes, {gets} GETs in 2 round trips, {lineage_ms:.0f} ms")
        print(
            f"  CPU per step, day 1 (new files) / day 2 / day {args.days}: {day1:.2f} / {day2:.2f} / {last:.2f} ms "
            f"(day {args.days} vs day 2: {last / day2:.2f}x)"
        )
        print(f"  list_failed vs histories ({checks} checks): {fp} false positives / {fn} false negatives")
        print(
            f"  failures replayed by 2 racing replayers: {len(pipe.replay_runs)}; handler runs per failure: "
            f"{dict(sorted(runs.items()))} (want {{1: n}})"
        )


if __name__ == "__main__":
    main()
