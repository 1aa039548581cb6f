"""The example project runs end to end: `python example_projects/airflow_dags/demo.py` runs
both example DAGs with dag.test() (its own temp AIRFLOW_HOME and local S3 server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import EXAMPLE_DAGS, REPO


def test_demo_fails_one_upload_then_replays_it_and_exits_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "airflow.log"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE_DAGS / "demo.py"), "--log", str(log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(REPO),
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "failed: raw/orders-003.csv (lore_orders.process.validate)" in out
    assert "lore_orders_fix: success" in out
    assert "OK: every file ended succeeded" in out
    # A short summary on the terminal (issue 12); Airflow's own log lines in the file it names.
    assert len(out.splitlines()) < 40 and "Traceback" not in out + proc.stderr, out
    assert f"full Airflow log: {log}" in out and "unknown currency 'CHF'" in log.read_text()
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and "entries=" in line}
    # The bad upload: its failure, then the successful replay.
    assert "success" in lines["raw/orders-003.csv"] and "entries=2" in lines["raw/orders-003.csv"]
    assert "from: raw/orders-003.csv" in lines["validated/orders-003.csv"]
    assert "from: validated/orders-003.csv" in lines["converted/orders-003.csv.jsonl"]
    assert "converted/orders-003.csv.jsonl" in lines["summary/daily.json"]


def test_airflow_stays_out_of_the_pytest_process() -> None:
    # tests/core and tests/dagster share this process: no Airflow import, no Airflow config.
    assert not [m for m in sys.modules if m == "airflow" or m.startswith(("airflow.", "lore_airflow"))]
    assert not [k for k in os.environ if k.startswith("AIRFLOW")]
