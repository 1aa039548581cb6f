"""A DAG whose tasks outlive a short ``[lore] lease_seconds`` (issue 8); see test_long_tasks.py.

Each task sleeps past the lease, then writes what its file's history said meanwhile
to ``LORE_TEST_STATE_DIR/lease-<name>.json`` and records a second success of its own
step on the file, as another run of the same step finishing meanwhile would.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from airflow.sdk import DAG, Asset, task

from lore_airflow import lore_callbacks

BUCKET = os.environ.get("LORE_TEST_BUCKET", "lore-test-bucket")
ENDPOINT = os.environ.get("LORE_TEST_ENDPOINT")
STATE_DIR = Path(os.environ.get("LORE_TEST_STATE_DIR", "/tmp"))
LEASE = float(os.environ.get("AIRFLOW__LORE__LEASE_SECONDS") or 600)


def outlive_the_lease(name: str, key: str, step: str) -> str:
    from lore_core import LoreTracker, make_s3_client

    time.sleep(LEASE * 2)
    tracker = LoreTracker(bucket=BUCKET, s3_client=make_s3_client(endpoint_url=ENDPOINT))
    history = tracker.get_history(key)
    running = history.entries[-1] if history is not None else None
    probe = {
        "status": str(running.status) if running else None,
        "abandoned": running.abandoned if running else None,
        "lease_left": (
            (running.lease_expires_at - datetime.now(UTC)).total_seconds()
            if running is not None and running.lease_expires_at is not None
            else None
        ),
        "listed": [f.entry_id for f in tracker.list_failed(prefix="slow/")],
    }
    tracker.record(key, step, "success")
    (STATE_DIR / f"lease-{name}.json").write_text(json.dumps(probe))
    return "outlived the lease"


with DAG("long_tasks", schedule=None):

    @task(inlets=[f"s3://{BUCKET}/slow/listened.csv"], outlets=[Asset(f"s3://{BUCKET}/slow-out/listened.csv")])
    def slow_listened() -> str:
        return outlive_the_lease("listener", "slow/listened.csv", "long_tasks.slow_listened")

    @task(
        inlets=[Asset(f"s3://{BUCKET}/slow/called.csv")],
        **lore_callbacks(store=f"s3://{BUCKET}/.lore-s3", endpoint_url=ENDPOINT),
    )
    def slow_called() -> str:
        return outlive_the_lease("callbacks", "slow/called.csv", "long_tasks.slow_called")

    slow_listened() >> slow_called()
