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
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))

from example_setup import BUCKET, fix_reference_data, prepare, run_dag

# The orchestrator's own log lines (Python logging, structlog, child processes: whatever writes
# to file descriptors 1 and 2) go to a log file while it runs; the demo's summary, printed with
# say(), still reaches the terminal.
_terminal: TextIO = sys.stdout


def say(*parts: object) -> None:
    print(*parts, file=_terminal, flush=True)


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    global _terminal
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    _terminal = os.fdopen(os.dup(saved[0]), "w", encoding="utf-8")
    with open(path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        _terminal.close()
        _terminal = sys.stdout


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
