"""issue 8, defect 2: the failure index must agree with the histories.

``list_failed()`` never returns an entry whose history says it succeeded (or that no history
holds), nor one still running within its lease; it returns every unresolved failure and every
running entry whose lease expired. Today the index is written before the history and before the
transition is checked, and running markers are remembered in the tracker's memory only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest

from lore_core import HistoryNotFoundError, LoreError, LoreTracker, StepStatus
from lore_core.testing import LocalS3Server

from .support import SimulatedCrash, WriteCounter, open_tracker, wait_for

# ---------------------------------------------------------------------------------------------- helpers


def listed(tracker: LoreTracker) -> set[tuple[str, str]]:
    return {(f.file_key, f.entry_id) for f in tracker.list_failed()}


def from_histories(tracker: LoreTracker) -> set[tuple[str, str]]:
    """What list_failed must say, computed from the histories themselves."""
    out: set[tuple[str, str]] = set()
    for doc in tracker.list_all_histories():
        for entry in doc.entries:
            if (entry.status is StepStatus.FAILED and entry.resolved_by is None) or entry.abandoned:
                out.add((doc.file_key, entry.id))
    return out


# ---------------------------------------------------------------------------------------------- transitions


def test_fail_after_success_is_refused_and_leaves_no_phantom_failure(
    store_url: str, request: pytest.FixtureRequest
) -> None:
    """issue 8, defect 2: ``fail()`` on an entry that already succeeded raises LoreError, and writes
    nothing to the failure index (today the index object is written before the check)."""
    tracker = open_tracker(store_url, request)
    entry_id = tracker.start("in/a.csv", step="s")
    tracker.succeed("in/a.csv", entry_id, output=1)

    with pytest.raises(LoreError):
        tracker.fail("in/a.csv", entry_id, RuntimeError("too late"))

    reader = open_tracker(store_url, request)
    history = reader.get_history("in/a.csv")
    entry = history.entry(entry_id) if history is not None else None
    assert entry is not None and entry.status is StepStatus.SUCCESS and entry.error is None
    assert list(reader.list_failed()) == []
    assert reader.get_failed_steps("in/a.csv") == []


def test_failed_record_whose_history_write_fails_leaves_nothing_in_the_index(
    s3_server: LocalS3Server, s3_client: Any, bucket: str
) -> None:
    """issue 8, defect 2: ``record(status='failed')`` whose history write never lands must not leave
    an index object for an entry that does not exist (today: list_failed reports it and its replay
    raises HistoryNotFoundError)."""
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, outage_timeout=0)
    tracker.record("seed", step="s")  # the store's first write (and any check it makes) is behind us

    def refuse_history_writes(request: Any, **kwargs: Any) -> None:
        path = unquote(request.url.split("?", 1)[0])
        if request.method == "PUT" and path.endswith("/.lore-s3/in/b.csv.json"):
            raise SimulatedCrash("the history write of in/b.csv never lands")

    s3_client.meta.events.register_first("before-send.s3.*", refuse_history_writes)
    with pytest.raises(Exception):  # noqa: B017 - whatever the crash surfaces as
        tracker.record("in/b.csv", step="s", status="failed", error="boom")

    reader = LoreTracker(bucket=bucket, s3_client=s3_server.client())
    assert reader.get_history("in/b.csv") is None
    for failure in reader.list_failed():
        try:
            reader.replay(failure.file_key, failure.entry_id, handler=lambda ctx: None)
        except HistoryNotFoundError as exc:
            pytest.fail(f"list_failed reported {failure.entry_id} on {failure.file_key!r}, which has no history: {exc}")
    assert list(reader.list_failed()) == []


# ---------------------------------------------------------------------------------------------- markers


@pytest.fixture()
def s3_url(bucket: str) -> str:
    return f"s3://{bucket}/.lore-s3"


def _control(tracker: LoreTracker) -> tuple[str, str]:
    """A running entry whose worker dies (marked, never finished): list_failed must report it once
    its lease expires, which tells the test that any other leaked marker would be reported too."""
    entry_id = tracker.start("control/dead.csv", step="s")
    tracker.heartbeat("control/dead.csv", entry_id)
    return ("control/dead.csv", entry_id)


def _wait_until_reported(reader: LoreTracker, control: tuple[str, str]) -> set[tuple[str, str]]:
    return wait_for(lambda: listed(reader) if control in listed(reader) else None, "the control lease to expire")


def test_marker_is_removed_when_another_tracker_finishes_the_entry(s3_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 2: tracker A marks a running entry (mark_running + heartbeat), a separate
    tracker B succeeds it; once the lease has expired, list_failed does not report it (today the
    marker is known to A's memory only and leaks: the success reads as abandoned forever)."""
    a = open_tracker(s3_url, request, lease_seconds=1, mark_running=True)
    b = open_tracker(s3_url, request, lease_seconds=1)
    entry_id = a.start("in/a.csv", step="s")
    a.heartbeat("in/a.csv", entry_id)
    b.succeed("in/a.csv", entry_id, output="done by B")
    control = _control(a)

    reader = open_tracker(s3_url, request, lease_seconds=1)
    assert _wait_until_reported(reader, control) == {control}
    history = reader.get_history("in/a.csv")
    assert history is not None and history.entries[0].status is StepStatus.SUCCESS


