"""Per-step cost against history length: a step on a file with 10,000 prior entries versus a fresh file.

The live document keeps at most ``max_entries`` (500) entries; older ones move to
immutable archive segments, so a step reads and writes a bounded document however long
the history. Both files live on the same local S3 server with added latency per request;
each step uses a fresh tracker (no cached ETag), the worst case. Figures are printed,
never asserted.

    python benchmarks/bench_growth.py [--prior 10000] [--latency-ms 20] [--samples 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

from lore_core import LoreTracker
from lore_core.keys import history_key
from lore_core.testing import LocalS3Server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()

    with LocalS3Server() as server:
        client = server.client(max_pool_connections=32)
        client.create_bucket(Bucket="growth")
        seeder = LoreTracker(bucket="growth", s3_client=client)
        started = time.perf_counter()
        for i in range(args.prior):
            seeder.record("long/history.csv", step=f"s{i % 7}", input={"i": i}, output={"rows": i})
        seeded_s = time.perf_counter() - started
        live = seeder.get_history("long/history.csv")
        assert live is not None
        size = len(client.get_object(Bucket="growth", Key=history_key(".lore-s3", "long/history.csv"))["Body"].read())
        print(
            f"seeded {args.prior} entries in {seeded_s:.1f} s: live document {len(live.entries)} entries "
            f"({size / 1024:.0f} KiB), {len(live.archived or [])} archive segments"
        )

        server.set_latency(args.latency_ms)
        fresh_ms: list[float] = []
        long_ms: list[float] = []
        for n in range(args.samples):  # interleaved, so drift hits both alike
            for key, sink in ((f"fresh/{n}.csv", fresh_ms), ("long/history.csv", long_ms)):
                tracker = LoreTracker(bucket="growth", s3_client=client)
                t0 = time.perf_counter()
                tracker.run(key, step="measure", handler=lambda ctx: None, input={"n": n})
                sink.append((time.perf_counter() - t0) * 1000)
        fresh, long = statistics.median(fresh_ms), statistics.median(long_ms)
        print(f"step latency, +{args.latency_ms:g} ms per request, median of {args.samples}:")
        print(f"  fresh file                  {fresh:7.1f} ms")
        print(f"  file with {args.prior:>6} entries   {long:7.1f} ms")
        print(f"  ratio                       {long / fresh:7.2f}x")
        full = LoreTracker(bucket="growth", s3_client=client).get_history("long/history.csv", include_archived=True)
        assert full is not None
        print(f"whole history readable with include_archived=True: {len(full.entries)} entries")


if __name__ == "__main__":
    main()
