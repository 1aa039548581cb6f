"""Drive LoreFailedEntryTrigger by hand: it must keep polling while nothing failed and fire
once a failure is recorded. Usage: ``python trigger_check.py BUCKET ENDPOINT``; prints JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def main(bucket: str, endpoint: str) -> dict[str, Any]:
    from lore_airflow.triggers import LoreFailedEntryTrigger
    from lore_core import LoreTracker

    polls: list[int] = []
    first_poll = asyncio.Event()

    class CountingTrigger(LoreFailedEntryTrigger):
        def _find(self) -> list[dict[str, Any]]:
            found = super()._find()
            polls.append(len(found))
            first_poll.set()
            return found

    trigger = CountingTrigger(
        store=f"s3://{bucket}/.lore-s3", endpoint_url=endpoint, prefix="waiting/", poke_interval=0.05
    )
    # The triggerer rebuilds a trigger from serialize(): the round trip must be lossless.
    classpath, kwargs = LoreFailedEntryTrigger(**trigger.serialize()[1]).serialize()
    assert LoreFailedEntryTrigger(**kwargs).serialize() == (classpath, kwargs)
    events = trigger.run()
    pending = asyncio.ensure_future(anext(events))
    await asyncio.wait_for(first_poll.wait(), timeout=30)
    early = pending.done()
    tracker = LoreTracker.from_url(f"s3://{bucket}/.lore-s3", endpoint_url=endpoint)
    tracker.record("elsewhere/x.csv", "other.step", "failed", error="not under the prefix")
    entry = tracker.record("waiting/late.csv", "late_dag.load", "failed", error=ValueError("late"))
    event = await asyncio.wait_for(pending, timeout=30)

    from lore_airflow.config import LoreSettings
    from lore_airflow.triggers import find_failed_entries

    settings = LoreSettings(store=f"s3://{bucket}/.lore-s3", endpoint_url=endpoint)

    def keys(**filters: Any) -> list[str]:
        return sorted(e["file_key"] for e in find_failed_entries(settings, **filters))

    filtered = {
        "all": keys(),
        "step": keys(step="other.step"),
        "dag": keys(source_dag_id="late_dag"),
        "dag_task": keys(source_dag_id="late_dag", source_task_id="load"),
        "wrong_task": keys(source_dag_id="late_dag", source_task_id="validate"),
        "limit": len(keys(limit=1)),
    }
    return {
        "filtered": filtered,
        "classpath": classpath,
        "kwargs": kwargs,
        "fired_before_failure": early,
        "empty_polls_before": polls[0],
        "polls": len(polls),
        "payload": event.payload,
        "entry_id": entry.id,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
