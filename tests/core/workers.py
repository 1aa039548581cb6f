"""Process entry points for the multi-process tests (importable by spawned children)."""

from __future__ import annotations

from lore_core import LoreTracker


def run_steps(url: str, endpoint_url: str | None, file_key: str, worker: int, runs: int) -> list[str]:
    tracker = LoreTracker.from_url(url, endpoint_url=endpoint_url, region="us-east-1")
    ids = []
    for i in range(runs):
        result = tracker.run(
            file_key,
            step=f"w{worker}",
            handler=lambda ctx: ctx.input,
            input={"worker": worker, "run": i},
            produces=[f"derived/w{worker}-{i}"],
        )
        ids.append(result.entry_id)
    return ids
