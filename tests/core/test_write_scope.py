"""Writes only where configured (issue 9): a tracker writes histories into its own bucket, and into
another bucket only when that bucket is in ``writable_buckets``. Cross-bucket lineage is recorded
on the configured store's side (the derived file's ``derivedFrom`` names the other bucket); the
source's bucket is left byte-for-byte as it was. Against S3 (moto over HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lore_core import LineageRef, LoreConfigError, LoreTracker


def _snapshot(s3_client: Any, bucket: str) -> dict[str, tuple[str, bytes]]:
    """Every object of ``bucket``: key -> (ETag, body)."""
    out = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = (obj["ETag"], body)
    return out


@pytest.fixture()
def other_bucket(s3_client: Any) -> Iterator[str]:
    """A bucket Lore is not configured to write, with data and (from another deployment) a history."""
    name = f"lore-other-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    s3_client.put_object(Bucket=name, Key="raw/orders.csv", Body=b"id,amount\n1,10\n")
    LoreTracker(bucket=name, s3_client=s3_client).record("raw/history.csv", "ingest")
    yield name


def test_cross_bucket_lineage_leaves_the_source_bucket_unchanged(
    s3_client: Any, bucket: str, other_bucket: str
) -> None:
    before = _snapshot(s3_client, other_bucket)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)

    tracker.record(
        "clean/orders.parquet", "clean", derived_from=[LineageRef(file_key="raw/orders.csv", bucket=other_bucket)]
    )
    tracker.register_derived_file("clean/copy.parquet", "raw/orders.csv", source_bucket=other_bucket)
    entry = tracker.record(
        "clean/history.parquet", "clean", derived_from=[LineageRef(file_key="raw/history.csv", bucket=other_bucket)]
    )

    assert _snapshot(s3_client, other_bucket) == before
    derived = tracker.get_history("clean/orders.parquet")
    assert derived is not None
    assert [(r.bucket, r.file_key) for r in derived.derived_from] == [(other_bucket, "raw/orders.csv")]
    copy = tracker.get_history("clean/copy.parquet")
    assert copy is not None and [(r.bucket, r.file_key) for r in copy.derived_from] == [
        (other_bucket, "raw/orders.csv")
    ]
    # The other bucket's history is still read (not written): the ref names its latest entry.
    source = LoreTracker(bucket=other_bucket, s3_client=s3_client).get_history("raw/history.csv")
    assert source is not None and source.derived_to == []
    linked = tracker.get_history("clean/history.parquet")
    assert linked is not None and linked.derived_from[0].entry_id == source.entries[0].id
    assert entry.derived_from is not None
    # The lineage is readable from the configured store's side.
    lineage = tracker.get_lineage("clean/history.parquet")
    assert lineage is not None and [(p.bucket, p.file_key) for p in lineage.parents] == [
        (other_bucket, "raw/history.csv")
    ]


def test_a_derived_file_in_another_bucket_is_named_by_the_sources_derived_to(
    s3_client: Any, bucket: str, other_bucket: str
) -> None:
    before = _snapshot(s3_client, other_bucket)
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    entry = tracker.record("raw/cross.csv", "publish")
    tracker.register_derived_file("published/cross.csv", "raw/cross.csv", entry.id, derived_bucket=other_bucket)
    assert _snapshot(s3_client, other_bucket) == before
    assert tracker.get_descendants("raw/cross.csv") == [f"s3://{other_bucket}/published/cross.csv"]


def test_writable_buckets_allow_the_derived_to_side(s3_client: Any, bucket: str, other_bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, writable_buckets=[other_bucket])
    tracker.record(
        "clean/orders.parquet", "clean", derived_from=[LineageRef(file_key="raw/orders.csv", bucket=other_bucket)]
    )
    source = LoreTracker(bucket=other_bucket, s3_client=s3_client).get_history("raw/orders.csv")
    assert source is not None
    assert [(r.bucket, r.file_key) for r in source.derived_to] == [(bucket, "clean/orders.parquet")]


def test_a_source_bucket_that_cannot_be_read_is_linked_without_its_history(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    missing = f"lore-missing-{uuid.uuid4().hex[:12]}"
    entry = tracker.record("clean/x.parquet", "clean", derived_from=[LineageRef(file_key="raw/x.csv", bucket=missing)])
    assert entry.derived_from is not None and entry.derived_from[0].bucket == missing
    assert entry.derived_from[0].entry_id is None


@pytest.mark.parametrize("value", ["other-bucket", ["s3://other"], [""], [3]])
def test_writable_buckets_are_validated(value: Any) -> None:
    with pytest.raises(LoreConfigError, match="writable_buckets"):
        LoreTracker.from_url("memory://scope", writable_buckets=value)
