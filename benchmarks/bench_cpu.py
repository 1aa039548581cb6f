"""Client CPU per tracked step: a fresh file against a file with a long history, and where it goes.

Runs ``tracker.run()`` on the local S3 server (moto over HTTP on 127.0.0.1, in its own process) for a new file
and for a file whose live document holds 400 entries, measures process CPU per step
(every thread: the running write overlaps the handler in a thread of its own), prints the
ratio, then profiles steps on the long history and prints the top costs by own time.

    python benchmarks/bench_cpu.py [--steps 60] [--entries 400] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _latency import BenchS3

from lore_core import LoreTracker


def cpu_per_step(tracker: LoreTracker, key: str, steps: int) -> list[float]:
    out = []
    for n in range(steps):
        start = time.process_time()
        tracker.run(key, step=f"s{n % 5}", handler=lambda ctx: {"rows": 3}, input={"n": n, "source": "raw/x.csv"})
        out.append((time.process_time() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--entries", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="fewer steps and a shorter history (smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.entries = 15, 100

    with BenchS3() as server:  # the S3 server's CPU is in its own process, not measured
        client = server.client()
        client.create_bucket(Bucket="bench")
        # Live documents big enough to hold the whole history (no archiving during the run).
        seed = LoreTracker(
            bucket="bench", s3_client=client, max_entries=args.entries + args.steps + 50, max_live_bytes=10**8
        )
        for n in range(args.entries):
            seed.record("long.csv", step=f"s{n % 5}", status="success", input={"n": n}, output={"rows": n})
        tracker = LoreTracker(
            bucket="bench", s3_client=client, max_entries=args.entries + args.steps + 50, max_live_bytes=10**8
        )
        tracker.run("warm.csv", step="warm", handler=lambda ctx: None)  # the store's self-check, once
        fresh = [statistics.median(cpu_per_step(tracker, f"fresh/{n}.csv", 1)) for n in range(args.steps)]
        long = cpu_per_step(tracker, "long.csv", args.steps)
        doc = tracker.get_history("long.csv")
        size = len(doc.entries) if doc is not None else 0
        print(f"client CPU per tracked step (run(), local S3 server, {args.steps} steps each, all threads)")
        print(f"  fresh file:                      {statistics.median(fresh):6.2f} ms (median)")
        print(f"  file with {size:4d} live entries:   {statistics.median(long):6.2f} ms (median)")
        print(f"  ratio:                           {statistics.median(long) / statistics.median(fresh):6.2f}x")

        profile = cProfile.Profile(time.process_time)  # CPU, not waiting on the network
        profile.enable()
        cpu_per_step(tracker, "long.csv", args.steps)
        profile.disable()
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats("tottime").print_stats(12)
        print(f"\ntop CPU costs by own time, {args.steps} steps on the long history (main thread):")
        lines = text.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
        for line in lines[start : start + 13]:
            print("  " + line.replace(str(Path(__file__).resolve().parent.parent) + "/", ""))


if __name__ == "__main__":
    main()
