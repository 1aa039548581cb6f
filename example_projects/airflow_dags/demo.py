"""Run the example end to end: python example_projects/airflow_dags/demo.py [--log FILE]

Sets up a temp AIRFLOW_HOME and a local S3 server, runs ``lore_orders`` (one
upload fails validation), fixes the reference data, runs ``lore_orders_fix``
(sensor + mapped replay), prints the summary's lineage and exits 0 only when
every tracked file ended succeeded. Airflow's own log lines go to ``--log`` (default
``.lore-demo/airflow.log``); the terminal gets a short summary.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere, without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))

from example_setup import BUCKET, fix_reference_data, prepare, run_dag

from example_projects.demo_output import logs_to, say


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", type=Path, default=Path(".lore-demo/airflow.log"), help="Airflow's full log")
    log = parser.parse_args().log.resolve()
    say(f"Airflow example (full Airflow log: {log})")
    with logs_to(log):
        return run(log)


def run(log: Path) -> int:
    server, home = prepare()
    try:
        logging.getLogger("airflow").setLevel(logging.WARNING)
        from lore_core import LoreTracker, lineage_to_text

        tracker = LoreTracker(bucket=BUCKET, s3_client=server.client())
        print(f"AIRFLOW_HOME={home}  S3={server.endpoint_url}")  # into the log

        say("lore_orders:", run_dag("lore_orders"))
        failed = list(tracker.list_failed())
        for f in failed:
            say(f"  failed: {f.file_key} ({f.step}) entry {f.entry_id}")
        if not failed:
            say("NOT OK: the bad upload should have failed validation")
            return 1

        fix_reference_data(server)
        say("lore_orders_fix:", run_dag("lore_orders_fix"))

        lineage = tracker.get_lineage("summary/daily.json")
        say("\nLineage of summary/daily.json:")
        say(lineage_to_text(lineage) if lineage else "  (none)")

        bad = []
        say("\nFiles:")
        for doc in tracker.list_all_histories():
            last = doc.entries[-1] if doc.entries else None
            state = str(last.status) if last else "derived"
            sources = sorted({ref.file_key for ref in doc.derived_from})
            say(f"  {doc.file_key:32} {state:8} entries={len(doc.entries)}  from: {', '.join(sources) or '-'}")
            if last is not None and str(last.status) != "success":
                bad.append(doc.file_key)
        remaining = list(tracker.list_failed())
        ok = bool(failed) and not bad and not remaining
        say(
            "\nOK: every file ended succeeded"
            if ok
            else f"\nNOT OK: {bad or remaining or 'nothing failed first'} (see {log})"
        )
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)  # the temp AIRFLOW_HOME


if __name__ == "__main__":
    raise SystemExit(main())
