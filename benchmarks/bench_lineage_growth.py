"""Lineage that does not grow with re-runs: a 4-asset chain re-materialized 1,000 times.

Each run records ``a`` and then ``b``, ``c``, ``d``, each derived from the one before
(as the Dagster IO manager does for a chain of assets). Documents keep one lineage ref
per related file, so their size, the cost of ``get_lineage`` and a step's CPU time stay
flat however often the chain runs. Prints, never asserts: the largest document, the
requests and nodes of ``get_lineage("d")``, and CPU per step in the first and the last
50 runs.

    python benchmarks/bench_lineage_growth.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from _latency import BenchS3

from lore_core import LoreTracker
from lore_core.keys import history_key

CHAIN = ["assets/a", "assets/b", "assets/c", "assets/d"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()

    with BenchS3() as server:  # the server's CPU in its own process: only Lore's is measured
        client = server.client(max_pool_connections=32)
        client.create_bucket(Bucket="lineage")
        tracker = LoreTracker(bucket="lineage", s3_client=client)
        cpu: list[float] = []
        began = time.perf_counter()
        for run in range(args.runs):
            started = time.process_time()  # every thread: links are written in threads of their own
            tracker.record(CHAIN[0], step="a", input={"run": run})
            for parent, child in itertools.pairwise(CHAIN):
                tracker.record(child, step=child.rsplit("/", 1)[1], input={"run": run}, derived_from=[parent])
            cpu.append((time.process_time() - started) / len(CHAIN))
        elapsed = time.perf_counter() - began

        sizes = {
            key: len(client.get_object(Bucket="lineage", Key=history_key(".lore-s3", key))["Body"].read())
            for key in CHAIN
        }
        reader = LoreTracker(bucket="lineage", s3_client=client, cache_size=0)
        reader.store.stats.reset()
        node = reader.get_lineage(CHAIN[-1])
        gets = reader.store.stats.snapshot().get("get", 0)
        nodes = len(node.walk()) if node is not None else 0
        doc = reader.get_history(CHAIN[-1])
        assert doc is not None

        first = statistics.mean(cpu[: args.window]) * 1000
        last = statistics.mean(cpu[-args.window :]) * 1000
        half = len(cpu) // 2
        middle = statistics.mean(cpu[half - args.window : half]) * 1000
        print(f"{args.runs} re-materializations of a {len(CHAIN)}-asset chain in {elapsed:.0f} s")
        detail = ", ".join(f"{key.split('/')[1]}={size / 1024:.1f}" for key, size in sizes.items())
        print(f"  largest document:           {max(sizes.values()) / 1024:.1f} KiB ({detail})")
        print(
            f"  refs in d: derivedFrom {len(doc.derived_from)}, ancestry {len(doc.ancestry or [])}, "
            f"live entries {len(doc.entries)}, archive segments {len(doc.archived or [])}"
        )
        print(f"  get_lineage('{CHAIN[-1]}'):  {nodes} nodes, {gets} GETs (2 round trips)")
        print(f"  CPU per step, first / last {args.window} runs: {first:.2f} ms / {last:.2f} ms ({last / first:.2f}x)")
        # The live document grows until its size cap, then stays: flat from there on.
        print(
            f"  CPU per step, {args.window} runs before run {half} / last {args.window}: "
            f"{middle:.2f} ms / {last:.2f} ms ({last / middle:.2f}x)"
        )


if __name__ == "__main__":
    main()
