"""Process entry points for the multi-process tests (importable by spawned children)."""

from __future__ import annotations

from lore_core import LoreTracker, StepContext


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


def run_steps_with_faults(endpoint_url: str, bucket: str, file_keys: list[str], worker: int, runs: int) -> list[str]:
    """Steps through a fault-injecting proxy; short read timeouts so delayed answers time out."""
    from lore_core import make_s3_client

    client = make_s3_client(endpoint_url, "us-east-1", read_timeout=1.0, connect_timeout=1.0)
    tracker = LoreTracker(bucket=bucket, s3_client=client)
    ids = []
    for i in range(runs):
        key = file_keys[(worker + i) % len(file_keys)]
        result = tracker.run(key, step=f"w{worker}", handler=lambda ctx: ctx.input, input={"worker": worker, "run": i})
        ids.append(result.entry_id)
    return ids


def hang_in_step(url: str, endpoint_url: str | None, file_key: str, lease_seconds: float, mark_running: bool) -> None:
    """Start a tracked step that never ends (the test kills this process with SIGKILL)."""
    import sys
    import threading

    tracker = LoreTracker.from_url(
        url, endpoint_url=endpoint_url, region="us-east-1", lease_seconds=lease_seconds, mark_running=mark_running
    )

    def forever(ctx: StepContext) -> None:
        ctx.wait_started()  # the running entry is written while the step runs: announce it once it is
        print(f"started {ctx.entry_id}", flush=True)
        threading.Event().wait()

    tracker.run(file_key, step="slow", handler=forever, input={"n": 1})
    sys.exit("unreachable: the step never returns")


if __name__ == "__main__":
    import json
    import sys

    args = json.loads(sys.argv[1])
    hang_in_step(**args)


def write_until_killed(root: str, file_key: str, pause_in_rename_after: int) -> None:
    """Write steps to a file store; after ``pause_in_rename_after`` steps, stop inside a write,
    between the temporary file and the rename, and wait there to be killed (-1: never pause)."""
    import os
    import sys
    import threading

    from lore_core.stores import file as file_store

    tracker = LoreTracker.from_url(f"file://{root}", max_value_bytes=8 * 1024 * 1024)
    real_replace = os.replace
    payload = {"blob": "x" * 500_000}

    def paused_replace(src: str, dst: str) -> None:
        print(f"paused {src}", flush=True)
        threading.Event().wait()

    for i in range(10_000):
        if i == pause_in_rename_after:
            file_store.os.replace = paused_replace  # type: ignore[attr-defined]
        tracker.run(file_key, step="s", handler=lambda ctx: None, input={**payload, "i": i})
        print(f"done {i}", flush=True)
    file_store.os.replace = real_replace  # type: ignore[attr-defined]
    sys.exit(0)
