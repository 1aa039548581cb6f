"""Which process records a step is never decided by PID (issue 9).

On Kubernetes, Docker or ECS executors step processes share PIDs. Before, every step process
whose PID matched recorded every failure and every ``lore/writes`` materialization of the run
it saw at teardown: a simulated shared PID recorded one output three times. Now an entry
recorded for a run event has an id derived from the event (the same in every process, so it
is written once), times from the event log, and a step whose inputs Lore loaded is recorded
by its own process (matched by step key), with those inputs. A real multiprocess run on a
real instance, every step process reporting the same PID."""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lore_core import StepStatus
from lore_dagster import LoreResource

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def shared_pid_run(
    monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance, lore: LoreResource, bucket: str, s3_endpoint: str
) -> dict[str, Any]:
    monkeypatch.setenv("LORE_TEST_BUCKET", bucket)
    monkeypatch.setenv("LORE_TEST_S3_ENDPOINT", s3_endpoint)
    monkeypatch.setenv("LORE_TEST_SHARED_PID", "4242")
    # Step processes import the job by module name from the repository root.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    from .shared_pid_pipelines import shared_pid_job

    with dg.execute_job(dg.reconstructable(shared_pid_job), instance=instance, raise_on_error=False) as result:
        assert not result.success  # two steps fail on purpose
        step_pids = {e.pid for e in result.all_events if e.is_step_event}
        return {"run_id": result.run_id, "step_pids": step_pids, "tracker": lore.get_tracker()}


def test_a_shared_pid_records_each_output_and_failure_once(shared_pid_run: dict[str, Any]) -> None:
    assert shared_pid_run["step_pids"] == {4242}, "every step process should report the shared PID"
    tracker, run_id = shared_pid_run["tracker"], shared_pid_run["run_id"]

    declared = tracker.get_history("declared/out.txt")
    assert declared is not None
    assert [(e.step, e.status, e.orchestrator.run_id) for e in declared.entries] == [
        ("declared", StepStatus.SUCCESS, run_id)
    ]

    root = tracker.get_history("assets/broken_root")
    assert root is not None
    (failed_root,) = root.entries
    assert failed_root.status is StepStatus.FAILED and failed_root.error.message == "broken_root cannot start"

    child = tracker.get_history("assets/broken_child")
    assert child is not None
    (failed_child,) = child.entries  # by its own process, which knows what it loaded
    assert failed_child.error.message == "broken_child cannot add 3 numbers"
    assert failed_child.input == ["assets/numbers"]

    assert sorted(f.file_key for f in tracker.list_failed()) == ["assets/broken_child", "assets/broken_root"]
    for key in ("assets/numbers", "assets/middle", *(f"assets/after_{i}" for i in range(3))):
        history = tracker.get_history(key)
        assert history is not None and len(history.entries) == 1, key
