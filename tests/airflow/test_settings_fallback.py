"""Airflow's [lore] settings come first; what they leave unset comes from Lore's own settings
(LORE_* variables, lore.toml, the user's lore.toml), as for the CLI and Dagster (issue 12).
Run in a subprocess: Airflow is never imported into the pytest process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

SCRIPT = """
import json
from lore_airflow.config import LoreSettings

default = LoreSettings.from_airflow()
given = LoreSettings.from_airflow(store="s3://argument/.lore-s3")
print(json.dumps([default.store, default.region, default.endpoint_url, default.lease_seconds, given.store]))
"""


def test_lore_section_first_then_lore_settings(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "lore.toml").write_text('lease_seconds = 120\nendpoint_url = "http://127.0.0.1:9000"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LORE_"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__LORE__REGION="eu-west-1",  # [lore] wins over LORE_REGION
        LORE_REGION="us-east-2",
        LORE_STORE="s3://from-env/.lore-s3",  # [lore] store is unset
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        PYTHONPATH=str(REPO),
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path / "project", env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    store, region, endpoint, lease, given = json.loads(done.stdout.strip().splitlines()[-1])
    assert (store, region, endpoint, lease) == ("s3://from-env/.lore-s3", "eu-west-1", "http://127.0.0.1:9000", 120)
    assert given == "s3://argument/.lore-s3"
