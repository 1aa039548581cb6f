"""Soak under faults: many processes run steps on a few shared files through a proxy that
injects 503s, 500s, dropped connections (before and after the request lands), answers that
come too late, and 412/409 on conditional writes. Afterwards every entry must be present
exactly once. Prints the figures; asserts nothing.

    python benchmarks/soak.py [--processes 8] [--steps 200] [--files 4] [--fault-rate 0.2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections import Counter

from lore_core import LoreError, LoreTracker, make_s3_client
from lore_core.testing import Fault, FaultProxy, LocalS3Server


def faults(rate: float) -> list[Fault]:
    """``rate`` split over the kinds of fault (conditional-write answers only hit conditional PUTs)."""
    share = {"503": 0.25, "500": 0.15, "drop": 0.15, "drop_after": 0.15, "delay": 0.05, "412": 0.15, "409": 0.10}
    return [Fault(kind, rate * part, delay_s=1.3 if kind == "delay" else 0.0) for kind, part in share.items()]


def worker(endpoint: str, bucket: str, files: list[str], worker_id: int, steps: int) -> tuple[list[str], int]:
    client = make_s3_client(endpoint, "us-east-1", read_timeout=1.0, connect_timeout=1.0)
    tracker = LoreTracker(bucket=bucket, s3_client=client)
    ids, errors = [], 0
    for i in range(steps):
        try:
            result = tracker.run(
                files[(worker_id + i) % len(files)],
                step=f"w{worker_id}",
                handler=lambda ctx: ctx.input,
                input={"worker": worker_id, "step": i},
            )
            ids.append(result.entry_id)
        except LoreError:
            errors += 1
    return ids, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    args = parser.parse_args()
    files = [f"shared/file-{n}.csv" for n in range(args.files)]

    with LocalS3Server() as server, FaultProxy(server.endpoint_url, faults(args.fault_rate), seed=1) as proxy:
        server.client().create_bucket(Bucket="soak")
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.starmap(
                worker, [(proxy.endpoint_url, "soak", files, w, args.steps) for w in range(args.processes)]
            )
        elapsed = time.perf_counter() - started
        expected = [i for ids, _ in results for i in ids]
        errors = sum(e for _, e in results)

        reader = LoreTracker(bucket="soak", s3_client=server.client())
        found = [e for key in files for e in reader.get_history(key, include_archived=True).entries]  # type: ignore[union-attr]
        by_id = Counter(e.id for e in found)
        by_step = Counter((e.input["worker"], e.input["step"]) for e in found)
        missing = set(expected) - set(by_id)
        unexpected = set(by_id) - set(expected)

    total = args.processes * args.steps
    print(
        f"soak: {args.processes} processes x {args.steps} steps on {args.files} shared files, "
        f"{args.fault_rate:.0%} of requests faulted, in {elapsed:.1f} s"
    )
    print(f"  requests through the proxy: {proxy.requests}")
    print(
        f"  faults injected:            {sum(proxy.injected.values())} "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(proxy.injected.items()))})"
    )
    print(f"  steps run:                  {total} ({errors} raised a LoreError)")
    print(f"  entries expected / found:   {len(expected)} / {len(found)}")
    print(
        f"  missing: {len(missing)}  unexpected: {len(unexpected)}  "
        f"duplicate ids: {sum(c - 1 for c in by_id.values())}  "
        f"steps recorded twice: {sum(c - 1 for c in by_step.values() if c > 1)}"
    )
    print(f"  not finished as success:    {sum(1 for e in found if e.status.value != 'success')}")


if __name__ == "__main__":
    main()
