"""Building lineage trees, and drawing them as text, Mermaid or Graphviz dot."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import LoreError
from .models import FileHistory, LineageNode, LineageRef

if TYPE_CHECKING:
    from .tracker import LoreTracker

__all__ = ["build_lineage", "lineage_to_dot", "lineage_to_json", "lineage_to_mermaid", "lineage_to_text"]

_DocKey = tuple[str, str]


def build_lineage(tracker: LoreTracker, file_key: str) -> LineageNode | None:
    """Fetch the file, then all of its ``ancestry`` in parallel, then build the tree."""
    bucket = tracker.bucket
    root = tracker.get_history(file_key)  # round trip 1
    if root is None:
        return None
    docs: dict[_DocKey, FileHistory | None] = {(bucket, file_key): root}
    errors: dict[_DocKey, str] = {}
    wanted = [_absolute(ref, bucket) for ref in (root.ancestry or [])]
    _fetch_into(tracker, wanted, docs, errors)  # round trip 2
    # Fall back to walking derivedFrom for parents that no ancestry listed
    # (documents written by other tools, or ancestry cut at its bound).
    while True:
        missing = []
        for (doc_bucket, _), doc in list(docs.items()):
            for ref in doc.derived_from if doc is not None else []:
                target = _absolute(ref, doc_bucket)
                if (target.bucket or bucket, target.file_key) not in docs and (
                    target.bucket or bucket,
                    target.file_key,
                ) not in errors:
                    missing.append(target)
        if not missing:
            break
        _fetch_into(tracker, missing, docs, errors)
    return _node((bucket, file_key), None, docs, errors, frozenset(), {})


def _absolute(ref: LineageRef, doc_bucket: str) -> LineageRef:
    return ref if ref.bucket else ref.model_copy(update={"bucket": doc_bucket})


def _fetch_into(
    tracker: LoreTracker,
    refs: list[LineageRef],
    docs: dict[_DocKey, FileHistory | None],
    errors: dict[_DocKey, str],
) -> None:
    todo = list(dict.fromkeys((ref.bucket or tracker.bucket, ref.file_key) for ref in refs))
    todo = [item for item in todo if item not in docs and item not in errors]
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    def fetch(item: _DocKey) -> tuple[_DocKey, FileHistory | None, str | None]:
        try:
            return item, tracker.get_history(item[1], bucket=item[0]), None
        except LoreError as exc:  # one bad ancestor must not hide the rest of the tree
            return item, None, str(exc)

    with ThreadPoolExecutor(max_workers=min(32, len(todo))) as pool:
        for item, doc, error in pool.map(fetch, todo):
            if error is not None:
                errors[item] = error
            else:
                docs[item] = doc


def _node(
    key: _DocKey,
    via: LineageRef | None,
    docs: dict[_DocKey, FileHistory | None],
    errors: dict[_DocKey, str],
    path: frozenset[_DocKey],
    memo: dict[_DocKey, list[LineageNode]],
) -> LineageNode:
    doc = docs.get(key)
    node = LineageNode(file_key=key[1], bucket=key[0], history=doc, via=via, error=errors.get(key))
    if doc is None or key in path:
        return node  # unknown file, or a cycle: stop here
    if key not in memo:
        parents = []
        for ref in doc.derived_from:
            absolute = _absolute(ref, key[0])
            parent_key = (absolute.bucket or key[0], absolute.file_key)
            parents.append(_node(parent_key, ref, docs, errors, path | {key}, memo))
        memo[key] = parents
    node.parents = memo[key]
    return node


def _label(node: LineageNode, root_bucket: str) -> str:
    name = node.file_key if node.bucket == root_bucket else f"s3://{node.bucket}/{node.file_key}"
    if node.error:
        return f"{name} [unreadable: {node.error}]"
    if node.history is None:
        return f"{name} [no history]"
    latest = node.history.latest()
    status = f"{latest.step}: {latest.status.value}" if latest else "no entries"
    return f"{name} [{status}]"


def lineage_to_text(node: LineageNode) -> str:
    """An indented tree: the file first, its sources below it."""
    lines = [_label(node, node.bucket)]

    def walk(current: LineageNode, indent: str) -> None:
        for i, parent in enumerate(current.parents):
            last = i == len(current.parents) - 1
            via = f" (via entry {parent.via.entry_id})" if parent.via and parent.via.entry_id else ""
            lines.append(f"{indent}{'└── ' if last else '├── '}{_label(parent, node.bucket)}{via}")
            walk(parent, indent + ("    " if last else "│   "))

    walk(node, "")
    return "\n".join(lines)


def _edges(node: LineageNode) -> tuple[dict[str, str], list[tuple[str, str]]]:
    ids: dict[str, str] = {}
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []

    def ident(n: LineageNode) -> str:
        name = f"{n.bucket}/{n.file_key}"
        if name not in ids:
            ids[name] = f"n{len(ids)}"
            labels[ids[name]] = _label(n, node.bucket)
        return ids[name]

    def walk(current: LineageNode) -> None:
        child = ident(current)
        for parent in current.parents:
            edge = (ident(parent), child)
            if edge not in edges:
                edges.append(edge)
                walk(parent)

    walk(node)
    return labels, edges


def lineage_to_mermaid(node: LineageNode) -> str:
    labels, edges = _edges(node)
    lines = ["graph LR"]
    for ident, label in labels.items():
        lines.append(f'    {ident}["{label.replace(chr(34), "#quot;")}"]')
    lines.extend(f"    {a} --> {b}" for a, b in edges)
    return "\n".join(lines)


def lineage_to_dot(node: LineageNode) -> str:
    labels, edges = _edges(node)
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for ident, label in labels.items():
        lines.append(f"  {ident} [label={json.dumps(label)}];")
    lines.extend(f"  {a} -> {b};" for a, b in edges)
    lines.append("}")
    return "\n".join(lines)


def lineage_to_json(node: LineageNode) -> dict[str, Any]:
    """The tree as plain JSON: file, bucket, status of the latest entry, entry count, parents."""

    def convert(n: LineageNode) -> dict[str, Any]:
        latest = n.history.latest() if n.history else None
        out: dict[str, Any] = {
            "fileKey": n.file_key,
            "bucket": n.bucket,
            "viaEntryId": n.via.entry_id if n.via else None,
            "latestStep": latest.step if latest else None,
            "latestStatus": latest.status.value if latest else None,
            "entries": len(n.history.entries) if n.history else 0,
            "parents": [convert(p) for p in n.parents],
        }
        if n.error:
            out["error"] = n.error
        return out

    return convert(node)
