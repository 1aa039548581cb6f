"""Critical path: wall time a tracked step adds to its handler, in S3 round trips.

For ``tracker.run()`` and ``with tracker.track(...)`` around a handler that sleeps
(default 200 ms), the added wall time is the step's wall time minus the handler's own
(measured inside it), divided by one round trip: the latency added to every request
(+20 ms and +50 ms; loopback shown for Lore's CPU and the local server's own time).
Issue 14's goal: <= 1.3 round trips (only the final write after the handler).

Variants, interleaved round by round, on a file that already has a history:

- ``run()``: one tracker reused across steps (its cached ETag is fresh);
- ``track()``: the same, as a ``with`` block;
- ``run()`` producing one file: one more write for the produced file's history;
- ``run()``, new tracker per step: no cached ETag (a new process, or another writer).

Then the Dagster IO manager: a one-asset materialization with ``LoreS3IOManager`` minus the
same with dagster-aws's ``S3PickleIOManager`` (its client built once per process, as Lore's
is; bench_dagster.py's code), divided by one round trip. Airflow's callbacks and listener
are measured by bench_airflow.py: its "added ms = N RT" column at +latency is the same
figure per task (not re-run here).
The local S3 server (moto) runs in its own process. Figures are printed, never asserted.

    python benchmarks/bench_critical_path.py [--rounds 7] [--latency-ms 20 50] [--handler-ms 200] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from _latency import BenchS3, Counts, machine, median_spread, requests_text, table

BUCKET = "bench-critical-path"


def variants(endpoint: str, handler_ms: float) -> dict[str, Callable[[], float]]:
    """Each variant runs one tracked step and returns the handler's own time in ms."""
    from lore_core import LoreTracker

    client_holder: dict[str, Any] = {}

    def client() -> Any:
        if "client" not in client_holder:
            import boto3

            client_holder["client"] = boto3.client(
                "s3",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
        return client_holder["client"]

    tracker = LoreTracker(bucket=BUCKET, s3_client=client())
    own: list[float] = []

    def handler(ctx: Any = None) -> None:
        start = time.perf_counter()
        time.sleep(handler_ms / 1000)
        own.append((time.perf_counter() - start) * 1000)

    def run() -> float:
        tracker.run("cp/run", step="s", handler=handler)
        return own.pop()

    def track() -> float:
        with tracker.track("cp/track", step="s"):
            handler()
        return own.pop()

    def run_produce() -> float:
        tracker.run("cp/produce", step="s", handler=handler, produces="cp/produced")
        return own.pop()

    def run_new_tracker() -> float:
        LoreTracker(bucket=BUCKET, s3_client=client()).run("cp/fresh", step="s", handler=handler)
        return own.pop()

    return {
        "run()": run,
        "track()": track,
        "run(), produces 1 file": run_produce,
        "run(), new tracker per step": run_new_tracker,
    }


def measure_core(
    s3: BenchS3, latencies: list[float], rounds: int, steps: int, handler_ms: float
) -> dict[tuple[float, str], tuple[list[float], list[dict[str, int]]]]:
    """(latency, variant) -> (added ms per step, requests per step)."""
    fns = variants(s3.endpoint_url, handler_ms)
    s3.set_latency(0)
    for fn in fns.values():  # warm-up: every file gets a history, every code path runs once
        fn()
    out: dict[tuple[float, str], tuple[list[float], list[dict[str, int]]]] = {}
    names = list(fns)
    for r in range(rounds):
        for latency in latencies:
            s3.set_latency(latency)
            for name in names[r % len(names) :] + names[: r % len(names)]:
                for _ in range(steps):
                    before = s3.counts()
                    start = time.perf_counter()
                    own = fns[name]()
                    added = (time.perf_counter() - start) * 1000 - own
                    added_list, requests = out.setdefault((latency, name), ([], []))
                    added_list.append(added)
                    requests.append(Counts.delta(before, s3.counts()))
        print(f"  core round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return out


def measure_dagster(s3: BenchS3, latencies: list[float], rounds: int) -> dict[float, Any]:
    """latency -> bench_dagster Shape of a one-asset materialization (baseline and Lore)."""
    import logging
    import warnings

    import bench_dagster as bd

    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.ERROR)
    s3.client().create_bucket(Bucket=bd.BUCKET)
    shapes = {}
    for latency in latencies:
        shape = bd.Shape("one asset", bd.make_assets(1), None)
        bd.run_shapes(s3, [shape], rounds, latency, log=lambda line: print(line, file=sys.stderr, flush=True))
        shapes[latency] = shape
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--latency-ms", type=float, nargs="+", default=[20.0, 50.0], help="added per request (default 20 50)"
    )
    parser.add_argument("--handler-ms", type=float, default=200.0, help="the handler's own time (default 200)")
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round (default 3)")
    parser.add_argument("--no-dagster", action="store_true", help="skip the Dagster IO manager figure")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds, 1 step each")
    args = parser.parse_args()
    rounds, steps = (2, 1) if args.quick else (args.rounds, args.steps)
    latencies = [0.0, *args.latency_ms]

    print(
        f"Critical path: added wall per step beyond a {args.handler_ms:g} ms handler, "
        f"{rounds} rounds x {steps} steps, latencies " + ", ".join(f"+{x:g} ms" for x in latencies)
    )
    print(f"machine: {machine()}", flush=True)
    with BenchS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        core = measure_core(s3, latencies, rounds, steps, args.handler_ms)
        dagster = None if args.no_dagster else measure_dagster(s3, args.latency_ms, rounds)

    rows = []
    names = list(dict.fromkeys(name for _, name in core))
    for name in names:
        for latency in latencies:
            added, requests = core[(latency, name)]
            rows.append(
                [
                    f"{name} {'loopback' if not latency else f'+{latency:g} ms'}",
                    median_spread(added),
                    median_spread([a / latency for a in added], "{:.2f}") if latency else "",
                    requests_text(requests),
                ]
            )
    print()
    print("lore_core: one tracked step (a file with a history)")
    print(table(["variant", "added ms per step", "round trips", "S3 requests per step"], rows))
    print(
        "added: step wall time minus the handler's own, median [min-max] over all steps; round trips:\n"
        "added / the latency added to each request (loopback: Lore's CPU plus the local server's own time)."
    )
    if dagster is not None:
        import bench_dagster as bd

        rows = []
        for latency, shape in dagster.items():
            base, lore = shape.ms[bd.BASE_ONE_CLIENT], shape.ms[bd.LORE]
            added = [lo - ba for lo, ba in zip(lore, base, strict=True)]
            rows.append(
                [
                    f"+{latency:g} ms",
                    median_spread(base),
                    median_spread(lore),
                    median_spread(added),
                    median_spread([a / latency for a in added], "{:.2f}"),
                    requests_text(shape.requests[bd.BASE_ONE_CLIENT]),
                    requests_text(shape.requests[bd.LORE]),
                ]
            )
        print()
        print(
            "Dagster: a one-asset materialization (~100 KB), LoreS3IOManager vs dagster-aws S3PickleIOManager\n"
            "with its client built once per process, as Lore's is (bench_dagster.py shows dagster-aws as shipped)"
        )
        print(
            table(
                [
                    "latency",
                    "dagster-aws (1 client) ms",
                    "Lore ms",
                    "added ms",
                    "round trips",
                    "dagster-aws requests",
                    "Lore requests",
                ],
                rows,
            )
        )
        print("added: Lore minus dagster-aws within each round, median [min-max]; round trips: added / latency.")
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the machine)")
    print(
        "Airflow callbacks and listener: see bench_airflow.py, column 'added ms' (= N RT) at +latency, per task\n"
        "(warm runs: per-process set-up done; cold runs: included). Not re-measured here."
    )


if __name__ == "__main__":
    main()
