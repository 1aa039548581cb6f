"""Regressions found reviewing the issue 8 rewrite: the document cache, archived entries, claims.

Each test failed on the first version of the rewrite (commit 45dd6b0..d6a656a).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from lore_core import LoreConfigError, LoreError, LoreTracker, StepStatus
from lore_core.keys import claim_key, history_key

from .support import open_tracker
from .test_faults import LandThenDrop


def _stored(tracker: LoreTracker, key: str) -> dict[str, Any]:
    found = tracker.store.get(history_key(tracker.prefix, key))
    assert found is not None
    return json.loads(found.data)  # type: ignore[no-any-return]


def test_a_history_handed_to_the_caller_shares_nothing_with_what_is_written(tracker: LoreTracker) -> None:
    """Changing what get_history() returned must never reach the bucket with the next write."""
    with tracker.track("a.csv", step="s", input={"rows": 1}) as ctx:
        ctx.output = {"n": [1, 2]}
    mine = tracker.get_history("a.csv")
    assert mine is not None
    mine.entries[0].input["rows"] = 999
    mine.entries[0].output["n"].append("EVIL")
    skipped = tracker.run("a.csv", step="s", handler=lambda ctx: None, skip_if_succeeded=True)
    skipped.output["n"].append("EVIL")
    with tracker.track("a.csv", step="other"):
        pass
    stored = _stored(tracker, "a.csv")["entries"][0]
    assert stored["input"] == {"rows": 1} and stored["output"] == {"n": [1, 2]}


def test_a_late_success_is_accepted_after_the_abandoned_entry_would_have_been_archived(
    store_url: str, request: pytest.FixtureRequest
) -> None:
    """An entry marked abandoned stays live (never archived) so its worker's late success still lands."""
    slow = open_tracker(store_url, request, lease_seconds=1, max_entries=3)
    other = open_tracker(store_url, request, lease_seconds=1, max_entries=3)
    abandoned = slow.start("g.csv", "s")
    time.sleep(1.3)
    other.run("g.csv", "s", handler=lambda ctx: 1)  # resolves the first as failed/LeaseExpired
    for i in range(5):
        other.run("g.csv", f"o{i}", handler=lambda ctx: 1)  # enough to archive it, were it movable
    entry = slow.succeed("g.csv", abandoned, {"rows": 10})
    assert entry.status is StepStatus.SUCCESS and entry.error is None
    history = slow.get_history("g.csv", include_archived=True)
    assert history is not None
    assert [e.status for e in history.entries if e.id == abandoned] == [StepStatus.SUCCESS]
    assert list(slow.list_failed()) == []


def test_skip_if_succeeded_finds_a_success_that_was_archived(tracker: LoreTracker) -> None:
    tracker.configure(max_entries=3)
    calls: list[str] = []
    tracker.run("f.csv", "ingest", handler=lambda ctx: calls.append("ingest"))
    for i in range(6):
        tracker.run("f.csv", f"other{i}", handler=lambda ctx: None)
    history = tracker.get_history("f.csv")
    assert history is not None and history.archived and history.latest(step="ingest") is None
    result = tracker.run("f.csv", "ingest", handler=lambda ctx: calls.append("again"), skip_if_succeeded=True)
    assert result.status is StepStatus.SKIPPED and calls == ["ingest"]


def test_run_keeps_an_output_the_handler_set_on_the_context(tracker: LoreTracker) -> None:
    def handler(ctx: Any) -> None:
        ctx.output = {"rows": 42}

    result = tracker.run("f.csv", "s", handler=handler)
    assert result.output == {"rows": 42}
    assert _stored(tracker, "f.csv")["entries"][0]["output"] == {"rows": 42}


def test_a_claim_is_released_when_the_replay_is_refused(tracker: LoreTracker) -> None:
    """A bad orchestrator value is a clear LoreError, and leaves no claim behind to block the next replay."""
    failed = tracker.run("f.csv", "s", handler=lambda ctx: 1 / 0)
    with pytest.raises(LoreError, match="orchestrator"):
        tracker.replay("f.csv", failed.entry_id, handler=lambda ctx: 1, orchestrator={"runId": "x"})
    assert tracker.store.get(claim_key(tracker.prefix, "f.csv", "replay", failed.entry_id)) is None
    again = tracker.replay("f.csv", failed.entry_id, handler=lambda ctx: 1)
    assert again.status is StepStatus.SUCCESS


