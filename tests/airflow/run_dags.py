"""Run DAGs with ``dag.test()`` in a process of their own and write what happened as JSON.

Usage: ``python run_dags.py OUT.json DAG_ID [DAG_ID ...]``. Airflow's environment
(AIRFLOW_HOME, DAGS_FOLDER, [lore] options) comes from the parent test; keeping
Airflow out of the pytest process keeps its config away from the other test dirs.
"""

from __future__ import annotations

import json
import os
import sys
import time

_RESCHEDULES = (
    "select count(*) from task_reschedule"
    " where ti_id in (select id from task_instance where dag_id = :d and run_id = :r)"
)


def _fail_when_rescheduled(spec: str, deadline_s: float = 90.0) -> None:
    """Wait (polling the metadata DB) until DAG/task is up_for_reschedule, then record a failure.

    ``spec`` is ``dag_id|task_id|store_url|endpoint|file_key|step``: it gives a sensor in
    reschedule mode something to find on a later poke, and proves it was rescheduled first.
    """
    import sqlite3

    from lore_core import LoreTracker

    dag_id, task_id, store, endpoint, file_key, step = spec.split("|")
    db = os.path.join(os.environ["AIRFLOW_HOME"], "airflow.db")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(
                "select state from task_instance where dag_id=? and task_id=?", (dag_id, task_id)
            ).fetchall()
        if any(state == "up_for_reschedule" for (state,) in rows):
            LoreTracker.from_url(store, endpoint_url=endpoint).record(
                file_key, step, "failed", error="failed while the sensor was waiting"
            )
            print(f"recorded {file_key} after {dag_id}.{task_id} was rescheduled", file=sys.stderr)
            return
        time.sleep(0.1)
    print(f"{dag_id}.{task_id} was never rescheduled", file=sys.stderr)


def _fail_when_deferred(spec: str) -> None:
    """Record a failure once ``dag.test()`` hands a deferred task to its trigger (same ``spec`` as above).

    ``dag.test()`` runs the trigger in this process and logs "running trigger in line"
    first: the failure is recorded shortly after, so the sensor's own poke found nothing
    and only the trigger can find it.
    """
    import logging
    import threading

    from lore_core import LoreTracker

    dag_id, task_id, store, endpoint, file_key, step = spec.split("|")

    def record() -> None:
        time.sleep(0.5)
        LoreTracker.from_url(store, endpoint_url=endpoint).record(
            file_key, step, "failed", error="failed while the trigger was waiting"
        )
        print(f"recorded {file_key} after {dag_id}.{task_id} was deferred", file=sys.stderr)

    class OnTrigger(logging.Handler):
        def emit(self, record_: logging.LogRecord) -> None:
            if "running trigger in line" in record_.getMessage():
                threading.Thread(target=record, daemon=True).start()

    logger = logging.getLogger("airflow.sdk.definitions.dag")
    logger.setLevel(logging.INFO)
    logger.addHandler(OnTrigger())


def main() -> int:
    out_path, dag_ids = sys.argv[1], sys.argv[2:]
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import text

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print("import errors:", bag.import_errors, file=sys.stderr)
    results: dict[str, object] = {}
    if spec := os.environ.get("LORE_TEST_FAIL_WHEN_RESCHEDULED"):
        import threading

        threading.Thread(target=_fail_when_rescheduled, args=(spec,), daemon=True).start()
    if spec := os.environ.get("LORE_TEST_FAIL_WHEN_DEFERRED"):
        _fail_when_deferred(spec)
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        if dag is None:
            raise SystemExit(f"DAG {dag_id} not found in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}")
        started = time.monotonic()
        run = dag.test()
        with create_session() as session:
            tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id).all()
            results[dag_id] = {
                "run_id": run.run_id,
                "state": str(run.state),
                "seconds": round(time.monotonic() - started, 2),
                "reschedules": session.execute(text(_RESCHEDULES), {"d": dag_id, "r": run.run_id}).scalar(),
                "tis": {
                    f"{ti.task_id}" + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): {
                        "state": str(ti.state),
                        "try_number": ti.try_number,
                    }
                    for ti in tis
                },
            }
    with open(out_path, "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
