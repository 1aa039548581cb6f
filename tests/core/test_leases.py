"""A worker killed with SIGKILL mid-step: its running entry's lease runs out, and then it is
reported as abandoned, listed by list_failed and get_failed_steps, and replayable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lore_core import FailedEntry, LoreTracker, StepStatus

from .support import wait_for

WORKER = Path(__file__).with_name("workers.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["s3", "file"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    if request.param == "s3":
        return f"s3://{request.getfixturevalue('bucket')}", request.getfixturevalue("s3_endpoint")
    return (tmp_path / "bucket").as_uri(), None


def _start_worker(url: str, endpoint: str | None, lease: float, mark_running: bool) -> subprocess.Popen[str]:
    args = {
        "url": url,
        "endpoint_url": endpoint,
        "file_key": "work/item.bin",
        "lease_seconds": lease,
        "mark_running": mark_running,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.core.workers", json.dumps(args)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("mark_running", [False, True], ids=["heartbeat-marker", "marker-at-start"])
def test_killed_worker_leaves_an_abandoned_entry_that_is_listed_and_replayable(
    target: tuple[str, str | None], mark_running: bool
) -> None:
    url, endpoint = target
    lease = 1.5
    reader = LoreTracker.from_url(url, endpoint_url=endpoint, lease_seconds=lease)
    worker = _start_worker(url, endpoint, lease, mark_running)
    try:
        line = worker.stdout.readline() if worker.stdout else ""
        assert line.startswith("started "), line
        entry_id = line.split()[1]
        if not mark_running:
            # Without a marker at start, the heartbeat (at a third of the lease) marks the entry.
            wait_for(
                lambda: (
                    reader.get_history("work/item.bin").entry(entry_id).lease_expires_at  # type: ignore[union-attr]
                    > reader.get_history("work/item.bin").entry(entry_id).started_at  # type: ignore[union-attr]
                    + __import__("datetime").timedelta(seconds=lease)
                ),
                "a heartbeat",
            )
        assert list(reader.list_failed()) == []  # alive: not reported
    finally:
        worker.kill()
        worker.wait(timeout=30)

    failed: list[FailedEntry] = wait_for(lambda: list(reader.list_failed()), "the lease to expire")
    assert [(f.file_key, f.entry_id, f.step, f.abandoned) for f in failed] == [
        ("work/item.bin", entry_id, "slow", True)
    ]
    history = reader.get_history("work/item.bin")
    assert history is not None
    entry = history.entry(entry_id)
    assert entry is not None and entry.status is StepStatus.RUNNING and entry.abandoned
    assert [e.id for e in reader.get_failed_steps("work/item.bin")] == [entry_id]

    result = reader.replay("work/item.bin", entry_id, handler=lambda ctx: {"n": ctx.input["n"]})

    assert result.status == "success" and result.output == {"n": 1}
    old = reader.get_history("work/item.bin").entry(entry_id)  # type: ignore[union-attr]
    assert old is not None and old.status is StepStatus.FAILED and old.resolved_by == result.entry_id
    assert old.error is not None and old.error.name == "LeaseExpired"
    assert list(reader.list_failed()) == [] and reader.get_failed_steps("work/item.bin") == []


def test_a_live_step_is_not_replayable_without_force(tracker_factory: Any = None) -> None:
    tracker = LoreTracker.from_url("memory://lease-live", lease_seconds=600)
    entry_id = tracker.start("f", step="s")
    from lore_core import LoreError

    with pytest.raises(LoreError, match="still running"):
        tracker.replay("f", entry_id, handler=lambda ctx: None)
    assert tracker.get_failed_steps("f") == []
