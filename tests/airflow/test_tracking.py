"""Callbacks, listener, hook lineage, retries, mapping, cross-bucket lineage and tracking
errors, each proven by real dag.test() runs (one subprocess) against the local S3 server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker

from .conftest import RunDags

HTML_KEY = "odd/<img src=x onerror=alert(1)>.csv"
DAGS = [
    "cb_basic",
    "cb_fail",
    "cb_secrets",
    "listener_basic",
    "both_active",
    "retry_dag",
    "mapped_dag",
    "cross_bucket",
    "hook_lineage_dag",
    "tracking_errors",
]


@pytest.fixture(scope="module")
def world(
    run_dags: RunDags, make_bucket: Any, s3_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    b1, b2 = make_bucket(), make_bucket()
    client = s3_server.client()
    for key in ("hooked/in-1.csv", "hooked/in-2.csv"):
        client.put_object(Bucket=b1, Key=key, Body=b"order_id,amount\n1,10\n")
    state = tmp_path_factory.mktemp("state")
    result = run_dags(
        DAGS,
        LORE_TEST_BUCKET=b1,
        LORE_TEST_BUCKET2=b2,
        LORE_TEST_ENDPOINT=s3_server.endpoint_url,
        LORE_TEST_STATE_DIR=str(state),
        LORE_TEST_HTML_KEY=HTML_KEY,
        # The listener reaches S3 through the Airflow connection (endpoint_url in its extra) only.
        AIRFLOW__LORE__STORE=f"s3://{b1}/.lore-s3",
        AIRFLOW__LORE__AWS_CONN_ID="lore_s3",
        AIRFLOW__LORE__ENDPOINT_URL="",
        # Lore may write the second bucket too (test_cross_bucket_lineage); without this it never
        # would (test_write_scope.py).
        AIRFLOW__LORE__WRITABLE_BUCKETS=b2,
    )
    return {
        "result": result,
        "t1": LoreTracker(bucket=b1, s3_client=client),
        "t2": LoreTracker(bucket=b2, s3_client=client),
        "b1": b1,
        "b2": b2,
        "state": Path(state),
    }


def _only(t: LoreTracker, key: str) -> Any:
    doc = t.get_history(key)
    assert doc is not None, f"no history for {key}"
    assert len(doc.entries) == 1, [e.to_json_dict() for e in doc.entries]
    return doc.entries[0]


def test_callbacks_record_input_output_orchestrator_and_lineage(world: dict[str, Any]) -> None:
    t1, run = world["t1"], world["result"]["cb_basic"]
    assert run["state"] == "success"
    entry = _only(t1, "raw/orders.csv")
    assert entry.step == "cb_basic.clean"
    assert str(entry.status) == "success"
    # Rendered params and op_kwargs; the object JSON cannot hold is left out.
    assert entry.input == {"params": {"threshold": 5}, "op_kwargs": {"limit": 7}}
    assert entry.output == {"rows": 3, "limit": 7}
    orch = entry.orchestrator
    assert orch.system == "airflow" and orch.job == "cb_basic" and orch.task == "clean"
    assert orch.run_id == run["run_id"] and orch.try_number == 1 and orch.map_index is None
    assert "/dags/cb_basic/runs/" in orch.url and "/tasks/clean" in orch.url
    assert t1.get_descendants("raw/orders.csv") == ["clean/orders.parquet"]
    derived = t1.get_history("clean/orders.parquet")
    assert [(r.file_key, r.entry_id) for r in derived.derived_from] == [("raw/orders.csv", entry.id)]


def test_callbacks_record_failure_type_and_message(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    assert world["result"]["cb_fail"]["tis"]["clean_broken"]["state"] == "failed"
    entry = _only(t1, "raw/broken.csv")
    assert str(entry.status) == "failed"
    assert entry.error.name == "ValueError" and entry.error.message == "row 7 has no id"
    assert ("raw/broken.csv", entry.id) in {(f.file_key, f.entry_id) for f in t1.list_failed()}
    # A failed task derived nothing.
    assert t1.get_history("clean/broken.parquet") is None


def test_secrets_never_reach_the_bucket_through_callbacks_or_listener(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    raw = b"".join(
        t1.store.get(f".lore-s3/{key}.json").data for key in ("secret/in.csv", "secret/listened.csv")
    ).decode()
    for secret in ("k-LEAK-1", "pw-LEAK-2", "tok-LEAK-3", "pw-LEAK-4"):
        assert secret not in raw, secret
    failed = _only(t1, "secret/in.csv")
    assert failed.input == {"op_kwargs": {"api_key": "***", "rows": 3}}
    assert "password=***" in failed.error.message
    listened = _only(t1, "secret/listened.csv")
    assert listened.input == {"op_kwargs": {"db_password": "***"}}
    assert listened.output == {"session_token": "***", "ok": "yes"}


def test_listener_tracks_tasks_with_no_callbacks_through_the_connection(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    entry = _only(t1, "raw/listened.csv")  # a plain "s3://" string inlet
    assert entry.step == "listener_basic.convert" and str(entry.status) == "success"
    assert entry.output == [1, 2, 3]  # the return value, read back from XCom
    assert t1.get_descendants("raw/listened.csv") == ["clean/listened.parquet"]
    failed = _only(t1, HTML_KEY)
    assert failed.error.name == "RuntimeError"
    assert failed.error.message == "<script>alert('lore')</script> & bad row"


def test_callbacks_and_listener_together_record_once(world: dict[str, Any]) -> None:
    entry = _only(world["t1"], "raw/both.csv")
    assert entry.step == "both_active.both" and entry.output == "ok"


def test_retries_are_attempts_of_one_step(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    assert world["result"]["retry_dag"]["tis"]["flaky"] == {"state": "success", "try_number": 2}
    doc = t1.get_history("raw/flaky.csv")
    first, second = doc.entries
    assert (first.step, str(first.status), first.attempt, first.orchestrator.try_number) == (
        "retry_dag.flaky",
        "failed",
        1,
        1,
    )
    assert first.error.name == "ConnectionError"
    assert (second.step, str(second.status), second.attempt, second.orchestrator.try_number) == (
        "retry_dag.flaky",
        "success",
        2,
        2,
    )
    assert first.resolved_by == second.id
    assert "raw/flaky.csv" not in {f.file_key for f in t1.list_failed()}
    # With callbacks the failed try is recorded by on_retry_callback.
    doc = t1.get_history("raw/flaky-cb.csv")
    assert [(str(e.status), e.attempt, e.error.name if e.error else None) for e in doc.entries] == [
        ("failed", 1, "TimeoutError"),
        ("success", 2, None),
    ]
    assert doc.entries[1].output == "callbacks saw both tries"


def test_mapped_tasks_track_each_map_index_with_templated_keys(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    seen = {}
    for index, name in enumerate(["a.csv", "b.csv", "c.csv"]):
        entry = _only(t1, f"raw/{name}")
        assert entry.orchestrator.map_index == index
        assert entry.input == {"op_kwargs": {"name": name}}
        seen[name] = str(entry.status)
    assert seen == {"a.csv": "success", "b.csv": "success", "c.csv": "failed"}
    assert t1.get_descendants("raw/a.csv") == ["clean/a.csv.parquet"]
    assert t1.get_history("clean/c.csv.parquet") is None


def test_cross_bucket_lineage(world: dict[str, Any]) -> None:
    t1, t2, b1, b2 = world["t1"], world["t2"], world["b1"], world["b2"]
    source = _only(t1, "raw/cross.csv")
    assert t1.get_descendants("raw/cross.csv") == [f"s3://{b2}/published/cross.csv"]
    derived = t2.get_history("published/cross.csv")
    assert [(r.file_key, r.bucket, r.entry_id) for r in derived.derived_from] == [("raw/cross.csv", b1, source.id)]
    lineage = t2.get_lineage("published/cross.csv")
    assert [(p.bucket, p.file_key) for p in lineage.parents] == [(b1, "raw/cross.csv")]


def test_hook_lineage_tracks_s3hook_reads_and_writes_per_task(world: dict[str, Any]) -> None:
    t1 = world["t1"]
    assert world["result"]["hook_lineage_dag"]["state"] == "success"
    first = _only(t1, "hooked/in-1.csv")
    second = _only(t1, "hooked/in-2.csv")
    assert (first.step, str(first.status)) == ("hook_lineage_dag.copy_first", "success")
    assert (second.step, str(second.status)) == ("hook_lineage_dag.copy_second", "success")
    # The collector is shared by both tasks in this process: each task sees only its own I/O.
    assert t1.get_descendants("hooked/in-1.csv") == ["hooked/out-1.csv"]
    assert t1.get_descendants("hooked/in-2.csv") == ["hooked/out-2.csv"]


def test_tracking_failure_is_a_warning_unless_raise_on_error(world: dict[str, Any]) -> None:
    run = world["result"]["tracking_errors"]
    assert run["tis"]["tolerant"]["state"] == "success"
    assert run["tis"]["strict"]["state"] == "failed"
    log = world["result"]["_log"]
    # Logged at ERROR, naming what was not recorded and why; the task goes on untracked (the start
    # is written while the task runs, so the error is told when the task ends).
    assert (
        "lore: could not record tracking_errors.tolerant on 'raw/x.csv' (the step ran untracked): "
        "BucketNotFoundError" in log
    )
    # raise_on_error: the task fails with TrackingError (lore_airflow.LoreTrackingError), chained to the cause.
    assert (
        "TrackingError: Lore could not record the start of tracking_errors.strict on "
        "s3://lore-no-such-bucket/raw/y.csv: BucketNotFoundError" in log
    )
