"""Run the whole per-file pipeline against a local S3 server, fail one file, repair it, replay it.

    python example_projects/dagster_pipeline/demo.py [--log FILE]

Dagster's own log lines go to ``--log`` (default ``.lore-demo/dagster.log``); the terminal
gets a short summary.

1. starts ``lore_core.testing.LocalS3Server`` (moto, on 127.0.0.1; no cloud account) and
   uploads three sales CSVs, one of them malformed;
2. evaluates the file-partitions sensor, which adds each upload as a partition and asks
   for one run per file; runs them (the malformed file fails in ``validated``);
3. repairs the malformed upload (as an operator would), evaluates the Lore replay sensor
   and runs the replay it requests; the failure leaves Lore's failure index;
4. materializes ``summary`` over all files, prints every file's history and lineage, and
   exits 0 only when every tracked file's latest entry succeeded and nothing is left failed.

``ui.py`` runs the same steps, then starts ``dagster-webserver`` on them.
"""

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # run from anywhere, without installing

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# moto accepts any credentials; never let a real profile be used for the demo.
for name, value in {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
}.items():
    os.environ[name] = value

import dagster as dg  # noqa: E402

from example_projects.demo_output import logs_to, say  # noqa: E402
from lore_core import LoreTracker, StepStatus, lineage_to_text  # noqa: E402
from lore_core.testing import LocalS3Server  # noqa: E402

BUCKET = os.environ.setdefault("LORE_BUCKET", "lore-demo")

UPLOADS = {
    "raw/2026-11-01.csv": "date,region,amount\n2026-11-01,north,120.50\n2026-11-01,south,80.00\n",
    "raw/2026-11-02.csv": "date,region,amount\n2026-11-02,north,99.90\n2026-11-02,east,42.10\n",
    # Line 3 lost its amount: validation fails for this file only.
    "raw/2026-11-03.csv": "date,region,amount\n2026-11-03,south,10.00\n2026-11-03,west\n",
}
REPAIRED = {"raw/2026-11-03.csv": "date,region,amount\n2026-11-03,south,10.00\n2026-11-03,west,64.25\n"}


@contextmanager
def local_s3() -> Iterator[LocalS3Server]:
    with LocalS3Server() as server:
        os.environ["LORE_S3_ENDPOINT"] = server.endpoint_url
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for key, body in UPLOADS.items():
            client.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
        yield server


def load_definitions() -> ModuleType:
    import definitions

    return definitions


def _sensor(defs: dg.Definitions, name: str, instance: dg.DagsterInstance) -> Any:
    with dg.build_sensor_context(instance=instance, resources=defs.resources, definitions=defs) as context:
        return defs.resolve_sensor_def(name)(context)


def _run_requests(defs: dg.Definitions, result: Any, instance: dg.DagsterInstance) -> list[bool]:
    """Apply a sensor result as the daemon would: add partitions, then launch each requested run."""
    if isinstance(result, dg.SkipReason):
        say(f"  sensor skipped: {result.skip_message}")
        return []
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    outcomes = []
    job = defs.resolve_job_def("per_file")
    for request in result.run_requests:
        run = job.execute_in_process(
            partition_key=request.partition_key,
            tags={**request.tags, "dagster/sensor_run_key": request.run_key or ""},
            instance=instance,
            raise_on_error=False,
        )
        say(f"  run {run.run_id[:8]} for {request.partition_key}: {'success' if run.success else 'FAILED'}")
        outcomes.append(run.success)
    return outcomes


def run_pipeline(instance: dg.DagsterInstance, server: LocalS3Server) -> LoreTracker:
    """Steps 2-4 of the module docstring, on ``instance``. Returns a tracker for reading results."""
    module = load_definitions()
    defs: dg.Definitions = module.defs

    say("1. new uploads become partitions; one run per file")
    first = _run_requests(defs, _sensor(defs, "lore_files_files", instance), instance)
    say(f"   {first.count(True)} succeeded, {first.count(False)} failed")

    tracker = LoreTracker.from_url(f"s3://{BUCKET}/.lore-s3", endpoint_url=server.endpoint_url, region="us-east-1")
    for failed in tracker.list_failed():
        entry = tracker.get_history(failed.file_key).entry(failed.entry_id)  # type: ignore[union-attr]
        say(f"   failed: {failed.step} on {failed.file_key}: {entry.error.message if entry and entry.error else '?'}")

    say("2. an operator repairs the bad upload; the replay sensor re-runs the failed file")
    client = server.client()
    for key, body in REPAIRED.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    _run_requests(defs, _sensor(defs, "lore_replay_per_file", instance), instance)
    again = _sensor(defs, "lore_replay_per_file", instance)
    say(f"   replay sensor now: {again.skip_message if isinstance(again, dg.SkipReason) else again}")

    say("3. the summary over every file")
    summary = defs.resolve_job_def("summary_job").execute_in_process(instance=instance, raise_on_error=False)
    say(f"   summary: {'success' if summary.success else 'FAILED'}")
    return tracker


def report(tracker: LoreTracker) -> bool:
    """Print each file's history and lineage; True when every file ended succeeded."""
    all_ok = True
    say("\nHistories")
    for key in sorted(tracker.list_tracked_files()):
        history = tracker.get_history(key)
        if history is None:
            continue
        steps = ", ".join(
            f"{e.step}:{e.status.value}" + (f" (replay of {e.replay_of[-6:]})" if e.replay_of else "")
            for e in history.entries
        )
        say(f"  {key}: {steps or 'source file (no steps)'}")
        latest = history.latest()
        if latest is not None and latest.status is not StepStatus.SUCCESS:
            all_ok = False
    say("\nLineage of the summary")
    lineage = tracker.get_lineage("assets/summary")
    say(lineage_to_text(lineage) if lineage is not None else "  (none)")
    left = list(tracker.list_failed())
    if left:
        say(f"\nUnresolved failures: {[(f.step, f.file_key) for f in left]}")
    return all_ok and not left and lineage is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", type=Path, default=Path(".lore-demo/dagster.log"), help="Dagster's full log")
    log = parser.parse_args().log.resolve()
    say(f"Dagster example (full Dagster log: {log})")
    with logs_to(log), local_s3() as server, tempfile.TemporaryDirectory() as home:
        (Path(home) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with dg.DagsterInstance.from_config(home) as instance:
            tracker = run_pipeline(instance, server)
            ok = report(tracker)
    say("\nAll files ended succeeded." if ok else f"\nSome files did not end succeeded (see {log}).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
