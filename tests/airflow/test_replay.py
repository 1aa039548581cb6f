"""Failed entries are found by the sensor (poke/reschedule and deferrable through the
trigger) and fixed by the mapped replay operator: real dag.test() runs in subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from lore_core import LoreTracker

from .conftest import HERE, REPO, RunDags, airflow_env, example_setup


def _env(bucket: str, endpoint: str) -> dict[str, str]:
    # replay_source is tracked by the plugin's listener: the store comes from [lore] config.
    return {
        "LORE_TEST_BUCKET": bucket,
        "LORE_TEST_ENDPOINT": endpoint,
        "AIRFLOW__LORE__STORE": f"s3://{bucket}/.lore-s3",
    }


def test_sensor_and_mapped_replay_fix_failed_entries(run_dags: RunDags, make_bucket: Any, s3_server: Any) -> None:
    bucket = make_bucket()
    tracker = LoreTracker(bucket=bucket, s3_client=s3_server.client())
    first = run_dags(["replay_source"], **_env(bucket, s3_server.endpoint_url))
    assert first["replay_source"]["state"] == "failed"
    failed = sorted((f.file_key, f.step) for f in tracker.list_failed())
    assert failed == [
        ("incoming/bad-1.csv", "replay_source.validate"),
        ("incoming/bad-2.csv", "replay_source.validate"),
    ]
    originals = {f.file_key: f.entry_id for f in tracker.list_failed()}

    fix = run_dags(["replay_fix"], **_env(bucket, s3_server.endpoint_url))["replay_fix"]
    assert fix["state"] == "success"
    assert fix["tis"]["find_failures"]["state"] == "success"
    assert {k: v["state"] for k, v in fix["tis"].items() if k.startswith("replay[")} == {
        "replay[0]": "success",
        "replay[1]": "success",
    }
    assert list(tracker.list_failed()) == []
    for key, original_id in originals.items():
        doc = tracker.get_history(key)
        replay = doc.entries[-1]
        assert replay.replay_of == original_id and str(replay.status) == "success"
        # The registered handler ran with the recorded input of the failed entry.
        assert replay.input == {"op_kwargs": {"name": key.split("/")[-1]}}
        assert replay.output == {"validated": key}
        assert replay.orchestrator.job == "replay_fix" and replay.orchestrator.task == "replay"
        assert doc.entry(original_id).resolved_by == replay.id
    assert [str(e.status) for e in tracker.get_history("incoming/good-1.csv").entries] == ["success"]


def test_deferrable_sensor_pokes_once_and_does_not_defer_when_entries_exist(
    run_dags: RunDags, make_bucket: Any, s3_server: Any
) -> None:
    bucket = make_bucket()
    tracker = LoreTracker(bucket=bucket, s3_client=s3_server.client())
    result = run_dags(["replay_source", "replay_fix_deferrable"], **_env(bucket, s3_server.endpoint_url))
    fix = result["replay_fix_deferrable"]
    assert fix["state"] == "success"
    assert fix["tis"]["replay[0]"]["state"] == fix["tis"]["replay[1]"]["state"] == "success"
    # The failures existed before the sensor ran: its one poke found them, no trip through the triggerer.
    assert "Pausing task as DEFERRED" not in result["_log"]
    assert "2 failed entries match; not deferring" in result["_log"]
    assert list(tracker.list_failed()) == []
    for key in ("incoming/bad-1.csv", "incoming/bad-2.csv"):
        last = tracker.get_history(key).entries[-1]
        assert last.replay_of is not None and last.output == {"validated": key}


def test_sensor_defers_by_default_deferrable_and_the_trigger_finds_a_later_failure(
    run_dags: RunDags, make_bucket: Any, s3_server: Any
) -> None:
    bucket = make_bucket()
    store = f"s3://{bucket}/.lore-s3"
    spec = "|".join(["deferred_wait", "wait", store, s3_server.endpoint_url, "late/b.csv", "other_dag.load"])
    result = run_dags(
        ["deferred_wait"],
        LORE_TEST_FAIL_WHEN_DEFERRED=spec,
        AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True",
        **_env(bucket, s3_server.endpoint_url),
    )
    assert result["deferred_wait"]["state"] == "success"
    assert result["deferred_wait"]["reschedules"] == 0
    log = result["_log"]
    # deferrable came from [operators] default_deferrable: the sensor poked once, found nothing, deferred.
    assert "no failed entry matches yet; deferring to LoreFailedEntryTrigger" in log
    assert "Pausing task as DEFERRED" in log
    assert "recorded late/b.csv after deferred_wait.wait was deferred" in log
    assert [f.file_key for f in LoreTracker(bucket=bucket, s3_client=s3_server.client()).list_failed()] == [
        "late/b.csv"
    ]


def test_replay_handler_by_dotted_path(run_dags: RunDags, make_bucket: Any, s3_server: Any) -> None:
    bucket = make_bucket()
    tracker = LoreTracker(bucket=bucket, s3_client=s3_server.client())
    env = _env(bucket, s3_server.endpoint_url)
    env["PYTHONPATH"] = example_setup.subprocess_pythonpath(REPO, str(HERE / "handlers"))
    result = run_dags(["replay_source", "replay_fix_dotted"], **env)
    assert result["replay_fix_dotted"]["state"] == "success"
    assert list(tracker.list_failed()) == []
    for key in ("incoming/bad-1.csv", "incoming/bad-2.csv"):
        last = tracker.get_history(key).entries[-1]
        assert last.replay_of is not None and str(last.status) == "success"
        assert last.output == {"validated_by": "dotted path", "file": key}


def test_trigger_polls_until_a_matching_failure_exists(airflow_home: Any, make_bucket: Any, s3_server: Any) -> None:
    bucket = make_bucket()
    env = airflow_env(airflow_home, HERE / "dags", s3_server.endpoint_url)
    proc = subprocess.run(
        [sys.executable, str(HERE / "trigger_check.py"), bucket, s3_server.endpoint_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["classpath"] == "lore_airflow.triggers.LoreFailedEntryTrigger"
    assert out["kwargs"]["prefix"] == "waiting/"
    assert out["fired_before_failure"] is False and out["empty_polls_before"] == 0
    assert out["filtered"] == {
        "all": ["elsewhere/x.csv", "waiting/late.csv"],
        "step": ["elsewhere/x.csv"],
        "dag": ["waiting/late.csv"],
        "dag_task": ["waiting/late.csv"],
        "wrong_task": [],
        "limit": 1,
    }
    assert out["payload"]["status"] == "success"
    assert [(e["file_key"], e["entry_id"], e["step"]) for e in out["payload"]["entries"]] == [
        ("waiting/late.csv", out["entry_id"], "late_dag.load")
    ]


def test_sensor_in_reschedule_mode_waits_then_finds_a_later_failure(
    run_dags: RunDags, make_bucket: Any, s3_server: Any
) -> None:
    bucket = make_bucket()
    store = f"s3://{bucket}/.lore-s3"
    spec = "|".join(["reschedule_wait", "wait", store, s3_server.endpoint_url, "late/a.csv", "other_dag.load"])
    result = run_dags(["reschedule_wait"], LORE_TEST_FAIL_WHEN_RESCHEDULED=spec, **_env(bucket, s3_server.endpoint_url))
    run = result["reschedule_wait"]
    assert run["state"] == "success"
    assert run["reschedules"] >= 1  # the first poke found nothing and gave its slot back
    assert "recorded late/a.csv after reschedule_wait.wait was rescheduled" in result["_log"]