def test_a_claim_shorter_than_two_heartbeats_is_refused() -> None:
    with pytest.raises(LoreConfigError, match="claim_seconds"):
        LoreTracker.from_url("memory://claims-short", lease_seconds=3, claim_seconds=0.5)


def test_clear_history_cleans_up_even_when_its_landed_write_is_answered_412(s3_client: Any, bucket: str) -> None:
    """botocore retries a clear that landed and gets 412: the segments and index objects still go."""
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, max_entries=2)
    for i in range(6):
        tracker.run("f.csv", f"s{i}", handler=lambda ctx: None)
    tracker.run("f.csv", "bad", handler=lambda ctx: 1 / 0)
    assert tracker.get_history("f.csv").archived  # type: ignore[union-attr]
    fault = LandThenDrop("If-Match")
    s3_client.meta.events.register_first("before-send.s3.PutObject", fault.before_send)
    tracker.clear_history("f.csv")
    assert fault.fired == 1
    left = s3_client.list_objects_v2(Bucket=bucket, Prefix=".lore-s3/~lore/").get("Contents", [])
    assert [o["Key"] for o in left] == []
    assert list(tracker.list_failed(verify=False)) == []


def test_list_failed_on_a_read_only_role_reports_without_repairing() -> None:
    """The lineage page and sensors may hold read-only credentials: repairing an orphan is best effort."""
    from lore_core import AccessDeniedError, MemoryStore

    class ReadOnly(MemoryStore):
        def delete(self, key: str) -> None:
            raise AccessDeniedError(f"access denied while deleting memory://{self.bucket}/{key}")

    writer = LoreTracker.from_url("memory://read-only-role")
    failed = writer.run("f.csv", "s", handler=lambda ctx: 1 / 0)
    entry = writer.run("f.csv", "s", handler=lambda ctx: None)  # resolves it
    # A crash left the resolved failure's index object behind.
    writer.store.put(f"{writer.prefix}/~lore/failed/f.csv/{failed.entry_id}/s", b"{}")
    reader = LoreTracker(store=ReadOnly("read-only-role"))
    assert list(reader.list_failed()) == [] and entry.status is StepStatus.SUCCESS
    assert [f.entry_id for f in reader.list_failed(verify=False)] == [failed.entry_id]  # still there


def test_errors_cross_a_process_pool() -> None:
    """An error that does not unpickle kills a multiprocessing pool's result thread and hangs the pool."""
    import pickle

    from lore_core import CorruptHistoryError
    from lore_core.stores import ConditionFailed

    for error in (ConditionFailed("k", 412), CorruptHistoryError("s3://b/k.json", "bad")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


def test_the_self_check_survives_spurious_conflicts(s3_server: Any, bucket: str) -> None:
    """A 409/412 that has nothing to do with the server's semantics (injected on the probe's create and
    on its right-ETag write) is tried again on a fresh probe, not reported as an unsupported backend."""
    from botocore.awsrequest import AWSResponse

    from lore_core.stores import base

    from .test_faults import _body, _Raw

    client = s3_server.client()
    injected: list[str] = []

    def conflict(request: Any, **kwargs: Any) -> AWSResponse | None:
        if "/~lore/probe/" not in request.url or request.method != "PUT":
            return None
        create = not injected and "If-None-Match" in request.headers
        right_etag = len(injected) == 1 and b"right etag" in _body(request)
        if not (create or right_etag):
            return None
        injected.append("create" if create else "right etag")
        body = b"<Error><Code>ConditionalRequestConflict</Code><Message>busy</Message></Error>"
        return AWSResponse(request.url, 409, {}, _Raw(body))

    client.meta.events.register_first("before-send.s3.PutObject", conflict)
    tracker = LoreTracker(bucket=bucket, s3_client=client)
    base._verified.discard(tracker.store.identity())
    assert tracker.run("f.csv", "s", handler=lambda ctx: 1).status is StepStatus.SUCCESS
    assert injected == ["create", "right etag"]
    left = client.list_objects_v2(Bucket=bucket, Prefix=".lore-s3/~lore/probe/").get("Contents", [])
    assert left == []
