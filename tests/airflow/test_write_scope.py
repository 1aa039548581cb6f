"""Writes only where configured (issue 9): Lore writes histories into the configured store (and
the buckets of ``[lore] writable_buckets``) only. A task that reads from another bucket through
``S3Hook`` (hook lineage, on by default) or declares it as an inlet leaves that bucket
byte-for-byte unchanged: the read is recorded as a ``derivedFrom`` ref, naming the bucket, on
what the task wrote into the store; an outlet in such a bucket is named by the source's
``derivedTo``. Real ``dag.test()`` runs (listener and callbacks) against the local S3 server."""

from __future__ import annotations

from typing import Any

import pytest

from lore_core import LoreTracker

from .conftest import RunDags


def _snapshot(client: Any, bucket: str) -> dict[str, tuple[str, str, bytes]]:
    """Every object of ``bucket`` (list + get): key -> (ETag, last modified, body)."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = (obj["ETag"], str(obj["LastModified"]), body)
    return out


@pytest.fixture(scope="module")
def scoped_run(run_dags: RunDags, make_bucket: Any, s3_server: Any) -> dict[str, Any]:
    store, foreign, allowed = make_bucket(), make_bucket(), make_bucket()
    client = s3_server.client()
    for key in ("raw/hooked.csv", "raw/hooked-cb.csv", "raw/declared.csv"):
        client.put_object(Bucket=foreign, Key=key, Body=b"id,amount\n1,10\n")
    # Another deployment's history in the foreign bucket: read for lineage, never written.
    LoreTracker(bucket=foreign, s3_client=client).record("raw/declared.csv", "upstream.ingest")
    before = _snapshot(client, foreign)
    result = run_dags(
        ["write_scope"],
        LORE_TEST_BUCKET=store,
        LORE_TEST_FOREIGN_BUCKET=foreign,
        LORE_TEST_ALLOWED_BUCKET=allowed,
        LORE_TEST_ENDPOINT=s3_server.endpoint_url,
        AIRFLOW__LORE__STORE=f"s3://{store}/.lore-s3",
        AIRFLOW__LORE__AWS_CONN_ID="lore_s3",
        AIRFLOW__LORE__ENDPOINT_URL="",
        AIRFLOW__LORE__WRITABLE_BUCKETS=allowed,
    )
    return {
        "result": result["write_scope"],
        "before": before,
        "after": _snapshot(client, foreign),
        "store": LoreTracker(bucket=store, s3_client=client),
        "foreign": LoreTracker(bucket=foreign, s3_client=client),
        "allowed": LoreTracker(bucket=allowed, s3_client=client),
        "names": {"store": store, "foreign": foreign, "allowed": allowed},
    }


def test_a_bucket_only_read_is_left_byte_for_byte_unchanged(scoped_run: dict[str, Any]) -> None:
    tis = scoped_run["result"]["tis"]
    assert {name: ti["state"] for name, ti in tis.items()} == {
        "hook_copy": "success",
        "hook_copy_cb": "success",
        "hook_read_then_fail": "failed",
        "declared_read": "success",
        "declared_write": "success",
        "allowed_write": "success",
    }
    before, after = scoped_run["before"], scoped_run["after"]
    assert sorted(after) == sorted(before)  # no new object: no .lore-s3/ history, no failure index
    assert after == before  # and every object's bytes, ETag and time as they were


def test_hook_reads_are_derived_from_refs_on_what_the_task_wrote(scoped_run: dict[str, Any]) -> None:
    store, foreign = scoped_run["store"], scoped_run["names"]["foreign"]
    for key, step in (
        ("copied/hooked.csv", "write_scope.hook_copy"),
        ("copied/hooked-cb.csv", "write_scope.hook_copy_cb"),
    ):
        history = store.get_history(key)
        assert history is not None, key
        (entry,) = history.entries
        assert (entry.step, str(entry.status), entry.output) == (step, "success", "copied")
        source = key.replace("copied/", "raw/")
        assert [(r.bucket, r.file_key) for r in history.derived_from] == [(foreign, source)]
        lineage = store.get_lineage(key)
        assert lineage is not None and [(p.bucket, p.file_key) for p in lineage.parents] == [(foreign, source)]


def test_declared_cross_bucket_lineage_is_recorded_on_the_stores_side(scoped_run: dict[str, Any]) -> None:
    store, names = scoped_run["store"], scoped_run["names"]
    declared = store.get_history("clean/declared.csv")
    assert declared is not None
    (entry,) = declared.entries  # the outlet carries the entry: its only inlet is not Lore's to write
    assert entry.step == "write_scope.declared_read" and str(entry.status) == "success"
    upstream = scoped_run["foreign"].get_history("raw/declared.csv")
    assert upstream is not None and upstream.derived_to == []
    assert [(r.bucket, r.file_key, r.entry_id) for r in declared.derived_from] == [
        (names["foreign"], "raw/declared.csv", upstream.entries[0].id)
    ]
    # An outlet in the foreign bucket: named by the source's derivedTo, never written.
    assert store.get_descendants("raw/out.csv") == [f"s3://{names['foreign']}/published/out.csv"]


def test_writable_buckets_are_written_as_before(scoped_run: dict[str, Any]) -> None:
    store, allowed, names = scoped_run["store"], scoped_run["allowed"], scoped_run["names"]
    source = store.get_history("raw/allowed.csv")
    assert source is not None
    assert store.get_descendants("raw/allowed.csv") == [f"s3://{names['allowed']}/published/allowed.csv"]
    published = allowed.get_history("published/allowed.csv")
    assert published is not None
    assert [(r.bucket, r.file_key, r.entry_id) for r in published.derived_from] == [
        (names["store"], "raw/allowed.csv", source.entries[0].id)
    ]
