"""Fuzzing the reader: corrupt, truncated, wrong-typed, deeply nested and huge documents each give
a CorruptHistoryError naming the key, and none is ever overwritten."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lore_core import CorruptHistoryError, LoreTracker

VALID = {
    "fileKey": "f",
    "bucket": "b",
    "derivedFrom": [{"fileKey": "p", "entryId": "E1"}],
    "entries": [
        {
            "id": "E2",
            "step": "s",
            "status": "failed",
            "startedAt": "2026-01-01T00:00:00.000Z",
            "error": {"message": "m", "name": "ValueError"},
            "input": {"a": [1, 2]},
        },
    ],
    "createdAt": "2026-01-01T00:00:00.000Z",
    "updatedAt": "2026-01-01T00:00:00.000Z",
}
VALID_BYTES = json.dumps(VALID).encode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _mutations() -> st.SearchStrategy[bytes]:
    truncated = st.integers(0, len(VALID_BYTES) - 1).map(lambda n: VALID_BYTES[:n])
    flipped = st.tuples(st.integers(0, len(VALID_BYTES) - 1), st.integers(0, 255)).map(
        lambda t: VALID_BYTES[: t[0]] + bytes([t[1]]) + VALID_BYTES[t[0] + 1 :]
    )

    def replace_field(path_and_value: tuple[str, Any]) -> bytes:
        path, value = path_and_value
        doc = json.loads(VALID_BYTES)
        target = doc["entries"][0] if path.startswith("entry.") else doc
        target[path.removeprefix("entry.")] = value
        return json.dumps(doc).encode()

    fields = st.sampled_from(
        [
            "fileKey",
            "bucket",
            "derivedFrom",
            "entries",
            "createdAt",
            "entry.id",
            "entry.status",
            "entry.startedAt",
            "entry.error",
            "entry.produces",
            "entry.durationMs",
        ]
    )
    wrong_typed = st.tuples(fields, json_values).map(replace_field)
    arbitrary = json_values.map(lambda v: json.dumps(v).encode())
    nested = st.integers(1000, 100_000).map(lambda n: b"[" * n + b"]" * n)
    return st.one_of(truncated, flipped, wrong_typed, arbitrary, nested, st.binary(max_size=200))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_mutations())
def test_reader_never_crashes_and_never_overwrites(content: bytes) -> None:
    tracker = LoreTracker.from_url(f"memory://fuzz-{uuid.uuid4().hex[:8]}")
    key = ".lore-s3/fuzzed/doc.json"
    tracker.store.put(key, content)
    try:
        history = tracker.get_history("fuzzed/doc")
    except CorruptHistoryError as exc:
        assert "fuzzed/doc.json" in str(exc)
        try:
            tracker.run("fuzzed/doc", step="s", handler=lambda ctx: None)
        except CorruptHistoryError:
            pass
        else:
            raise AssertionError("a step ran on a corrupt history") from None
        stored = tracker.store.get(key)
        assert stored is not None and stored.data == content  # never overwritten
    else:
        assert history is not None  # it parsed: then Lore can keep writing to it
        tracker.run("fuzzed/doc", step="s", handler=lambda ctx: None)
        assert len(tracker.get_history("fuzzed/doc").entries) == len(history.entries) + 1  # type: ignore[union-attr]


def test_huge_document_is_refused_by_size(s3_client: Any, bucket: str) -> None:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client, max_document_bytes=1024)
    s3_client.put_object(Bucket=bucket, Key=".lore-s3/huge.json", Body=b" " * 2048 + VALID_BYTES)
    try:
        tracker.get_history("huge")
    except CorruptHistoryError as exc:
        assert "huge.json" in str(exc) and "2" in str(exc) and "max_document_bytes" in str(exc)
    else:
        raise AssertionError("expected CorruptHistoryError")
