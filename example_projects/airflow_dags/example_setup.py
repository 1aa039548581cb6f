"""Shared by demo.py and ui.py: a temp AIRFLOW_HOME, a local S3 server with the day's uploads,
and the environment that points Airflow and Lore at them. Must run before airflow is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lore_core.testing import LocalS3Server

HERE = Path(__file__).resolve().parent
BUCKET = "lore-example"

UPLOADS = {
    "raw/orders-001.csv": "order_id,amount,currency\n1,19.90,EUR\n2,5.00,EUR\n3,42.10,USD\n",
    "raw/orders-002.csv": "order_id,amount,currency\n4,7.25,USD\n5,12.00,EUR\n",
    # CHF is not in the reference list yet: this upload fails validation.
    "raw/orders-003.csv": "order_id,amount,currency\n6,99.00,CHF\n7,1.50,EUR\n",
}
CURRENCIES = "EUR\nUSD\n"
CURRENCIES_FIXED = "EUR\nUSD\nCHF\n"


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


def installed_editable_from(repo: Path) -> bool:
    """True when ``lore-s3`` is installed with ``pip install -e`` from ``repo`` (PEP 610 ``direct_url.json``)."""
    from importlib import metadata
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    for dist in metadata.distributions(name="lore-s3"):
        info = json.loads(dist.read_text("direct_url.json") or "{}")
        url = str(info.get("url", ""))
        editable = bool(info.get("dir_info", {}).get("editable"))
        if editable and url.startswith("file:") and Path(url2pathname(urlparse(url).path)).resolve() == repo.resolve():
            return True
    return False


def subprocess_pythonpath(repo: Path, *extra: str) -> str:
    """PYTHONPATH for Airflow's processes: ``repo`` only when its packages are not installed from it.

    ``pip install -e .`` leaves ``lore_s3.egg-info`` in the repository. With the repository
    on PYTHONPATH as well, Python finds the ``lore-s3`` distribution twice, Airflow loads its
    ``airflow.plugins`` entry point twice and shows "Plugin 'lore' already registered" as a
    plugin import error on its home page.
    """
    paths = [*extra, *([] if installed_editable_from(repo) else [str(repo)]), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)


def prepare(home: Path | None = None) -> tuple[LocalS3Server, Path]:
    """Start the S3 server, upload the files, set the environment and migrate the database."""
    home = home or Path(tempfile.mkdtemp(prefix="lore-airflow-example-"))
    server = LocalS3Server().start()
    client = server.client()
    client.create_bucket(Bucket=BUCKET)
    for key, body in UPLOADS.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    client.put_object(Bucket=BUCKET, Key="reference/currencies.txt", Body=CURRENCIES.encode())
    repo = str(HERE.parent.parent)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LORE__STORE": f"s3://{BUCKET}/.lore-s3",
            "AIRFLOW__LORE__AWS_CONN_ID": "lore_s3",
            # The connection Lore and the DAGs share; endpoint_url in its extra points at the local server.
            "AIRFLOW_CONN_LORE_S3": json.dumps(
                {"conn_type": "aws", "extra": {"endpoint_url": server.endpoint_url, "region_name": "us-east-1"}}
            ),
            "LORE_EXAMPLE_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONPATH": subprocess_pythonpath(Path(repo)),
        }
    )
    if repo not in sys.path and not installed_editable_from(Path(repo)):
        sys.path.insert(0, repo)
    subprocess.run([airflow_bin(), "db", "migrate"], check=True, capture_output=True)
    return server, home


def fix_reference_data(server: LocalS3Server) -> None:
    """What the upstream team does after the failure: add the missing currency."""
    server.client().put_object(Bucket=BUCKET, Key="reference/currencies.txt", Body=CURRENCIES_FIXED.encode())


def run_dag(dag_id: str) -> str:
    """Run one example DAG with dag.test() in this process; return the run's state."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(HERE)).get_dag(dag_id)
    if dag is None:
        raise SystemExit(f"DAG {dag_id} not found in {HERE}")
    return str(dag.test().state)


def api_server_env(home: Path, port: int, password: str) -> dict[str, str]:
    """Airflow's own login (SimpleAuthManager, one admin user with ``password``) on 127.0.0.1:port."""
    import secrets

    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({"admin": password}))
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
    }


def start_api_server(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``airflow api-server`` (UI, REST API and the Lore page) in its own process group."""
    log = open(log_path, "wb")  # noqa: SIM115 - the server owns it until it stops
    return subprocess.Popen(
        [airflow_bin(), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_api_server(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop the server and the workers it started: its process group, by the id it was given."""
    import signal

    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def wait_until_up(port: int, deadline_s: float = 120.0) -> None:
    """Poll the health endpoint until the API server answers (or raise at the deadline)."""
    import time
    import urllib.request

    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:  # not listening yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"API server on port {port} did not come up: {last}")
