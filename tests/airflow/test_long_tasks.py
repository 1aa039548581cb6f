"""Tasks that outlive the lease (issue 8, "a real success is stored as a failure").

Before, neither the callbacks nor the listener renewed the lease of the entries they
started: a task running longer than ``lease_seconds`` read as abandoned, a success of
the same step on the file turned it into ``failed/LeaseExpired``, and the task's own
success was refused. Now both begin the step with the core's ``tracker.begin()``,
whose heartbeat renews the lease (``[lore] lease_seconds``) until the task ends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker, StepStatus

from .conftest import RunDags

LEASE = 1.0
TASKS = {
    "listener": ("slow_listened", "slow/listened.csv"),
    "callbacks": ("slow_called", "slow/called.csv"),
}


@pytest.fixture(scope="module")
def long_run(
    run_dags: RunDags, make_bucket: Any, s3_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    bucket = make_bucket()
    state = tmp_path_factory.mktemp("lease_state")
    result = run_dags(
        ["long_tasks"],
        LORE_TEST_BUCKET=bucket,
        LORE_TEST_ENDPOINT=s3_server.endpoint_url,
        LORE_TEST_STATE_DIR=str(state),
        AIRFLOW__LORE__STORE=f"s3://{bucket}/.lore-s3",
        AIRFLOW__LORE__LEASE_SECONDS=str(LEASE),
        AIRFLOW__LORE__FIRST_HEARTBEAT_SECONDS="0.2",
    )
    return {
        "result": result["long_tasks"],
        "log": result["_log"],
        "tracker": LoreTracker(bucket=bucket, s3_client=s3_server.client()),
        "state": Path(state),
    }


@pytest.mark.parametrize("path", sorted(TASKS))
def test_a_task_longer_than_the_lease_keeps_it_and_ends_success(long_run: dict[str, Any], path: str) -> None:
    task_id, key = TASKS[path]
    assert long_run["result"]["tis"][task_id]["state"] == "success", long_run["log"][-4000:]
    probe = json.loads((long_run["state"] / f"lease-{path}.json").read_text())
    # Twice the lease into the task: still running, the configured lease renewed, not listed as failed.
    assert probe["status"] == "running" and probe["abandoned"] is False
    assert 0 < probe["lease_left"] <= LEASE + 0.5, probe
    assert probe["listed"] == []

    tracker: LoreTracker = long_run["tracker"]
    history = tracker.get_history(key)
    assert history is not None
    slow, other = history.entries
    assert slow.step == other.step == f"long_tasks.{task_id}"
    # The slow task's own success is recorded, after the other run's: never turned into a failure.
    assert slow.status is StepStatus.SUCCESS and slow.error is None and slow.resolved_by is None
    assert slow.output == "outlived the lease"
    assert other.status is StepStatus.SUCCESS
    assert list(tracker.list_failed()) == []
    assert "LeaseExpired" not in long_run["log"]
    assert "could not record" not in long_run["log"]
