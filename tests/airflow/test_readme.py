"""The README's Airflow block (marker ``<!-- test: airflow-replay -->``) is a DAG file that
works as written (issue 9): copied verbatim into a dags folder, its ``orders`` DAG fails
on a malformed file, and once the file is fixed its ``orders_fix`` DAG replays the
failure with the original task's callable, no handler given. Its only configuration is
the bucket (``ORDERS_BUCKET``) and the ``aws_default`` connection (``AIRFLOW_CONN_AWS_DEFAULT``,
endpoint in its extra): no endpoint anywhere else."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lore_core import LoreTracker

from .conftest import REPO, RunDags

MARKER = "<!-- test: airflow-replay -->"
BAD = "order_id;amount\n1;10\n"
GOOD = "id,amount\n1,10\n2,25\n"


def readme_block(marker: str = MARKER) -> str:
    """The ```python block right after ``marker`` in README.md, verbatim."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(re.escape(marker) + r"\n```python\n(.*?)\n```\n", text, re.S)
    assert found is not None, f"README.md has no ```python block right after {marker}"
    return found.group(1) + "\n"


def _env(bucket: str, endpoint: str) -> dict[str, str]:
    conn = {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    return {
        "ORDERS_BUCKET": bucket,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
        "AIRFLOW__LORE__ENDPOINT_URL": "",  # the conftest's default: the connection must be enough
    }


def _fail_then_fix(run_dags: RunDags, dags: Path, bucket: str, client: Any, endpoint: str) -> LoreTracker:
    client.put_object(Bucket=bucket, Key="raw/orders.csv", Body=BAD.encode())
    first = run_dags(["orders"], dags_folder=dags, **_env(bucket, endpoint))
    assert first["orders"]["tis"]["clean"]["state"] == "failed", first["_log"][-3000:]
    tracker = LoreTracker(bucket=bucket, s3_client=client)
    assert [(f.file_key, f.step) for f in tracker.list_failed()] == [("raw/orders.csv", "orders.clean")]
    client.put_object(Bucket=bucket, Key="raw/orders.csv", Body=GOOD.encode())
    return tracker


def _assert_replayed_by_clean(tracker: LoreTracker, client: Any, bucket: str) -> None:
    assert list(tracker.list_failed()) == []
    doc = tracker.get_history("raw/orders.csv")
    failed, replay = doc.entries[-2], doc.entries[-1]
    assert str(failed.status) == "failed" and "unexpected header 'order_id;amount'" in failed.error.message
    # The original callable ran again: its return value, its S3Hook write, and the failure resolved.
    assert (str(replay.status), replay.replay_of, replay.step) == ("success", failed.id, "orders.clean")
    assert replay.output == {"rows": 2}
    assert replay.produces == ["clean/orders.csv"]
    assert replay.orchestrator.job == "orders_fix" and replay.orchestrator.task == "replay"
    assert doc.entry(failed.id).resolved_by == replay.id
    assert client.get_object(Bucket=bucket, Key="clean/orders.csv")["Body"].read().decode() == GOOD.strip()
    assert [ref.file_key for ref in tracker.get_history("clean/orders.csv").derived_from] == ["raw/orders.csv"]


def test_readme_airflow_block_replays_a_failed_task_with_its_own_callable(
    run_dags: RunDags, make_bucket: Any, s3_server: Any, tmp_path: Path
) -> None:
    bucket, client = make_bucket(), s3_server.client()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "orders.py").write_text(readme_block(), encoding="utf-8")
    tracker = _fail_then_fix(run_dags, dags, bucket, client, s3_server.endpoint_url)
    # What the tracking recorded so the replay can find the callable again.
    ref = tracker.get_history("raw/orders.csv").entries[-1].metadata["airflowCallable"]
    assert ref["qualname"] == "clean" and ref["dagFile"] == "orders.py" and ref["module"].endswith("_orders")

    fix = run_dags(["orders_fix"], dags_folder=dags, **_env(bucket, s3_server.endpoint_url))
    assert fix["orders_fix"]["state"] == "success", fix["_log"][-4000:]
    assert fix["orders_fix"]["tis"]["replay[0]"]["state"] == "success"
    _assert_replayed_by_clean(tracker, client, bucket)


def test_replay_loads_the_original_dag_file_when_the_worker_has_not_parsed_it(
    run_dags: RunDags, make_bucket: Any, s3_server: Any, tmp_path: Path
) -> None:
    """A worker parses only the DAG file of the task it runs: with the fix DAG in a file of
    its own, the replay loads the failed task's DAG file from the dags folder."""
    bucket, client = make_bucket(), s3_server.client()
    dags = tmp_path / "dags"
    dags.mkdir()
    block = readme_block()
    (dags / "orders.py").write_text(block, encoding="utf-8")
    tracker = _fail_then_fix(run_dags, dags, bucket, client, s3_server.endpoint_url)
    imports, _, rest = block.partition("BUCKET = ")
    fix_only = (
        imports
        + "BUCKET = "
        + rest.split('with DAG("orders", ')[0]
        + 'with DAG("orders_fix"'
        + (rest.split('with DAG("orders_fix"', 1)[1])
    )
    (dags / "orders_fix.py").write_text(fix_only, encoding="utf-8")
    (dags / ".airflowignore").write_text("orders.py\n", encoding="utf-8")  # never parsed in this process

    fix = run_dags(["orders_fix"], dags_folder=dags, **_env(bucket, s3_server.endpoint_url))
    assert fix["orders_fix"]["state"] == "success", fix["_log"][-4000:]
    assert "DAG 'orders' not found" not in fix["_log"]
    assert re.search(r"Lore: loaded \S*orders\.py to replay orders\.clean", fix["_log"])
    _assert_replayed_by_clean(tracker, client, bucket)
