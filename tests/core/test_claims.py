"""issue 8, defect 4: work is claimed.

Of two concurrent ``replay()`` calls of one failure (two sensors, two tracker instances), or two
concurrent ``run(skip_if_succeeded=True)`` of a step that never succeeded, exactly one runs the
handler; the other returns ``skipped`` naming the winner's entry. Today both run it and two
successes are recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from lore_core import LoreTracker, StepContext, StepResult, StepStatus

from .support import open_tracker

TIMEOUT_S = 20.0


class Race:
    """Runs two calls at once (a barrier releases both). The handler of whoever gets to run first
    blocks until the other call has returned, or until a second handler starts (the defect), with
    a timeout so the test cannot hang."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=TIMEOUT_S)
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.handler_runs: list[str] = []
        self.results: dict[str, StepResult] = {}
        self.errors: dict[str, BaseException] = {}

    def handler(self, ctx: StepContext) -> Any:
        with self.lock:
            self.handler_runs.append(ctx.entry_id)
            if len(self.handler_runs) > 1:
                self.release.set()  # both are running the handler: no point waiting any longer
        self.release.wait(TIMEOUT_S)
        return {"done_by": ctx.entry_id}

    def run(self, calls: dict[str, Callable[[], StepResult]]) -> None:
        def contestant(name: str, call: Callable[[], StepResult]) -> None:
            try:
                self.barrier.wait()
                self.results[name] = call()
            except BaseException as exc:
                self.errors[name] = exc
            finally:
                self.release.set()  # this call has returned: the other handler may finish

        threads = [threading.Thread(target=contestant, args=item, daemon=True) for item in calls.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(2 * TIMEOUT_S)
        assert not any(t.is_alive() for t in threads), "a contestant hung"

    def winner_and_loser(self) -> tuple[StepResult, StepResult]:
        assert len(self.handler_runs) == 1, f"the handler ran {len(self.handler_runs)} times"
        assert not self.errors, self.errors
        results = sorted(self.results.values(), key=lambda r: r.status != StepStatus.SUCCESS)
        assert [r.status for r in results] == [StepStatus.SUCCESS, StepStatus.SKIPPED], results
        winner, loser = results
        assert winner.entry_id == self.handler_runs[0]
        assert loser.entry_id == winner.entry_id, "the skipped call must name the winner's entry"
        return winner, loser


def _failed_entry(tracker: LoreTracker, file_key: str) -> str:
    def broken(ctx: StepContext) -> None:
        raise RuntimeError("disk full")

    result = tracker.run(file_key, step="convert", handler=broken, input={"dpi": 150})
    assert result.status == StepStatus.FAILED
    return result.entry_id


def test_two_concurrent_replays_of_one_failure_run_the_handler_once(
    store_url: str, request: pytest.FixtureRequest
) -> None:
    """issue 8, defect 4: two tracker instances replay the same failure at once: exactly one runs
    the handler, the other returns skipped with the winner's entry id; one success is recorded,
    and a third replay afterwards is skipped (already resolved) without running the handler."""
    first, second = open_tracker(store_url, request), open_tracker(store_url, request)
    failed = _failed_entry(first, "in/a.csv")
    race = Race()

    race.run(
        {
            "first": lambda: first.replay("in/a.csv", failed, handler=race.handler),
            "second": lambda: second.replay("in/a.csv", failed, handler=race.handler),
        }
    )

    winner, _ = race.winner_and_loser()
    reader = open_tracker(store_url, request)
    history = reader.get_history("in/a.csv")
    assert history is not None
    replays = [e for e in history.entries if e.replay_of == failed]
    assert [(e.id, e.status) for e in replays] == [(winner.entry_id, StepStatus.SUCCESS)]
    original = history.entry(failed)
    assert original is not None and original.resolved_by == winner.entry_id
    assert list(reader.list_failed()) == []

    third_runs: list[str] = []
    third = open_tracker(store_url, request).replay(
        "in/a.csv", failed, handler=lambda ctx: third_runs.append(ctx.entry_id)
    )
    assert third.status == StepStatus.SKIPPED and third.entry_id == winner.entry_id and third_runs == []


def test_two_concurrent_skip_if_succeeded_runs_run_the_handler_once(
    store_url: str, request: pytest.FixtureRequest
) -> None:
    """issue 8, defect 4: two tracker instances ``run(skip_if_succeeded=True)`` the same step on a
    file where it never succeeded: exactly one runs the handler, the other returns skipped naming
    the winner's entry; the history holds one entry of the step."""
    first, second = open_tracker(store_url, request), open_tracker(store_url, request)
    first.record("in/b.csv", step="upload")  # the file exists; "convert" never ran on it
    race = Race()

    race.run(
        {
            name: (
                lambda tracker=tracker: tracker.run(
                    "in/b.csv", step="convert", handler=race.handler, skip_if_succeeded=True
                )
            )
            for name, tracker in (("first", first), ("second", second))
        }
    )

    winner, _ = race.winner_and_loser()
    history = open_tracker(store_url, request).get_history("in/b.csv")
    assert history is not None
    converts = [(e.id, e.status) for e in history.entries if e.step == "convert"]
    assert converts == [(winner.entry_id, StepStatus.SUCCESS)]
