"""Dagster side by side: dagster-aws's S3PickleIOManager vs Lore's LoreS3IOManager, same assets.

Two shapes, each materialized with ``dg.materialize`` in this process (in-process
executor, a temporary SQLite DagsterInstance, telemetry off):

- chain: 3 assets (a -> b -> c), each output a list of dicts of ~100 KB, re-materialized;
- partitions: the same chain with 20 static partitions, one run per partition (as a
  backfill or a per-partition schedule launches them); each round re-materializes one
  partition, cycling through the 20.

Baseline: ``S3PickleIOManager`` + ``S3Resource`` (dagster-aws), as shipped (a boto3 client
built per run) and with its client built once per process (as Lore's resource does, so
the like-for-like comparison in one process). Lore: ``LoreS3IOManager`` +
``LoreResource`` with their defaults (JSON for these values, per-file partitions on).
Both talk to the same local S3 server (moto, in its own process) with the same fixed
latency added to every request (default +20 ms, about one S3 round trip). Variants are
interleaved round by round (order alternating); every measured run re-materializes
something materialized before (the warm-up runs, at loopback, are not measured).
Figures are printed, never asserted (issue 14's goal: Lore <= 1.2x the baseline).

    python benchmarks/bench_dagster.py [--rounds 7] [--latency-ms 20] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _latency import BenchS3, Counts, machine, median_spread, requests_text, table

BUCKET = "bench-dagster"
PARTITIONS = [f"p{i:02d}" for i in range(20)]
ROWS = 800  # ~100 KB per output as JSON (Lore), ~80 KB pickled (dagster-aws)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
BASE = "dagster-aws S3PickleIOManager"
BASE_ONE_CLIENT = "dagster-aws, one client per process"
LORE = "Lore LoreS3IOManager"
VARIANTS = (BASE, BASE_ONE_CLIENT, LORE)
_CLIENTS: dict[str | None, Any] = {}


def make_instance() -> Any:
    """A temporary SQLite DagsterInstance with telemetry off (DAGSTER_HOME in a temp dir)."""
    home = Path(tempfile.mkdtemp(prefix="lore-bench-dagster-"))
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    import dagster as dg

    return dg.DagsterInstance.get()


def payload(seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [
        {"id": i, "name": f"row-{i:06d}", "text": rnd.randbytes(32).hex(), "value": rnd.random()} for i in range(ROWS)
    ]


def make_assets(n_assets: int = 3, partitioned: bool = False) -> list[Any]:
    """A chain of ``n_assets`` assets, each returning ~100 KB (the next one derived from the previous)."""
    import dagster as dg

    partitions_def = dg.StaticPartitionsDefinition(PARTITIONS) if partitioned else None
    assets: list[Any] = []
    for i in range(n_assets):
        name = f"{'part_' if partitioned else ''}step_{i}"
        if i == 0:

            @dg.asset(name=name, partitions_def=partitions_def)
            def first() -> list[dict[str, Any]]:
                return payload(0)

            assets.append(first)
        else:
            upstream = assets[-1].key.path[-1]

            def derive(upstream: list[dict[str, Any]]) -> list[dict[str, Any]]:
                return [dict(row, value=row["value"] * 2) for row in upstream]

            assets.append(
                dg.asset(name=name, partitions_def=partitions_def, ins={"upstream": dg.AssetIn(upstream)})(derive)
            )
    return assets


def make_resources(variant: str, endpoint: str) -> dict[str, Any]:
    if variant in (BASE, BASE_ONE_CLIENT):
        from dagster_aws.s3 import S3PickleIOManager, S3Resource

        class OneClientS3Resource(S3Resource):
            """S3Resource whose client is built once per process, as LoreResource's is."""

            def get_client(self) -> Any:
                if self.endpoint_url not in _CLIENTS:
                    _CLIENTS[self.endpoint_url] = super().get_client()
                return _CLIENTS[self.endpoint_url]

        s3 = (S3Resource if variant == BASE else OneClientS3Resource)(
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return {"io_manager": S3PickleIOManager(s3_resource=s3, s3_bucket=BUCKET, s3_prefix="baseline")}
    from lore_dagster import LoreResource, LoreS3IOManager

    lore = LoreResource(
        store=f"s3://{BUCKET}/.lore-s3",
        endpoint_url=endpoint,
        region="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return {"lore": lore, "io_manager": LoreS3IOManager(bucket=BUCKET, prefix="lore", lore=lore)}


def materialize(assets: list[Any], resources: dict[str, Any], instance: Any, partition: str | None) -> None:
    import dagster as dg

    result = dg.materialize(assets, resources=resources, instance=instance, partition_key=partition, run_config=QUIET)
    if not result.success:
        raise RuntimeError(f"materialization failed: {result}")


class Shape:
    """One benchmarked shape: assets, the partition each round materializes, and the samples."""

    def __init__(self, name: str, assets: list[Any], partitions: list[str] | None) -> None:
        self.name, self.assets, self.partitions = name, assets, partitions
        self.ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
        self.cpu_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
        self.requests: dict[str, list[dict[str, int]]] = {v: [] for v in VARIANTS}
        self.ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}

    def partition(self, round_no: int) -> str | None:
        return self.partitions[round_no % len(self.partitions)] if self.partitions else None


def run_shapes(
    s3: BenchS3, shapes: list[Shape], rounds: int, latency_ms: float, log: Callable[[str], None] = print
) -> None:
    """Warm up (at loopback), then ``rounds`` interleaved rounds at ``latency_ms``."""
    instance = make_instance()
    resources = {v: make_resources(v, s3.endpoint_url) for v in VARIANTS}
    s3.set_latency(0)
    for shape in shapes:
        # Everything measured later is a re-materialization: materialize each partition to be measured once.
        keys = sorted({shape.partition(r) for r in range(rounds)}, key=str)
        for variant in VARIANTS:
            for key in keys:
                materialize(shape.assets, resources[variant], instance, key)
    s3.set_latency(latency_ms)
    for r in range(rounds):
        for shape in shapes:
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            taken: dict[str, float] = {}
            for variant in order:
                before = s3.counts()
                start, cpu = time.perf_counter(), time.process_time()
                materialize(shape.assets, resources[variant], instance, shape.partition(r))
                taken[variant] = (time.perf_counter() - start) * 1000
                shape.cpu_ms[variant].append((time.process_time() - cpu) * 1000)
                shape.ms[variant].append(taken[variant])
                shape.requests[variant].append(Counts.delta(before, s3.counts()))
            for variant in VARIANTS:
                shape.ratios[variant].append(taken[LORE] / taken[variant])
        log(
            f"  round {r + 1}/{rounds}: "
            + "; ".join(f"{s.name} " + " / ".join(f"{s.ms[v][-1]:.0f}" for v in VARIANTS) + " ms" for s in shapes)
        )


def report(shapes: list[Shape], latency_ms: float) -> str:
    rows = []
    for shape in shapes:
        lore_median = statistics.median(shape.ms[LORE])
        for variant in VARIANTS:
            cells = [
                f"{shape.name}: {variant}",
                median_spread(shape.ms[variant]),
                median_spread(shape.cpu_ms[variant]),
                requests_text(shape.requests[variant]),
            ]
            for base in (BASE, BASE_ONE_CLIENT):
                if variant != LORE:
                    cells.append("")
                    continue
                added = lore_median - statistics.median(shape.ms[base])
                cells.append(
                    median_spread(shape.ratios[base], "{:.2f}")
                    + f"x, {added:+.0f} ms"
                    + (f" = {added / latency_ms:.1f} RT" if latency_ms else "")
                )
            rows.append(cells)
    headers = [
        "shape: variant",
        "ms per run",
        "CPU ms per run",
        "S3 requests per run",
        "Lore vs dagster-aws",
        "Lore vs one-client dagster-aws",
    ]
    return table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every S3 request (default 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds

    import warnings

    warnings.filterwarnings("ignore")  # Dagster's preview/beta warnings would drown the table
    import logging

    logging.getLogger("dagster").setLevel(logging.ERROR)

    shapes = [
        Shape("chain", make_assets(3), None),
        Shape("20 partitions", make_assets(3, partitioned=True), PARTITIONS),
    ]
    print(f"Dagster: dagster-aws vs Lore IO manager, +{args.latency_ms:g} ms per S3 request, {rounds} rounds")
    print(f"machine: {machine()}", flush=True)
    sample = payload(0)
    import json
    import pickle

    print(
        f"objects: {len(json.dumps(sample)) // 1024} KB as JSON (Lore), {len(pickle.dumps(sample)) // 1024} KB"
        " pickled (dagster-aws), 3 assets per run",
        flush=True,
    )
    with BenchS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        run_shapes(s3, shapes, rounds, args.latency_ms, log=lambda line: print(line, file=sys.stderr, flush=True))
    print()
    print(report(shapes, args.latency_ms))
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the machine)")
    print(
        "ms per run: wall time of dg.materialize() (3 assets, one run), median [min-max] over rounds;\n"
        "CPU ms: this process's CPU time during the run (Dagster and the IO manager; the S3 server runs\n"
        "in its own process), less disturbed by other load than wall time;\n"
        "Lore vs ...: Lore/baseline within each round, median [min-max], and the difference of the medians\n"
        f"(RT = one added round trip of {args.latency_ms:g} ms). Partitions: one run per partition key, each round\n"
        "re-materializes the next key. Requests: mean per run, as the server counted them (LIST = a GET\n"
        "on a bucket; 404/412 are answers, counted again beside their request). dagster-aws's S3Resource\n"
        "builds a boto3 session and client for every run (~80-300 ms CPU); LoreResource builds its client\n"
        "once per process, so in this one-process benchmark the one-client dagster-aws variant is the\n"
        "like-for-like baseline (each run in its own process, as Dagster launches them, pays both once)."
    )


if __name__ == "__main__":
    main()
