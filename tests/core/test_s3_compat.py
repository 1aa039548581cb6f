"""What S3-compatible servers do differently from AWS, and how Lore copes (issue 13).

Every test here runs against moto (``make test``) and against Ceph RGW over HTTP and
HTTPS (``make test-rgw``). Where a server's behaviour cannot be produced on every
endpoint, it is also injected with a botocore event hook, so the moto run covers
Lore's handling of it too:

- Ceph RGW compares ``If-Match`` with its unquoted ETag byte for byte, so the quoted
  ETag S3 returns (and AWS accepts) gets 412 on every update.
- botocore >= 1.36 uploads over HTTPS as ``aws-chunked`` with a trailing checksum;
  RGW 16 answers ``411 MissingContentLength``.
- Bad SSE/KMS settings get 400/403 from RGW and 500 from another implementation, and
  ``501 NotImplemented`` is how servers refuse a header: configuration errors, to be
  reported at once with what to change, never retried as an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lore_core import ConcurrentUpdateError, LoreTracker, StepStatus, StoreError, StoreUnavailableError, make_s3_client
from lore_core.stores import ConditionFailed, S3Store
from lore_core.stores import s3 as s3_module


@pytest.fixture(autouse=True)
def _forget_learned_etag_forms() -> Iterator[None]:
    # Each test starts as a fresh process would: not knowing which If-Match form the server takes
    # (and not having warned yet); what the session had learned is put back afterwards.
    forms = s3_module._etag_forms
    with forms._lock:
        saved = dict(forms._forms)
    forms.forget()
    s3_module._warned_sse.clear()
    yield
    with forms._lock:
        forms._forms.clear()
        forms._forms.update(saved)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def _answer(status: int, code: str, message: str) -> Callable[..., AWSResponse]:
    def respond(request: Any, **kwargs: Any) -> AWSResponse:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        return AWSResponse(request.url, status, {}, _Raw(body))

    return respond


def _if_match_headers(client: Any) -> list[str]:
    """Records the If-Match header of every PutObject the client sends."""
    seen: list[str] = []

    def record(request: Any, **kwargs: Any) -> None:
        value = request.headers.get("If-Match")
        if value is not None:
            seen.append(value.decode() if isinstance(value, bytes) else value)

    client.meta.events.register("before-send.s3.PutObject", record)
    return seen


def _refuse_quoted_if_match(client: Any) -> list[str]:
    """Make the server behave like Ceph RGW: a quoted If-Match never matches (412)."""
    refused: list[str] = []
    precondition_failed = _answer(412, "PreconditionFailed", "")

    def refuse(request: Any, **kwargs: Any) -> AWSResponse | None:
        value = request.headers.get("If-Match")
        value = value.decode() if isinstance(value, bytes) else value
        if value is not None and value.startswith('"'):
            refused.append(value)
            return precondition_failed(request)
        return None

    client.meta.events.register_first("before-send.s3.PutObject", refuse)
    return refused


# --------------------------------------------------------------------------- If-Match: quoted or not


def test_conditional_update_with_the_etag_as_the_server_returned_it(s3_client: Any, bucket: str) -> None:
    store = S3Store(bucket, s3_client)
    first = store.put("doc.json", b'{"n": 1}', if_none_match=True)
    assert first.startswith('"')  # S3 returns ETags quoted; Lore hands them back as they came

    second = store.put("doc.json", b'{"n": 2}', if_match=first)
    third = store.put("doc.json", b'{"n": 3}', if_match=second)

    stored = store.get("doc.json")
    assert stored is not None and stored.data == b'{"n": 3}' and stored.etag == third
    # Whatever form the server wants, it is found out once per endpoint: at most one HEAD.
    assert store.stats.snapshot().get("head", 0) <= 1


def test_a_stale_etag_is_still_a_conflict_in_either_form(s3_client: Any, bucket: str) -> None:
    store = S3Store(bucket, s3_client)
    stale = store.put("doc.json", b"mine", if_none_match=True)
    store.put("doc.json", b"theirs", if_match=stale)  # another writer got there first
    with pytest.raises(ConditionFailed):
        store.put("doc.json", b"lost update", if_match=stale)
    with pytest.raises(ConditionFailed):
        store.put("doc.json", b"lost update", if_match=stale.strip('"'))
    stored = store.get("doc.json")
    assert stored is not None and stored.data == b"theirs"


def test_updates_to_one_history_succeed_without_a_false_conflict(s3_client: Any, bucket: str) -> None:
    # Before the fix, every update on Ceph RGW ended in "gave up updating ... other writers
    # kept changing it" with no other writer; few attempts keep that failure quick.
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, cas_max_attempts=3)
    started = time.monotonic()
    results = [tracker.run("one/file.csv", step=f"s{i}", handler=lambda ctx: ctx.step) for i in range(4)]
    assert time.monotonic() - started < 20
    history = LoreTracker(bucket=bucket, s3_client=s3_client).get_history("one/file.csv")
    assert history is not None
    assert [e.id for e in history.entries] == [r.entry_id for r in results]
    assert all(e.status is StepStatus.SUCCESS for e in history.entries)


def test_a_server_that_wants_unquoted_etags_is_found_out_once(s3_client: Any, bucket: str) -> None:
    refused = _refuse_quoted_if_match(s3_client)
    sent = _if_match_headers(s3_client)
    store = S3Store(bucket, s3_client)
    etag = store.put("doc.json", b"1", if_none_match=True)

    etag = store.put("doc.json", b"2", if_match=etag)  # refused quoted: HEAD, same ETag, retried unquoted
    assert len(refused) == 1 and store.stats.snapshot()["head"] == 1
    for n in range(3, 6):
        etag = store.put("doc.json", str(n).encode(), if_match=etag)
    assert store.stats.snapshot()["head"] == 1 and len(refused) == 1  # remembered: no more probing
    assert all(not value.startswith('"') for value in sent[-3:])
    other = S3Store(bucket, s3_client)  # another store on the same endpoint knows it already
    other.put("doc.json", b"6", if_match=etag)
    assert other.stats.snapshot().get("head", 0) == 0 and len(refused) == 1
    stored = store.get("doc.json")
    assert stored is not None and stored.data == b"6"


def test_on_a_server_that_wants_unquoted_etags_a_real_conflict_is_not_retried(s3_client: Any, bucket: str) -> None:
    _refuse_quoted_if_match(s3_client)
    store = S3Store(bucket, s3_client)
    stale = store.put("doc.json", b"mine", if_none_match=True)
    S3Store(bucket, s3_client).put("doc.json", b"theirs", if_match=stale.strip('"'))
    with pytest.raises(ConditionFailed):
        store.put("doc.json", b"lost update", if_match=stale)  # HEAD shows another ETag: a real conflict
    stored = store.get("doc.json")
    assert stored is not None and stored.data == b"theirs"


def test_tracker_on_a_server_that_wants_unquoted_etags(s3_client: Any, bucket: str) -> None:
    _refuse_quoted_if_match(s3_client)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, cas_max_attempts=3)
    for i in range(3):
        assert tracker.run("f", step=f"s{i}", handler=lambda ctx: None, produces=f"out/{i}").status == "success"
    history = tracker.get_history("f")
    assert history is not None and len(history.entries) == 3 and len(history.derived_to) == 3


@pytest.mark.moto_only
def test_aws_semantics_keep_the_quoted_etag(s3_client: Any, bucket: str) -> None:
    # moto, like AWS, takes the quoted ETag: Lore sends it as S3 returned it, and never probes.
    sent = _if_match_headers(s3_client)
    store = S3Store(bucket, s3_client)
    etag = store.put("doc.json", b"1", if_none_match=True)
    for n in range(2, 5):
        etag = store.put("doc.json", str(n).encode(), if_match=etag)
    assert len(sent) == 3 and all(value.startswith('"') and value.endswith('"') for value in sent)
    assert store.stats.snapshot().get("head", 0) == 0


def test_persistent_412_still_gives_up_with_a_clear_error(s3_client: Any, bucket: str) -> None:
    # A server answering 412 to both forms while the ETag is ours: Lore retries once per
    # attempt unquoted, then gives up as before, naming the document.
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("h", step="first", handler=lambda ctx: None)
    s3_client.meta.events.register_first("before-send.s3.PutObject", _answer(412, "PreconditionFailed", "no"))
    stuck = LoreTracker(bucket=bucket, s3_client=s3_client, cas_max_attempts=2)
    with pytest.raises(ConcurrentUpdateError, match=rf"s3://{bucket}/\.lore-s3/h\.json"):
        stuck.start("h", step="s")


# --------------------------------------------------------------------------- checksums


def test_clients_lore_builds_send_checksums_only_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REQUEST_CHECKSUM_CALCULATION", raising=False)
    monkeypatch.delenv("AWS_RESPONSE_CHECKSUM_VALIDATION", raising=False)
    config = make_s3_client("http://127.0.0.1:9", "us-east-1").meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"

    chosen = make_s3_client("http://127.0.0.1:9", "us-east-1", request_checksum_calculation="when_supported")
    assert chosen.meta.config.request_checksum_calculation == "when_supported"

    # The user's environment wins over Lore's default (botocore reads it).
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_supported")
    from_env = make_s3_client("http://127.0.0.1:9", "us-east-1")
    assert from_env.meta.config.request_checksum_calculation in (None, "when_supported")
    assert from_env._client_config.request_checksum_calculation == "when_supported"


def test_a_tracker_lore_builds_writes_over_the_endpoint(s3_endpoint: str, bucket: str) -> None:
    # Over HTTPS, botocore's default (aws-chunked with a trailing CRC32) gets 411 from Ceph RGW 16.
    tracker = LoreTracker.from_url(f"s3://{bucket}/.lore-s3", endpoint_url=s3_endpoint, region="us-east-1")
    first = tracker.run("tls/a.csv", step="s", handler=lambda ctx: 1, produces="tls/b.csv")
    second = tracker.run("tls/a.csv", step="t", handler=lambda ctx: 1 / 0)
    assert (first.status, second.status) == ("success", "failed")
    history = tracker.get_history("tls/a.csv")
    assert history is not None and [e.status for e in history.entries] == [StepStatus.SUCCESS, StepStatus.FAILED]
    assert [f.entry_id for f in tracker.list_failed()] == [second.entry_id]


def test_a_client_sending_aws_chunked_works_or_is_told_what_to_change(s3_server: Any, bucket: str) -> None:
    # A client the user built with botocore's default checksums: AWS and moto take its uploads;
    # Ceph RGW 16 over HTTPS refuses them, and then the error must say what to change, at once.
    client = s3_server.client(request_checksum_calculation="when_supported")
    tracker = LoreTracker(bucket=bucket, s3_client=client, outage_timeout=30)
    started = time.monotonic()
    try:
        tracker.run("chunked", step="s", handler=lambda ctx: None)
    except StoreError as exc:
        assert not isinstance(exc, StoreUnavailableError)
        assert "request_checksum_calculation" in str(exc) and "AWS_REQUEST_CHECKSUM_CALCULATION" in str(exc)
        assert time.monotonic() - started < 10
    else:
        history = tracker.get_history("chunked")
        assert history is not None and history.entries[0].status is StepStatus.SUCCESS


def test_411_missing_content_length_is_a_clear_error_at_once(s3_client: Any, bucket: str) -> None:
    s3_client.meta.events.register_first("before-send.s3.PutObject", _answer(411, "MissingContentLength", ""))
    store = S3Store(bucket, s3_client, outage_timeout=30)
    started = time.monotonic()
    with pytest.raises(StoreError, match="request_checksum_calculation='when_required'") as raised:
        store.put("doc.json", b"{}", if_none_match=True)
    assert not isinstance(raised.value, StoreUnavailableError) and time.monotonic() - started < 5
    assert store.stats.snapshot() == {"put": 1}


# --------------------------------------------------------------------------- configuration errors


def test_kms_without_a_key_id_works_or_is_reported_at_once(s3_client: Any, bucket: str) -> None:
    # Ceph RGW: 400 InvalidArgument (it needs a key id); AWS and moto use the account's default key.
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, sse="aws:kms", outage_timeout=30)
    started = time.monotonic()
    try:
        tracker.run("kms", step="s", handler=lambda ctx: None)
    except StoreError as exc:
        assert not isinstance(exc, StoreUnavailableError)
        assert "sse_kms_key_id" in str(exc) and "not retry" in str(exc), exc
        assert time.monotonic() - started < 10
    else:
        head = s3_client.head_object(Bucket=bucket, Key=".lore-s3/kms.json")
        assert head.get("ServerSideEncryption") == "aws:kms"


def test_an_unknown_kms_key_works_or_is_reported_at_once(s3_client: Any, bucket: str) -> None:
    # Ceph RGW's test KMS: 403 InvalidAccessKeyId "Failed to retrieve the actual key, kms-keyid: ...".
    tracker = LoreTracker(
        bucket=bucket, s3_client=s3_client, sse="aws:kms", sse_kms_key_id="lore-no-such-key", outage_timeout=30
    )
    started = time.monotonic()
    try:
        tracker.run("kms", step="s", handler=lambda ctx: None)
    except StoreError as exc:
        assert not isinstance(exc, StoreUnavailableError)
        assert "sse_kms_key_id='lore-no-such-key'" in str(exc), exc
        assert time.monotonic() - started < 10
    else:  # moto accepts any key id
        head = s3_client.head_object(Bucket=bucket, Key=".lore-s3/kms.json")
        assert head.get("ServerSideEncryption") == "aws:kms"


@pytest.mark.parametrize(
    ("status", "code", "message", "says"),
    [
        (
            400,
            "InvalidArgument",
            "Server Side Encryption with KMS managed key requires HTTP header "
            "x-amz-server-side-encryption-aws-kms-key-id",
            "sse_kms_key_id",
        ),
        (500, "InternalError", "KMS key not configured: server side encryption is not available", "sse="),
        (500, "KMS.NotFoundException", "Invalid keyId alias/lore", "sse_kms_key_id"),
        (
            501,
            "NotImplemented",
            "A header you provided implies functionality that is not implemented",
            "does not implement",
        ),
        (400, "InvalidRequest", "The encryption method specified is not supported", "sse="),
    ],
    ids=["400-kms-key-id", "500-kms", "500-kms-code", "501", "400-invalid-request"],
)
def test_configuration_errors_are_raised_at_once(
    s3_client: Any, bucket: str, status: int, code: str, message: str, says: str
) -> None:
    s3_client.meta.events.register_first("before-send.s3.PutObject", _answer(status, code, message))
    tracker = LoreTracker(
        bucket=bucket, s3_client=s3_client, sse="aws:kms", sse_kms_key_id="alias/lore", outage_timeout=60
    )
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        tracker.run("cfg", step="s", handler=lambda ctx: None)
    error = str(raised.value)
    assert not isinstance(raised.value, StoreUnavailableError), error
    assert code in error and says in error and "configuration problem" in error, error
    assert f"s3://{bucket}/.lore-s3/" in error
    # botocore itself may retry a 500 a few times; Lore adds no outage loop on top.
    assert time.monotonic() - started < 15


def test_a_500_that_says_nothing_of_configuration_stays_transient(bucket: str, s3_endpoint: str) -> None:
    client = make_s3_client(s3_endpoint, "us-east-1", max_attempts=1)
    client.meta.events.register_first(
        "before-send.s3.PutObject", _answer(500, "InternalError", "We encountered an internal error. Please try again.")
    )
    store = S3Store(bucket, client, outage_timeout=1.0)
    with pytest.raises(StoreUnavailableError, match="InternalError"):
        store.put("doc.json", b"{}", if_none_match=True)
    assert store.stats.snapshot()["put"] > 1  # retried until the outage bound


def test_unconfirmed_server_side_encryption_is_logged(
    s3_client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Ceph RGW accepts sse="AES256" and stores the object unencrypted unless SSE-S3 is set up.
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, sse="AES256")
    with caplog.at_level(logging.WARNING, logger="lore"):
        tracker.run("aes", step="s", handler=lambda ctx: None)
    head = s3_client.head_object(Bucket=bucket, Key=".lore-s3/aes.json")
    warned = [r for r in caplog.records if "did not confirm server-side encryption" in r.getMessage()]
    if head.get("ServerSideEncryption"):
        assert not warned
    else:
        assert warned, "the server ignored sse='AES256' and nobody was told"
