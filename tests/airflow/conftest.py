"""Airflow-only fixtures. Airflow never runs inside the pytest process: every DAG
run, the API server and the trigger check run in subprocesses with their own
environment (AIRFLOW_HOME in a temp dir, SQLite, examples off), so nothing of
Airflow's config leaks into tests/core or tests/dagster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lore_core.testing import LocalS3Server

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TEST_DAGS = HERE / "dags"
EXAMPLE_DAGS = REPO / "example_projects" / "airflow_dags"
BIN = Path(sys.executable).parent
RUN_TIMEOUT = 240


def _load_example_setup() -> Any:
    # Loaded from its file: the example folder is not a package and must not join sys.path.
    import importlib.util

    spec = importlib.util.spec_from_file_location("lore_airflow_example_setup", EXAMPLE_DAGS / "example_setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example_setup = _load_example_setup()


def airflow_env(home: Path, dags_folder: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """The environment of an Airflow subprocess: isolated home, local S3, fake credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LORE__ENDPOINT_URL": endpoint,
            "AIRFLOW_CONN_LORE_S3": json.dumps(
                {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
            ),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # The repo under test, unless it is the editable install (then its egg-info would
            # make Airflow load the plugin twice: "Plugin 'lore' already registered").
            "PYTHONPATH": example_setup.subprocess_pythonpath(REPO),
        }
    )
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str) -> Path:
    """A migrated SQLite metadata database, shared by the session's (sequential) Airflow subprocesses."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(home, TEST_DAGS, s3_endpoint)
    proc = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return home


@pytest.fixture(scope="module")
def make_bucket(s3_server: LocalS3Server) -> Callable[[], str]:
    client = s3_server.client()

    def make() -> str:
        name = f"lore-af-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        return name

    return make


RunDags = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def run_dags(airflow_home: Path, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> RunDags:
    """Run DAGs with dag.test() in one subprocess; returns run/task states per DAG (and the log)."""

    def run(dag_ids: list[str], *, dags_folder: Path = TEST_DAGS, **extra_env: str) -> dict[str, Any]:
        out = tmp_path_factory.mktemp("runs") / "result.json"
        env = airflow_env(airflow_home, dags_folder, s3_endpoint, **extra_env)
        proc = subprocess.run(
            [sys.executable, str(HERE / "run_dags.py"), str(out), *dag_ids],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr[-6000:]
        result: dict[str, Any] = json.loads(out.read_text())
        result["_log"] = proc.stdout + proc.stderr
        return result

    return run


@pytest.fixture()
def free_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
