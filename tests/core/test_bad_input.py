"""Bad input gets a clear error naming what was wrong; a corrupt history is never overwritten."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from lore_core import (
    AccessDeniedError,
    BucketNotFoundError,
    CorruptHistoryError,
    InvalidKeyError,
    InvalidStoreURLError,
    LoreTracker,
)
from lore_core.values import UNSERIALISABLE_MARK


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "must not be empty"),
        ("/abs/key.csv", "must not start with '/'"),
        ("a/../b.csv", "'..' segment"),
        ("../escape", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("a//b", "empty path segment"),
        ("dir/", "empty path segment"),
        ("~lore/failed/x", "reserves"),
        (".lore-s3/x", "inside the history prefix"),
        ("bad\x00key", "control character"),
        ("k" * 1100, "too long"),
    ],
)
def test_bad_file_keys_are_refused_by_name(tracker: LoreTracker, key: str, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        tracker.run(key, step="s", handler=lambda ctx: None)
    with pytest.raises(InvalidKeyError):
        tracker.get_history(key)


def test_non_string_key_is_refused(tracker: LoreTracker) -> None:
    with pytest.raises(InvalidKeyError, match="must be a string"):
        tracker.get_history(123)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["a/../b", "..", "/abs", "", "x//y"])
def test_bad_prefixes_are_refused(prefix: str, s3_client: Any) -> None:
    with pytest.raises(InvalidKeyError, match="prefix"):
        LoreTracker(bucket="any-bucket", prefix=prefix, s3_client=s3_client)


def test_bad_prefix_in_url_and_bad_urls(tmp_path: Any) -> None:
    with pytest.raises(InvalidKeyError, match=r"'\.\.'"):
        LoreTracker.from_url("s3://bucket/a/../b")
    for url in ["ftp://x/y", "s3://", "not a url", "file://host/path"]:
        with pytest.raises(InvalidStoreURLError):
            LoreTracker.from_url(url)
    with pytest.raises(InvalidKeyError, match=r"'\.\.'"):
        list(LoreTracker.from_url("memory://p").list_tracked_files(prefix="../x"))


def test_unserialisable_values_are_stored_marked_and_the_step_runs(tracker: LoreTracker) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    result = tracker.run(
        "u",
        step="s",
        handler=lambda ctx: {"handle": Opaque(), "nan": float("nan"), "set": {2, 1}},
        input={"obj": Opaque(), "when": __import__("datetime").date(2026, 1, 2)},
    )
    assert result.status == "success"
    entry = tracker.get_history("u").entries[0]  # type: ignore[union-attr]
    assert entry.input["when"] == "2026-01-02"
    assert entry.input["obj"].startswith(UNSERIALISABLE_MARK) and "Opaque()" in entry.input["obj"]
    assert entry.output["handle"].startswith(UNSERIALISABLE_MARK)
    assert entry.output["nan"].startswith(UNSERIALISABLE_MARK)
    assert entry.output["set"] == [1, 2]


def test_missing_bucket_names_the_bucket(s3_client: Any) -> None:
    tracker = LoreTracker(bucket="no-such-bucket-here", s3_client=s3_client)
    with pytest.raises(BucketNotFoundError, match=r"no-such-bucket-here.*raw/a\.csv"):
        tracker.run("raw/a.csv", step="s", handler=lambda ctx: None)
    with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
        list(tracker.list_tracked_files())


def test_denied_access_names_the_key(s3_client: Any, bucket: str) -> None:
    def deny(request: Any, **kwargs: Any) -> AWSResponse:
        body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        return AWSResponse(request.url, 403, {}, _Raw(body))

    s3_client.meta.events.register_first("before-send.s3.GetObject", deny)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    with pytest.raises(AccessDeniedError, match=rf"s3://{bucket}/\.lore-s3/secret/x\.json"):
        tracker.get_history("secret/x")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"fileKey": "c", "bucket": "b"',
        b'{"fileKey": "c", "bucket": "b", "entries": "nope",'
        b' "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"}',
        b"[]",
        b"",
    ],
)
def test_corrupt_history_is_reported_by_key_and_never_overwritten(
    s3_tracker: LoreTracker, s3_client: Any, bucket: str, content: bytes
) -> None:
    key = ".lore-s3/broken/c.json"
    s3_client.put_object(Bucket=bucket, Key=key, Body=content)
    with pytest.raises(CorruptHistoryError, match=rf"s3://{bucket}/\.lore-s3/broken/c\.json"):
        s3_tracker.get_history("broken/c")
    with pytest.raises(CorruptHistoryError):
        s3_tracker.run("broken/c", step="s", handler=lambda ctx: None)
    with pytest.raises(CorruptHistoryError):
        s3_tracker.register_derived_file("broken/c", "other")
    assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == content


def test_corrupt_ancestor_shows_in_lineage_instead_of_crashing(
    s3_tracker: LoreTracker, s3_client: Any, bucket: str
) -> None:
    s3_tracker.run("p", step="s", handler=lambda ctx: None, produces="c")
    s3_client.put_object(Bucket=bucket, Key=".lore-s3/p.json", Body=json.dumps({"x": 1}).encode())
    node = s3_tracker.get_lineage("c")
    assert node is not None and node.parents[0].error is not None and "p.json" in node.parents[0].error
