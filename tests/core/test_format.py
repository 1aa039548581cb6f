"""The on-bucket document format: camelCase fields, timestamps, foreign documents."""

from __future__ import annotations

import json
import re
from typing import Any

from lore_core import LoreTracker, StepStatus

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _raw(s3_client: Any, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_documents_are_camel_case_json_at_prefix_key(s3_tracker: LoreTracker, s3_client: Any, bucket: str) -> None:
    s3_tracker.run(
        "uploads/report.pdf",
        step="validate",
        handler=lambda ctx: {"ok": True},
        input={"a": 1},
        produces=["renders/p1.png"],
        metadata={"owner": "ops"},
    )
    doc = _raw(s3_client, bucket, ".lore-s3/uploads/report.pdf.json")
    assert {
        "schemaVersion",
        "fileKey",
        "bucket",
        "derivedFrom",
        "derivedTo",
        "entries",
        "createdAt",
        "updatedAt",
    } <= set(doc)
    assert doc["fileKey"] == "uploads/report.pdf" and doc["bucket"] == bucket and doc["schemaVersion"] == 1
    assert doc["derivedTo"] == [{"fileKey": "renders/p1.png", "entryId": doc["entries"][0]["id"]}]
    entry = doc["entries"][0]
    assert {
        "id",
        "step",
        "status",
        "input",
        "output",
        "produces",
        "startedAt",
        "completedAt",
        "durationMs",
        "metadata",
        "attempt",
    } <= set(entry)
    assert entry["status"] == "success" and entry["input"] == {"a": 1} and entry["output"] == {"ok": True}
    for value in (doc["createdAt"], doc["updatedAt"], entry["startedAt"], entry["completedAt"]):
        assert TIMESTAMP.match(value), value
    child = _raw(s3_client, bucket, ".lore-s3/renders/p1.png.json")
    assert child["derivedFrom"] == [{"fileKey": "uploads/report.pdf", "entryId": entry["id"]}]
    assert child["ancestry"] == [{"fileKey": "uploads/report.pdf", "entryId": entry["id"]}]


def test_foreign_document_is_read_and_unknown_fields_survive_a_rewrite(
    s3_tracker: LoreTracker, s3_client: Any, bucket: str
) -> None:
    # Written by another tool of the documented lore-s3 shape: none of Lore's additions, extra fields.
    foreign = {
        "fileKey": "in/x.csv",
        "bucket": bucket,
        "derivedFrom": [],
        "entries": [
            {
                "id": "00000000000000000000000001",
                "step": "ingest",
                "status": "success",
                "startedAt": "2026-01-01T00:00:00.000Z",
                "completedAt": "2026-01-01T00:00:01.500Z",
                "durationMs": 1500,
                "vendorTrace": {"span": "abc"},
            }
        ],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "updatedAt": "2026-01-01T00:00:01.500Z",
        "owningTeam": "data-platform",
    }
    s3_client.put_object(Bucket=bucket, Key=".lore-s3/in/x.csv.json", Body=json.dumps(foreign).encode())

    history = s3_tracker.get_history("in/x.csv")
    assert history is not None and history.entries[0].status is StepStatus.SUCCESS
    assert history.ancestry is None and history.derived_to == []

    s3_tracker.run("in/x.csv", step="validate", handler=lambda ctx: None)
    doc = _raw(s3_client, bucket, ".lore-s3/in/x.csv.json")
    assert doc["owningTeam"] == "data-platform"
    assert doc["entries"][0]["vendorTrace"] == {"span": "abc"}
    assert doc["entries"][0]["completedAt"] == "2026-01-01T00:00:01.500Z"
    assert [e["step"] for e in doc["entries"]] == ["ingest", "validate"]


def test_lineage_falls_back_to_derived_from_without_ancestry(
    s3_tracker: LoreTracker, s3_client: Any, bucket: str
) -> None:
    def doc(key: str, parent: str | None) -> bytes:
        return json.dumps(
            {
                "fileKey": key,
                "bucket": bucket,
                "derivedFrom": [{"fileKey": parent, "entryId": "E"}] if parent else [],
                "entries": [],
                "createdAt": "2026-01-01T00:00:00.000Z",
                "updatedAt": "2026-01-01T00:00:00.000Z",
            }
        ).encode()

    for key, parent in [("l0", None), ("l1", "l0"), ("l2", "l1"), ("l3", "l2")]:
        s3_client.put_object(Bucket=bucket, Key=f".lore-s3/{key}.json", Body=doc(key, parent))
    node = s3_tracker.get_lineage("l3")
    names = [n.file_key for n in node.walk()] if node else []
    assert names == ["l3", "l2", "l1", "l0"]


def test_entry_ids_sort_by_time(tracker: LoreTracker) -> None:
    ids = [tracker.run("t", step=f"s{i}", handler=lambda ctx: None).entry_id for i in range(20)]
    assert ids == sorted(ids) and len(set(ids)) == 20 and all(len(i) == 26 for i in ids)


def test_cross_bucket_lineage(s3_client: Any, bucket: str) -> None:
    other = bucket + "-out"
    s3_client.create_bucket(Bucket=other)
    source = LoreTracker(bucket=bucket, s3_client=s3_client)
    # The source's bucket is written (its derivedTo) only because it is listed (test_write_scope.py).
    target = LoreTracker(bucket=other, s3_client=s3_client, writable_buckets=[bucket])
    made = source.run("raw/in.csv", step="ingest", handler=lambda ctx: None)
    target.register_derived_file("clean/out.parquet", "raw/in.csv", made.entry_id, source_bucket=bucket)

    node = target.get_lineage("clean/out.parquet")
    assert node is not None and node.parents[0].bucket == bucket and node.parents[0].file_key == "raw/in.csv"
    assert node.parents[0].history is not None
    assert source.get_descendants("raw/in.csv") == [f"s3://{other}/clean/out.parquet"]