def test_late_success_by_another_tracker_clears_the_abandoned_report(
    s3_url: str, request: pytest.FixtureRequest
) -> None:
    """issue 8, defects 1 and 2: A's marked entry outlives its lease and is reported abandoned; a
    separate tracker B then records its (late) success: accepted, and list_failed forgets it."""
    a = open_tracker(s3_url, request, lease_seconds=1, mark_running=True)
    b = open_tracker(s3_url, request, lease_seconds=1)
    entry_id = a.start("in/slow.csv", step="s")
    a.heartbeat("in/slow.csv", entry_id)
    reader = open_tracker(s3_url, request, lease_seconds=1)
    reported = wait_for(lambda: list(reader.list_failed()), "the lease to expire")
    assert [(f.file_key, f.entry_id, f.abandoned) for f in reported] == [("in/slow.csv", entry_id, True)]

    b.succeed("in/slow.csv", entry_id, output="finally")

    assert list(reader.list_failed()) == []
    history = reader.get_history("in/slow.csv")
    entry = history.entry(entry_id) if history is not None else None
    assert entry is not None and entry.status is StepStatus.SUCCESS and entry.error is None


def test_heartbeat_of_a_finished_entry_leaves_no_marker(s3_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 2: ``heartbeat()`` that finds its entry already finished (another tracker
    succeeded it) must not leave a running marker (today it writes one that nobody removes)."""
    a = open_tracker(s3_url, request, lease_seconds=1)
    b = open_tracker(s3_url, request, lease_seconds=1)
    entry_id = a.start("in/a.csv", step="s")
    b.succeed("in/a.csv", entry_id)
    with contextlib.suppress(LoreError):  # refusing the heartbeat is fine too
        a.heartbeat("in/a.csv", entry_id)
    control = _control(a)

    reader = open_tracker(s3_url, request, lease_seconds=1)
    assert _wait_until_reported(reader, control) == {control}


def test_clear_history_removes_the_marker_of_a_running_entry(s3_url: str, request: pytest.FixtureRequest) -> None:
    """issue 8, defect 2: ``clear_history()`` of a file with a marked running entry removes its
    marker (today the marker stays, and list_failed reports an entry no history holds)."""
    a = open_tracker(s3_url, request, lease_seconds=1, mark_running=True)
    b = open_tracker(s3_url, request, lease_seconds=1)
    entry_id = a.start("in/a.csv", step="s")
    a.heartbeat("in/a.csv", entry_id)
    b.clear_history("in/a.csv")
    control = _control(a)

    reader = open_tracker(s3_url, request, lease_seconds=1)
    assert _wait_until_reported(reader, control) == {control}
    history = reader.get_history("in/a.csv")
    assert history is not None and history.entries == []


# ---------------------------------------------------------------------------------------------- crash matrix

Setup = Callable[[LoreTracker, LoreTracker], Callable[[], object]]


def _record_failed(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    t.record("in/f.csv", step="s")
    return lambda: t.record("in/f.csv", step="s", status="failed", error="boom")


def _fail(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    entry_id = t.start("in/f.csv", step="s")
    return lambda: t.fail("in/f.csv", entry_id, RuntimeError("boom"))


def _succeed_resolving(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    t.record("in/f.csv", step="s", status="failed", error="boom")
    entry_id = t.start("in/f.csv", step="s")
    return lambda: t.succeed("in/f.csv", entry_id, output="fixed")


def _heartbeat(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    entry_id = t.start("in/f.csv", step="s")
    return lambda: t.heartbeat("in/f.csv", entry_id)


def _heartbeat_finished(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    entry_id = t.start("in/f.csv", step="s")
    other.succeed("in/f.csv", entry_id)
    return lambda: t.heartbeat("in/f.csv", entry_id)


def _clear_history(t: LoreTracker, other: LoreTracker) -> Callable[[], object]:
    t.record("in/f.csv", step="s", status="failed", error="boom")
    t.record("in/f.csv", step="r", status="failed", error="boom")
    t.record("in/f.csv", step="r")  # resolves the failure of r
    t.start("in/f.csv", step="m")  # marked at start (mark_running)
    t.start("in/g.csv", step="s")
    return lambda: t.clear_history("in/f.csv")


CASES: dict[str, tuple[Setup, dict[str, Any]]] = {
    "record(failed)": (_record_failed, {}),
    "fail()": (_fail, {}),
    "fail() with mark_running": (_fail, {"mark_running": True}),
    "succeed() resolving a failure": (_succeed_resolving, {}),
    "succeed() with mark_running": (_succeed_resolving, {"mark_running": True}),
    "heartbeat()": (_heartbeat, {}),
    "heartbeat() of a finished entry": (_heartbeat_finished, {}),
    "clear_history()": (_clear_history, {"mark_running": True}),
}


def test_list_failed_agrees_with_the_histories_after_a_crash_at_every_write(
    s3_server: LocalS3Server, bucket: str
) -> None:
    """issue 8, defect 2: for record(failed), fail(), succeed() of an entry resolving a failure,
    heartbeat() and clear_history(), the process dies at each of the operation's writes in turn
    (a botocore hook makes the k-th write and every later one raise); afterwards list_failed()
    equals what the histories say (failed and unresolved, or running past its lease). Each try
    gets a history prefix of its own in the bucket, and fresh clients and trackers."""
    mismatches: list[str] = []
    tries = iter(range(1_000_000))
    for name, (setup, options) in CASES.items():

        def attempt(
            crash_at: int | None, name: str = name, setup: Setup = setup, options: dict[str, Any] = options
        ) -> list[str]:
            prefix = f"crash-{next(tries)}"
            client = s3_server.client()
            counter = WriteCounter(bucket).install(client)
            common: dict[str, Any] = {"bucket": bucket, "prefix": prefix, "lease_seconds": 600}
            tracker = LoreTracker(s3_client=client, outage_timeout=0, **common, **options)
            other = LoreTracker(s3_client=s3_server.client(), **common)
            operation = setup(tracker, other)
            counter.writes.clear()
            counter.crash_at = crash_at
            try:
                operation()
            except (SimulatedCrash, LoreError):
                pass
            except Exception as exc:  # the crash may surface wrapped by botocore or Lore
                if "crashed at write" not in str(exc) and crash_at is not None:
                    raise
            writes = list(counter.writes)
            checker = LoreTracker(s3_client=s3_server.client(), **common)
            got = listed(checker)
            expected = from_histories(checker)
            if got != expected:
                where = "no crash" if crash_at is None else f"crash at write {crash_at}"
                mismatches.append(
                    f"{name}, {where}: list_failed() = {sorted(got)}, histories say {sorted(expected)} "
                    f"(writes: {writes})"
                )
            return writes

        writes = attempt(None)
        assert writes, f"{name} made no write"
        for k in range(1, len(writes) + 1):
            attempt(k)
    assert not mismatches, "\n".join(mismatches)
