"""LoreHook (issue 9): Lore's S3 client comes from an Airflow AWS connection the way the
Amazon provider's hooks get theirs (endpoint, region, credentials, config_kwargs from the
connection; ``aws_default`` by default; boto3's chain when the connection does not exist),
with Lore's botocore defaults, and one hook and client per process."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from lore_core import LoreTracker

from .conftest import HERE, REPO, RunDags, airflow_env, example_setup

CHECK_CONN = {
    "conn_type": "aws",
    "login": "AKIDFROMCONN",
    "password": "secret-from-conn",
    "extra": {
        "endpoint_url": "http://conn-endpoint:9000",
        "region_name": "eu-west-3",
        "config_kwargs": {"read_timeout": 11, "retries": {"mode": "adaptive", "max_attempts": 3}},
    },
}
DEFAULT_CONN = {
    "conn_type": "aws",
    "login": "AKIDDEFAULT",
    "password": "default-secret",
    "extra": {"endpoint_url": "http://default-endpoint:9000"},
}


@pytest.fixture(scope="module")
def hook_check(airflow_home: Any, s3_server: Any) -> dict[str, Any]:
    """What hook_check.py saw, in one Airflow process (connections from AIRFLOW_CONN_*)."""
    endpoint = s3_server.endpoint_url
    env = airflow_env(
        airflow_home,
        HERE / "dags",
        endpoint,
        AIRFLOW__LORE__ENDPOINT_URL="",
        AIRFLOW_CONN_LORE_CONN_CHECK=json.dumps(CHECK_CONN),
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(DEFAULT_CONN),
        AWS_ACCESS_KEY_ID="key-from-env",
        AWS_SECRET_ACCESS_KEY="secret-from-env",
        PYTHONPATH=example_setup.subprocess_pythonpath(REPO, str(HERE / "handlers")),
    )
    proc = subprocess.run(
        [sys.executable, str(HERE / "hook_check.py")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_client_gets_endpoint_region_credentials_and_config_from_the_connection(
    hook_check: dict[str, Any],
) -> None:
    out = hook_check
    conn = out["conn"]
    assert (conn["endpoint"], conn["region"]) == ("http://conn-endpoint:9000", "eu-west-3")
    assert (conn["access_key"], conn["secret_key"]) == ("AKIDFROMCONN", "secret-from-conn")
    # Lore's defaults under the connection's config_kwargs: the connection's win where set.
    assert conn["read_timeout"] == 11 and conn["retries"]["mode"] == "adaptive"
    assert conn["connect_timeout"] == 5.0
    assert conn["request_checksum_calculation"] == conn["response_checksum_validation"] == "when_required"
    # config= on the hook wins over both.
    assert out["given"]["read_timeout"] == 99 and out["given"]["retries"]["mode"] == "adaptive"
    # [lore] endpoint_url / region (here: arguments) override the connection's; its credentials stay.
    over = out["overridden"]
    assert (over["endpoint"], over["region"], over["access_key"]) == ("http://override:1", "ap-south-2", "AKIDFROMCONN")
    assert out["tracker"] == ["conn-bucket", "LoreTracker"]
    assert out["hook_attrs"] == ["aws_conn_id", "aws_default", "aws", "Lore (Amazon S3)"]


def test_aws_default_by_default_and_boto3_chain_without_a_connection(hook_check: dict[str, Any]) -> None:
    out = hook_check
    assert out["default_conn_id"] == out["settings_conn_id"] == "aws_default"
    default = out["default"]
    assert (default["endpoint"], default["access_key"]) == ("http://default-endpoint:9000", "AKIDDEFAULT")
    assert default["retries"] == {"mode": "standard", "total_max_attempts": 6}
    assert default["request_checksum_calculation"] == "when_required"
    chain = out["chain"]  # a connection id that does not exist: boto3's chain, as AwsBaseHook does
    assert (chain["access_key"], chain["endpoint"]) == ("key-from-env", "https://s3.amazonaws.com")
    assert out["no_conn"]["access_key"] == "key-from-env"  # aws_conn_id="": no connection at all


def test_one_hook_client_and_tracker_per_process(hook_check: dict[str, Any]) -> None:
    out = hook_check
    assert out["one_hook"] and out["cached_tracker"] and out["one_client"]
    assert out["one_client_across_stores"]


def test_dotted_path_errors_name_the_path_and_no_handler_names_the_ways(hook_check: dict[str, Any]) -> None:
    errors = hook_check["errors"]
    assert errors["no_such_module_xyz:fn"].startswith("handler 'no_such_module_xyz:fn': cannot import")
    assert errors["lore_replay_handlers:missing"] == (
        "handler 'lore_replay_handlers:missing': 'lore_replay_handlers' has no attribute 'missing'"
    )
    assert "is not callable" in errors["lore_replay_handlers:NOT_CALLABLE"]
    assert "is not a dotted path" in errors["nodots"]
    assert errors["none"].startswith("no handler to replay step 'some_dag.bash_task' of 'raw/x.csv': pass handler=")
    assert "handler_name=" in errors["none"] and "@task" in errors["none"]


def test_connection_endpoint_is_honoured_by_callbacks_and_the_sensor(
    run_dags: RunDags, make_bucket: Any, s3_server: Any
) -> None:
    """No endpoint in the DAGs nor in [lore]: only aws_default's extra points at the S3 server."""
    bucket = make_bucket()
    conn = {"conn_type": "aws", "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"}}
    result = run_dags(
        ["conn_source", "conn_find"],
        LORE_TEST_BUCKET=bucket,
        AIRFLOW__LORE__ENDPOINT_URL="",
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(conn),
    )
    source = result["conn_source"]
    assert source["tis"]["copy"]["state"] == "success" and source["tis"]["broken"]["state"] == "failed"
    tracker = LoreTracker(bucket=bucket, s3_client=s3_server.client())
    entry = tracker.get_history("conn/in.csv").entries[-1]
    assert (entry.step, str(entry.status), entry.output) == ("conn_source.copy", "success", "copied")
    assert tracker.get_history("conn/out.csv").derived_from[0].file_key == "conn/in.csv"
    assert [(f.file_key, f.step) for f in tracker.list_failed()] == [("conn/bad.csv", "conn_source.broken")]
    # The sensor's client came from the same connection: it found the failure (poke mode, 30 s timeout).
    assert result["conn_find"]["state"] == "success"
    assert "1 failed entry match" in result["_log"]
