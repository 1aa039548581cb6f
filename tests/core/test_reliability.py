"""Faults on the S3 path, through a fault-injecting HTTP proxy in front of the real local server."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from lore_core import AccessDeniedError, LoreTracker, StoreUnavailableError, make_s3_client
from lore_core.testing import Fault, FaultProxy, LocalS3Server

from .workers import run_steps_with_faults

TWENTY_PERCENT = [
    Fault("503", 0.05),
    Fault("500", 0.03),
    Fault("drop", 0.03),
    Fault("drop_after", 0.03),
    Fault("delay", 0.01, delay_s=1.3),
    Fault("412", 0.03),
    Fault("409", 0.02),
]


@pytest.fixture()
def proxy(s3_server: LocalS3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, seed=7) as p:
        yield p


@pytest.mark.fault_proxy
def test_processes_under_twenty_percent_faults_keep_every_entry_exactly_once(
    proxy: FaultProxy, bucket: str, s3_client: Any
) -> None:
    proxy.set_faults(TWENTY_PERCENT)
    files = ["shared/a.csv", "shared/b.csv"]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        chunks = pool.starmap(run_steps_with_faults, [(proxy.endpoint_url, bucket, files, w, 15) for w in range(4)])
    expected = [i for chunk in chunks for i in chunk]

    reader = LoreTracker(bucket=bucket, s3_client=s3_client)
    found = [e for key in files for e in reader.get_history(key).entries]  # type: ignore[union-attr]
    counts = Counter(e.id for e in found)
    runs = Counter((e.input["worker"], e.input["run"]) for e in found)
    assert sum(proxy.injected.values()) > 0, "no fault was injected: the test proved nothing"
    assert set(proxy.injected) >= {"503", "500", "drop", "drop_after"}
    assert sorted(counts) == sorted(expected) and len(expected) == 60
    assert max(counts.values()) == 1 and max(runs.values()) == 1  # no duplicates from retried writes
    assert all(e.status.value == "success" for e in found)


@pytest.mark.fault_proxy
def test_persistent_outage_gives_one_clear_error_in_bounded_time(proxy: FaultProxy, bucket: str) -> None:
    proxy.set_faults([Fault("503", 1.0)])
    client = make_s3_client(proxy.endpoint_url, "us-east-1", max_attempts=2)
    tracker = LoreTracker(bucket=bucket, s3_client=client, outage_timeout=1.0)
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            tracker.run("f", step="s", handler=lambda ctx: None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join(timeout=120)  # liveness bound only: a hang would leave the thread alive
    assert not worker.is_alive(), "tracker hung during an outage"
    (error,) = outcome
    assert isinstance(error, StoreUnavailableError)
    # The first write is the store's conditional-write self-check (issue 8): the error names
    # the object it was writing and the history it was about to write.
    assert f"s3://{bucket}/.lore-s3/" in str(error) and "'f'" in str(error) and "SlowDown" in str(error)


@pytest.mark.fault_proxy
def test_expected_bucket_owner_is_sent_and_a_wrong_owner_fails_closed(
    s3_server: LocalS3Server, bucket: str, s3_client: Any
) -> None:
    with FaultProxy(s3_server.endpoint_url, bucket_owner="111122223333") as owned:
        client = make_s3_client(owned.endpoint_url, "us-east-1")
        right = LoreTracker(bucket=bucket, s3_client=client, expected_bucket_owner="111122223333")
        right.run("a", step="s", handler=lambda ctx: 1 / 0, produces="b")
        list(right.list_failed())
        assert owned.owner_headers and set(owned.owner_headers) == {"111122223333"}

        wrong = LoreTracker(bucket=bucket, s3_client=client, expected_bucket_owner="999999999999")
        with pytest.raises(AccessDeniedError, match=rf"s3://{bucket}/\.lore-s3/a\.json"):
            wrong.run("a", step="s", handler=lambda ctx: None)
    assert len(LoreTracker(bucket=bucket, s3_client=s3_client).get_history("a").entries) == 1  # type: ignore[union-attr]


def test_server_side_encryption_applies_to_every_write(bucket: str, s3_client: Any, kms_key_id: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, sse="aws:kms", sse_kms_key_id=kms_key_id, max_entries=10)
    for _ in range(12):
        tracker.run("enc", step="s", handler=lambda ctx: None, produces="enc-child")
    tracker.run("enc", step="t", handler=lambda ctx: 1 / 0)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any("/~lore/archive/" in k for k in keys) and any("/~lore/failed/" in k for k in keys)
    used = set()
    for key in keys:
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "aws:kms", key
        used.add(head.get("SSEKMSKeyId"))
    # S3 documents SSEKMSKeyId as the key that encrypted the object: AWS answers with the key's
    # ARN (arn:aws:kms:<region>:<account>:key/<id>) even when an alias was sent; moto and Ceph
    # RGW echo the id as sent. Either way, one key for every object.
    (key_id,) = used
    assert key_id == kms_key_id or str(key_id).startswith("arn:aws:kms:"), key_id
