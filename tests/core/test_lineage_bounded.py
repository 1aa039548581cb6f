"""issue 8, defect 3: lineage is a graph of files, bounded.

Today ``derivedFrom``/``derivedTo`` keep one ref per (file, entry) forever, and ``LineageNode``
gets a parent node per ref and per path, so re-materialized assets and diamonds explode
(4 assets x 40 runs: 65,641 nodes; a chain of diamonds over 49 files: 262,141). A document must
keep at most one ref per related file, and ``get_lineage`` must return each file once.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

import pytest

from lore_core import (
    LoreTracker,
    StepStatus,
    lineage_to_dot,
    lineage_to_json,
    lineage_to_mermaid,
    lineage_to_text,
)

from .support import stored_document

CHAIN = ["a", "b", "c", "d"]


def _memory_url() -> str:
    return f"memory://lineage-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def rerun_chain() -> str:
    """A memory store holding a 4-file chain a->b->c->d re-run 300 times (each run records a, then
    b derived from a, c from b, d from c); shared by the tests that only read it."""
    url = _memory_url()
    tracker = LoreTracker.from_url(url)
    for _ in range(300):
        tracker.record("a", step="a")
        for source, target in itertools.pairwise(CHAIN):
            tracker.record(target, step=target, derived_from=[source])
    return url


def test_rerun_chain_keeps_one_ref_per_related_file_and_small_documents(rerun_chain: str) -> None:
    """issue 8, defect 3: after 300 re-runs of a 4-file chain a->b->c->d, each document holds at
    most one derivedFrom and one derivedTo ref per related file (the latest entry), ancestry lists
    each ancestor once, and every stored document stays under 64 KiB (today: 300 refs each way,
    85 KiB)."""
    reader = LoreTracker.from_url(rerun_chain, cache_size=0)
    docs = {key: reader.get_history(key) for key in CHAIN}
    for key, doc in docs.items():
        assert doc is not None
        assert len(doc.derived_from) <= 1, f"{key}: {len(doc.derived_from)} derivedFrom refs"
        assert len(doc.derived_to) <= 1, f"{key}: {len(doc.derived_to)} derivedTo refs"
        ancestors = [(ref.bucket, ref.file_key) for ref in doc.ancestry or []]
        assert len(ancestors) == len(set(ancestors)), f"{key}: ancestry repeats a file: {ancestors}"
        size = len(stored_document(reader, key))
        assert size < 64 * 1024, f"{key}: document is {size} bytes"
    for source, target in itertools.pairwise(CHAIN):
        source_doc, target_doc = docs[source], docs[target]
        assert source_doc is not None and target_doc is not None
        latest = source_doc.latest(status=StepStatus.SUCCESS)
        assert latest is not None
        # The one ref left is the latest: the target's newest entry came from the source's newest.
        assert [(r.file_key, r.entry_id) for r in target_doc.derived_from] == [(source, latest.id)]
        assert [r.file_key for r in source_doc.derived_to] == [target]
        assert {r.file_key for r in target_doc.ancestry or []} == set(CHAIN[: CHAIN.index(target)])


def test_lineage_of_a_rerun_chain_is_four_nodes_in_two_round_trips(rerun_chain: str) -> None:
    """issue 8, defect 3: ``get_lineage('d')`` after 300 re-runs returns each of the 4 files exactly
    once, reading each document once: d, then its ancestors together (2 round trips; today the
    tree has a node per ref and path)."""
    reader = LoreTracker.from_url(rerun_chain, cache_size=0)
    doc = reader.get_history("d")
    assert doc is not None and len(doc.derived_from) <= 1  # fails fast where refs are unbounded
    reader.store.stats.reset()

    root = reader.get_lineage("d")

    assert root is not None
    walked = [n.file_key for n in root.walk()]
    assert sorted(walked) == sorted(CHAIN)
    # One GET of d, then one each of c, b and a fetched together from d's ancestry; nothing else.
    assert reader.store.stats.snapshot() == {"get": 4}
    assert not root.truncated


def _diamonds(tracker: LoreTracker, count: int) -> list[str]:
    """A chain of ``count`` diamonds: top -> left, right -> bottom, each bottom the next top."""
    keys = [f"dia/f{i:02d}" for i in range(3 * count + 1)]
    tracker.record(keys[0], step="s")
    for k in range(count):
        top, left, right, bottom = keys[3 * k : 3 * k + 4]
        tracker.record(left, step="s", derived_from=[top])
        tracker.record(right, step="s", derived_from=[top])
        tracker.record(bottom, step="s", derived_from=[left, right])
    return keys


def test_chain_of_diamonds_gives_each_file_once_in_every_rendering() -> None:
    """issue 8, defect 3: a chain of 16 diamonds over 49 files: ``get_lineage`` of the last returns
    49 unique nodes (today 262,141), and text/json/mermaid/dot name every file, the text in fewer
    than 1,000 lines."""
    tracker = LoreTracker.from_url(_memory_url())
    keys = _diamonds(tracker, 16)
    assert len(keys) == 49

    root = tracker.get_lineage(keys[-1])

    assert root is not None
    walked = [n.file_key for n in root.walk()]
    assert len(walked) == 49, f"walk() gave {len(walked)} nodes for 49 files"
    assert set(walked) == set(keys)
    assert not root.truncated
    text = lineage_to_text(root)
    as_json: Any = lineage_to_json(root)
    renderings = {
        "text": text,
        "json": as_json if isinstance(as_json, str) else json.dumps(as_json),
        "mermaid": lineage_to_mermaid(root),
        "dot": lineage_to_dot(root),
    }
    for name, rendered in renderings.items():
        missing = [k for k in keys if k not in rendered]
        assert not missing, f"{name} rendering does not name {missing}"
    assert len(text.splitlines()) < 1000


def test_lineage_node_cap_is_honoured_and_marked_truncated() -> None:
    """issue 8, defect 3: ``get_lineage(key, max_nodes=N)`` returns at most N nodes and marks the
    root ``truncated``; under the cap nothing is marked."""
    tracker = LoreTracker.from_url(_memory_url())
    keys = _diamonds(tracker, 16)

    capped = tracker.get_lineage(keys[-1], max_nodes=10)

    assert capped is not None
    walked = [n.file_key for n in capped.walk()]
    assert 1 <= len(walked) <= 10 and len(set(walked)) == len(walked)
    assert capped.truncated is True
    whole = tracker.get_lineage(keys[3], max_nodes=10)
    assert whole is not None and len(list(whole.walk())) == 4 and whole.truncated is False
