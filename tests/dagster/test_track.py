"""``LoreResource.track()`` is the core's one step lifecycle (issue 8, "a real success is stored as a failure").

Before, ``track()`` called ``start``/``succeed`` itself and never renewed the lease: a
block running longer than the lease read as abandoned, a success of the same step on
the file turned it into ``failed/LeaseExpired``, and the block's own success was
refused. Now it is ``tracker.track()``, whose heartbeat renews the lease while the
block runs.
"""

import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from lore_core import StepStatus
from lore_dagster import LoreResource

LEASE = 1.0


def test_a_track_block_longer_than_the_lease_keeps_it_and_ends_success(
    bucket: str, s3_endpoint: str, instance: dg.DagsterInstance
) -> None:
    lore = LoreResource(
        store=f"s3://{bucket}/.lore-s3", endpoint_url=s3_endpoint, lease_seconds=LEASE, first_heartbeat_seconds=0.2
    )
    seen: dict[str, Any] = {}

    @dg.asset
    def slow_copy(lore: LoreResource) -> None:
        with lore.track("in/slow.csv", produces=["out/slow.json"]) as step:
            time.sleep(LEASE * 2.5)
            tracker = lore.get_tracker()
            history = tracker.get_history("in/slow.csv")
            assert history is not None
            running = history.entries[-1]
            seen["during"] = (running.id == step.entry_id, running.status, running.abandoned)
            assert running.lease_expires_at is not None
            seen["lease_left"] = (running.lease_expires_at - datetime.now(UTC)).total_seconds()
            seen["listed"] = [f.entry_id for f in tracker.list_failed()]
            # Another run of the same step on this file finishes meanwhile.
            tracker.record("in/slow.csv", step="slow_copy", status="success")
            step.output = {"rows": 2}

    assert dg.materialize([slow_copy], resources={"lore": lore}, instance=instance).success

    # Two and a half leases into the block: still running, the configured lease renewed, never listed as failed.
    assert 0 < seen.pop("lease_left") <= LEASE + 0.5, seen
    assert seen == {"during": (True, StepStatus.RUNNING, False), "listed": []}
    tracker = lore.get_tracker()
    history = tracker.get_history("in/slow.csv")
    assert history is not None
    slow, other = history.entries
    assert slow.step == other.step == "slow_copy"
    assert slow.status is StepStatus.SUCCESS and slow.error is None and slow.resolved_by is None
    assert slow.output == {"rows": 2}
    assert other.status is StepStatus.SUCCESS
    assert list(tracker.list_failed()) == []
    assert tracker.get_descendants("in/slow.csv") == ["out/slow.json"]


def test_track_tracking_errors_are_logged_or_raised_as_configured(
    s3_endpoint: str, instance: dg.DagsterInstance, caplog: Any
) -> None:
    """One policy (lore_core.integration): logged at ERROR and the asset stands, or TrackingError."""
    from lore_core.integration import TrackingError

    ran: list[str] = []

    @dg.asset
    def writes_elsewhere(lore: LoreResource) -> None:
        with lore.track("in/a.csv") as step:
            ran.append("body")
            step.output = {"rows": 1}

    broken = "s3://lore-no-such-bucket-zz/.lore-s3"
    with caplog.at_level("ERROR", logger="lore_dagster"):
        lenient = {"lore": LoreResource(store=broken, endpoint_url=s3_endpoint)}
        assert dg.materialize([writes_elsewhere], resources=lenient, instance=instance).success
    assert ran == ["body"]
    assert any(
        "could not record writes_elsewhere on 'in/a.csv' (the step ran untracked)" in r.getMessage()
        and "BucketNotFoundError" in r.getMessage()
        for r in caplog.records
    )

    strict = {"lore": LoreResource(store=broken, endpoint_url=s3_endpoint, raise_on_error=True)}
    result = dg.materialize([writes_elsewhere], resources=strict, instance=instance, raise_on_error=False)
    assert not result.success
    assert ran == ["body"]  # the start failed: the block never ran
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error is not None and error.cause is not None and error.cause.cls_name == TrackingError.__name__
