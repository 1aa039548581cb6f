"""Faults on the write path, injected with botocore event hooks on a real HTTP endpoint.

1. botocore retries a PUT that already landed, and the retry answers 412 for
   Lore's own write: Lore must see its mutation is there and call it success.
2. S3 answers 409 ConditionalRequestConflict, which botocore never retries: Lore must.
"""

from __future__ import annotations

from typing import Any

import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError

from lore_core import LoreTracker, StepStatus


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body


def _body(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    data = body.read()
    body.seek(0)
    return bytes(data)


class LandThenDrop:
    """Send the PUT for real, then pretend the connection dropped, so botocore retries it."""

    def __init__(self, condition_header: str) -> None:
        self.condition_header = condition_header
        self.fired = 0
        self.statuses: list[int] = []
        self._http = urllib3.PoolManager()

    def before_send(self, request: Any, **kwargs: Any) -> None:
        ours = ".lore-s3/" in request.url and "/~lore/probe/" not in request.url  # not the self-check
        if self.fired == 0 and self.condition_header in request.headers and ours:
            self.fired += 1
            landed = self._http.request(request.method, request.url, body=_body(request), headers=dict(request.headers))
            assert landed.status == 200, landed.data
            raise ConnectionClosedError(endpoint_url=request.url)

    def needs_retry(self, response: Any = None, **kwargs: Any) -> None:
        if response is not None:
            self.statuses.append(response[0].status_code)


def _hook(s3_client: Any, fault: LandThenDrop) -> None:
    s3_client.meta.events.register_first("before-send.s3.PutObject", fault.before_send)
    s3_client.meta.events.register("needs-retry.s3.PutObject", fault.needs_retry)


def test_landed_update_reported_as_412_counts_as_success(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("f", step="first", handler=lambda ctx: None)
    fault = LandThenDrop("If-Match")
    _hook(s3_client, fault)

    result = tracker.run("f", step="second", handler=lambda ctx: "out")

    assert fault.fired == 1 and 412 in fault.statuses  # the retry really was answered 412
    assert result.status == "success"
    history = LoreTracker(bucket=bucket, s3_client=s3_client).get_history("f")
    assert history is not None
    assert [e.step for e in history.entries] == ["first", "second"]  # no duplicate, nothing lost
    assert history.entries[1].status is StepStatus.SUCCESS and history.entries[1].output == "out"


def test_landed_create_reported_as_412_counts_as_success(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    fault = LandThenDrop("If-None-Match")
    _hook(s3_client, fault)

    result = tracker.run("brand-new", step="s", handler=lambda ctx: None)

    assert fault.fired == 1 and 412 in fault.statuses
    history = tracker.get_history("brand-new")
    assert result.status == "success" and history is not None and len(history.entries) == 1


def test_409_conditional_request_conflict_is_retried_by_lore(s3_client: Any, bucket: str) -> None:
    injected: list[str] = []

    def conflict(request: Any, **kwargs: Any) -> AWSResponse | None:
        if len(injected) < 3 and ".lore-s3/" in request.url and "/~lore/probe/" not in request.url:
            injected.append(request.url)
            body = (
                b"<Error><Code>ConditionalRequestConflict</Code>"
                b"<Message>A conflicting operation occurred</Message></Error>"
            )
            return AWSResponse(request.url, 409, {}, _Raw(body))
        return None

    s3_client.meta.events.register_first("before-send.s3.PutObject", conflict)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)

    result = tracker.run("g", step="s", handler=lambda ctx: 1)

    assert len(injected) == 3
    assert result.status == "success"
    history = tracker.get_history("g")
    assert history is not None and [e.status for e in history.entries] == [StepStatus.SUCCESS]


def test_persistent_conflict_gives_a_clear_error(s3_client: Any, bucket: str) -> None:
    from lore_core import ConcurrentUpdateError

    def always_412(request: Any, **kwargs: Any) -> AWSResponse:
        body = b"<Error><Code>PreconditionFailed</Code><Message>nope</Message></Error>"
        return AWSResponse(request.url, 412, {}, _Raw(body))

    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, cas_max_attempts=4)
    tracker.start("warm-up", step="s")  # the store's conditional-write self-check runs before the fault
    s3_client.meta.events.register_first("before-send.s3.PutObject", always_412)
    try:
        tracker.start("h", step="s")
    except ConcurrentUpdateError as exc:
        assert "after 4 conflicting writes" in str(exc) and f"s3://{bucket}/.lore-s3/h.json" in str(exc)
    else:
        raise AssertionError("expected ConcurrentUpdateError")
