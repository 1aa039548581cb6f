"""Airflow side by side: a 5-task DAG bare, with Lore's callbacks, and with Lore's listener.

Each task has one S3 inlet and one outlet and does what the declaration says: it reads
its inlet with ``S3Hook.read_key`` (HEAD + GET) and writes its outlet with
``S3Hook.load_bytes`` (PUT); the tasks form a chain (task i's outlet is task i+1's
inlet). Three variants, each its own DAG folder:

- bare: Lore not active (no ``[lore] store``, ``[lore] listener = False``);
- callbacks: ``**lore_callbacks(store=...)`` on every task (listener has no store);
- listener: plain tasks, ``[lore] store`` set: the plugin's listener tracks them.

Lore reaches S3 through the same Airflow connection as the tasks (``[lore] aws_conn_id``).

Airflow never runs in this process: each (variant, latency, round) is a fresh Python
subprocess with its own AIRFLOW_HOME (SQLite, migrated once), as tests/airflow does. The
subprocess calls ``dag.test()`` several times and times, inside the process, each task as
dag.test() runs it (callbacks and listener hooks included) and each whole ``dag.test()``,
so interpreter start-up, imports and DAG parsing are not measured: "cold" is the first
``dag.test()`` in the process (per-process set-up such as Lore's client and tracker
included: a worker process that runs one task pays it), "warm" the later ones, at
loopback and at the added latency in turn. Requests
are counted by the S3 server around each ``dag.test()``. The local S3 server (moto) runs
in its own process with a fixed latency added to every request. Variants are interleaved
round by round; every measured run re-runs a DAG that ran before. Figures are printed,
never asserted (issue 14's goals: <= 4 requests per task, added wall <= 1.1x of bare at
loopback, <= 2 round trips at +20 ms).

    python benchmarks/bench_airflow.py [--rounds 7] [--latency-ms 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
BUCKET = "bench-airflow"
CONN_ID = "lore_s3"
TASKS = 5
VARIANTS = ("bare", "callbacks", "listener")
CHILD_TIMEOUT = 600

DAG_FILE = '''\
"""Benchmark DAG ({variant}): {tasks} chained tasks, each reading its inlet and writing its outlet."""

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk import DAG, Asset, task
{lore_import}
BUCKET = {bucket!r}


def url(i: int) -> str:
    return f"s3://{{BUCKET}}/data/{variant}/{{i}}.bin"


with DAG("bench_{variant}", schedule=None, catchup=False):
    previous = None
    for i in range({tasks}):

        @task(task_id=f"t{{i}}", inlets=[Asset(url(i))], outlets=[Asset(url(i + 1))]{lore_kwargs})
        def step(i: int = i) -> None:
            hook = S3Hook(aws_conn_id={conn_id!r})
            body = hook.read_key(f"data/{variant}/{{i}}.bin", BUCKET)
            hook.load_bytes((body + "x").encode(), f"data/{variant}/{{i + 1}}.bin", BUCKET, replace=True)

        current = step()
        if previous is not None:
            previous >> current
        previous = current
'''


# --------------------------------------------------------------------------- child (Airflow inside)


def child(out_path: str, dag_id: str, latencies: list[float]) -> int:
    """Run ``dag_id`` with dag.test() once per latency in ``latencies`` (set on the server before
    each run); write each run's wall time, task times and request counts."""
    from _latency import Counts, read_counts, set_latency
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    endpoint = os.environ["BENCH_S3_ENDPOINT"]
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print("import errors:", bag.import_errors, file=sys.stderr)
        return 2
    dag = bag.get_dag(dag_id)
    if dag is None:
        print(f"DAG {dag_id} not found", file=sys.stderr)
        return 2
    # Time each task as dag.test() runs it (its private per-task helper): the task with the
    # callbacks and listener hooks around it, without dag.test()'s scheduling between tasks.
    import airflow.sdk.definitions.dag as dag_module

    task_ms: list[float] = []
    run_task = dag_module._run_task

    def timed_run_task(**kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return run_task(**kwargs)
        finally:
            task_ms.append((time.perf_counter() - start) * 1000)

    dag_module._run_task = timed_run_task
    results = []
    for latency in latencies:
        set_latency(endpoint, latency)
        task_ms.clear()
        before = read_counts(endpoint)
        start = time.perf_counter()
        run = dag.test()
        wall_ms = (time.perf_counter() - start) * 1000
        requests = Counts.delta(before, read_counts(endpoint))
        with create_session() as session:
            tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
            states = {ti.task_id: str(ti.state) for ti in tis}
        if str(run.state) != "success" or any(s != "success" for s in states.values()) or len(task_ms) != TASKS:
            print(f"{dag_id} run {run.run_id} did not succeed: {run.state} {states} {task_ms}", file=sys.stderr)
            return 3
        results.append({"latency": latency, "wall_ms": wall_ms, "task_ms": list(task_ms), "requests": requests})
    Path(out_path).write_text(json.dumps(results))
    return 0


# --------------------------------------------------------------------------- parent


def _example_setup() -> Any:
    # The tests' helper (loaded from its file: the example folder is not a package).
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "lore_airflow_example_setup", REPO / "example_projects" / "airflow_dags" / "example_setup.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Airflow:
    """An AIRFLOW_HOME, one DAG folder per variant, and the subprocesses that run them."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.root = Path(tempfile.mkdtemp(prefix="lore-bench-airflow-"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.pythonpath = _example_setup().subprocess_pythonpath(REPO, str(HERE))
        for variant in VARIANTS:
            folder = self.root / f"dags_{variant}"
            folder.mkdir()
            lore_import = "from lore_airflow import lore_callbacks\n" if variant == "callbacks" else ""
            lore_kwargs = f", **lore_callbacks(store={self.store!r})" if variant == "callbacks" else ""
            (folder / f"bench_{variant}.py").write_text(
                DAG_FILE.format(
                    variant=variant,
                    tasks=TASKS,
                    bucket=BUCKET,
                    conn_id=CONN_ID,
                    lore_import=lore_import,
                    lore_kwargs=lore_kwargs,
                )
            )

    @property
    def store(self) -> str:
        return f"s3://{BUCKET}/.lore-s3"

    def env(self, variant: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / f"dags_{variant}"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
                    {"conn_type": "aws", "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"}}
                ),
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "PYTHONPATH": self.pythonpath,
                "BENCH_S3_ENDPOINT": self.endpoint,
            }
        )
        if variant == "bare":
            env["AIRFLOW__LORE__LISTENER"] = "False"
        else:
            env["AIRFLOW__LORE__AWS_CONN_ID"] = CONN_ID
        if variant == "listener":
            env["AIRFLOW__LORE__STORE"] = self.store
        return env

    def migrate(self) -> None:
        proc = subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=self.env("bare"),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        if proc.returncode != 0:
            raise SystemExit(f"airflow db migrate failed:\n{proc.stderr[-4000:]}")

    def run(self, variant: str, latencies: list[float]) -> list[dict[str, Any]]:
        """One subprocess: dag.test() once per latency, in order."""
        out = self.root / f"result-{variant}.json"
        spec = ",".join(f"{latency:g}" for latency in latencies)
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(out), f"bench_{variant}", spec],
            env=self.env(variant),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        if proc.returncode != 0:
            raise SystemExit(f"the {variant} DAG failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
        results: list[dict[str, Any]] = json.loads(out.read_text())
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every S3 request (default 20)")
    parser.add_argument(
        "--warm-runs", type=int, default=2, help="warm dag.test() runs per latency in each subprocess (default 2)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 1 warm run, no warm-up")
    parser.add_argument("--child", nargs=3, metavar=("OUT", "DAG_ID", "LATENCIES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        raise SystemExit(child(args.child[0], args.child[1], [float(x) for x in args.child[2].split(",")]))

    from _latency import BenchS3, machine

    rounds = 1 if args.quick else args.rounds
    warm_runs = 1 if args.quick else args.warm_runs
    latencies = [0.0, args.latency_ms]
    print(
        f"Airflow: {TASKS}-task DAG under dag.test(), bare vs Lore callbacks vs Lore listener, "
        f"loopback and +{args.latency_ms:g} ms per S3 request, {rounds} rounds x {warm_runs} warm runs"
    )
    print(f"machine: {machine()}", flush=True)
    # samples[(latency, variant, "cold"|"warm")] = runs, in round order
    samples: dict[tuple[float, str, str], list[dict[str, Any]]] = {}
    with BenchS3() as s3:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        for variant in VARIANTS:
            client.put_object(Bucket=BUCKET, Key=f"data/{variant}/0.bin", Body=b"x" * 1024)
        airflow = Airflow(s3.endpoint_url)
        started = time.perf_counter()
        airflow.migrate()
        print(f"airflow db migrate: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if not args.quick:
            for variant in VARIANTS:  # warm-up: the first runs create the histories and the DAGs' rows
                airflow.run(variant, [0.0])
        for r in range(rounds):
            # One subprocess per variant and round: a cold run (at loopback and at the added latency in
            # alternate rounds), then warm runs alternating the latencies. Variant order rotates.
            cold = latencies[r % 2]
            plan = [cold] + (latencies if r % 2 == 0 else latencies[::-1]) * warm_runs
            for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                results = airflow.run(variant, plan)
                samples.setdefault((cold, variant, "cold"), []).append(results[0])
                for result in results[1:]:
                    samples.setdefault((result["latency"], variant, "warm"), []).append(result)
            print(
                f"  round {r + 1}/{rounds}: "
                + "; ".join(
                    f"+{lat:g} ms " + " / ".join(f"{task_median(samples[(lat, v, 'warm')][-1]):.0f}" for v in VARIANTS)
                    for lat in latencies
                )
                + " ms per task (warm, median of the 5 tasks, bare / callbacks / listener)",
                file=sys.stderr,
                flush=True,
            )

    print()
    print(report(samples, latencies))
    print()
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes share the machine)")
    print(
        "task ms: each task timed around dag.test()'s per-task helper (the task with Lore's callbacks or\n"
        f"listener hooks; not dag.test()'s scheduling between tasks), median of the run's {TASKS} tasks (one slow\n"
        "task, which dag.test() itself produces now and then, does not count). DAG wall ms/task: time around\n"
        f"dag.test() / {TASKS} (everything, slow tasks included). Interpreter start-up and DAG parsing are in\n"
        "neither. Both: median [min-max] over runs; added: difference of the medians vs bare (RT = one\n"
        f"added round trip of {args.latency_ms:g} ms); ratio: variant/bare within a round, median [min-max].\n"
        "Requests: mean per task as the server counted them; a bare task's own are 1 HEAD + 1 GET + 1 PUT\n"
        "(S3Hook.read_key, load_bytes); Lore's own = variant minus bare (404/412 are answers, counted\n"
        "again beside their request). Cold runs alternate between the latencies round by round. For the\n"
        "critical path: 'added ms' per task / RT at +latency is the figure bench_critical_path.py refers to."
    )


def per_task(run: dict[str, Any]) -> float:
    return float(run["wall_ms"]) / TASKS


def task_median(run: dict[str, Any]) -> float:
    return float(statistics.median(run["task_ms"]))


def report(samples: dict[tuple[float, str, str], list[dict[str, Any]]], latencies: list[float]) -> str:
    from _latency import median_spread, requests_text, table

    out = []
    for phase in ("warm", "cold"):
        rows = []
        for latency in latencies:
            if (latency, "bare", phase) not in samples:
                continue
            bare = samples[(latency, "bare", phase)]
            keys = {k for run in bare for k in run["requests"]}
            bare_requests = {k: statistics.mean(run["requests"].get(k, 0) for run in bare) for k in keys}
            for variant in VARIANTS:
                runs = samples[(latency, variant, phase)]
                cells = [f"{'loopback' if not latency else f'+{latency:g} ms'}: {variant}"]
                for measure in (task_median, per_task):
                    values = [measure(x) for x in runs]
                    cells.append(median_spread(values))
                    if variant == "bare":
                        cells += ["", "1.00x"]
                        continue
                    added = statistics.median(values) - statistics.median(measure(b) for b in bare)
                    ratios = [measure(x) / measure(b) for x, b in zip(runs, bare, strict=True)]
                    cells.append(f"{added:+.0f}" + (f" = {added / latency:.1f} RT" if latency else ""))
                    cells.append(median_spread(ratios, "{:.2f}") + "x")
                cells.append(requests_text([{k: v / TASKS for k, v in run["requests"].items()} for run in runs]))
                lore_own = [
                    {k: (run["requests"].get(k, 0) - bare_requests.get(k, 0)) / TASKS for k in run["requests"]}
                    for run in runs
                ]
                cells.append("" if variant == "bare" else requests_text(lore_own))
                rows.append(cells)
        title = (
            "WARM: the later dag.test() runs in each subprocess (per-process set-up done)"
            if phase == "warm"
            else "COLD: the first dag.test() in a fresh subprocess (per-process set-up included)"
        )
        headers = [
            "latency: variant",
            "task ms",
            "added ms",
            "ratio",
            "DAG wall ms/task",
            "added ms",
            "ratio",
            "S3 requests per task",
            "Lore's own per task",
        ]
        out.append(title + "\n" + table(headers, rows))
    return "\n\n".join(out)


if __name__ == "__main__":
    main()
