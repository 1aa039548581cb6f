"""Drawing a lineage graph as an indented tree, JSON, Mermaid or Graphviz dot.

Promises: every renderer walks the graph with a visited set, so output grows with
the number of files and links, never with the number of paths; a file reached a
second time is named and marked "shown above" instead of being drawn again, and a
graph cut at its node cap says so. Labels are plain text; escaping for a target
format (Markdown, HTML) is the caller's job.
"""

from __future__ import annotations

import json
from typing import Any

from ..models import HistoryEntry
from .graph import LineageNode

__all__ = ["lineage_to_dot", "lineage_to_json", "lineage_to_mermaid", "lineage_to_text"]

_TRUNCATED = "… more ancestors not shown (node cap reached)"


def _name(node: LineageNode, root_bucket: str) -> str:
    return node.file_key if node.bucket == root_bucket else f"s3://{node.bucket}/{node.file_key}"


def _shown_entry(node: LineageNode) -> HistoryEntry | None:
    """The entry a node is labelled with: the one its child's link names (the source's latest
    step may be another, later one), else the file's latest."""
    if node.history is None:
        return None
    if node.via is not None and node.via.entry_id:
        used = node.history.entry(node.via.entry_id)
        if used is not None:
            return used
    return node.history.latest()


def _label(node: LineageNode, root_bucket: str) -> str:
    name = _name(node, root_bucket)
    if node.error:
        return f"{name} [unreadable: {node.error}]"
    if node.history is None:
        return f"{name} [no history]"
    shown = _shown_entry(node)
    status = f"{shown.step}: {shown.status.value}" if shown else "no entries"
    return f"{name} [{status}]"


def lineage_to_text(node: LineageNode) -> str:
    """An indented tree: the file first, its sources below it; a file met again is not expanded again."""
    return "\n".join([_label(node, node.bucket), *_subtree(node, "", node.bucket, {id(node)})])


def _subtree(start: LineageNode, indent: str, root_bucket: str, shown: set[int]) -> list[str]:
    # Iterative depth-first walk (node, indent, next parent): deep chains never hit the recursion limit.
    lines: list[str] = []
    stack: list[tuple[LineageNode, str, int]] = [(start, indent, 0)]
    while stack:
        current, ind, index = stack.pop()
        items = current.parents
        if index >= len(items):
            if current.truncated and index == len(items):
                lines.append(f"{ind}└── {_TRUNCATED}")
            continue
        stack.append((current, ind, index + 1))
        parent = items[index]
        last = index == len(items) - 1 and not current.truncated
        branch = "└── " if last else "├── "
        if id(parent) in shown:
            lines.append(f"{ind}{branch}{_name(parent, root_bucket)} (shown above)")
            continue
        shown.add(id(parent))
        via = f" (via entry {parent.via.entry_id})" if parent.via and parent.via.entry_id else ""
        lines.append(f"{ind}{branch}{_label(parent, root_bucket)}{via}")
        stack.append((parent, ind + ("    " if last else "│   "), 0))
    return lines


def _edges(node: LineageNode) -> tuple[dict[str, str], list[tuple[str, str]]]:
    ids: dict[int, str] = {}
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for current in node.walk():
        ident = ids.setdefault(id(current), f"n{len(ids)}")
        labels[ident] = _label(current, node.bucket)
    for current in node.walk():
        for parent in current.parents:
            edges.append((ids[id(parent)], ids[id(current)]))
    return labels, edges


def lineage_to_mermaid(node: LineageNode) -> str:
    labels, edges = _edges(node)
    lines = ["graph LR"]
    for ident, label in labels.items():
        lines.append(f'    {ident}["{label.replace(chr(34), "#quot;")}"]')
    lines.extend(f"    {a} --> {b}" for a, b in edges)
    if node.truncated:
        lines.append(f'    more["{_TRUNCATED}"]')
    return "\n".join(lines)


def lineage_to_dot(node: LineageNode) -> str:
    labels, edges = _edges(node)
    lines = ["digraph lineage {", "  rankdir=LR;"]
    for ident, label in labels.items():
        lines.append(f"  {ident} [label={json.dumps(label)}];")
    lines.extend(f"  {a} -> {b};" for a, b in edges)
    if node.truncated:
        lines.append(f"  more [label={json.dumps(_TRUNCATED)}, shape=plaintext];")
    lines.append("}")
    return "\n".join(lines)


def lineage_to_json(node: LineageNode) -> dict[str, Any]:
    """The graph as nested JSON: each file expanded once.

    A file met again is ``{"fileKey": ..., "bucket": ..., "shownElsewhere": true}``.

    The root carries ``"truncated": true`` when the node cap cut the graph.
    """
    expanded: set[int] = set()

    def head(n: LineageNode) -> dict[str, Any]:
        latest = n.history.latest() if n.history else None
        used = _shown_entry(n) if n.via is not None else None
        out: dict[str, Any] = {
            "fileKey": n.file_key,
            "bucket": n.bucket,
            "viaEntryId": n.via.entry_id if n.via else None,
            "viaStep": used.step if used else None,
            "viaStatus": used.status.value if used else None,
            "latestStep": latest.step if latest else None,
            "latestStatus": latest.status.value if latest else None,
            "entries": len(n.history.entries) if n.history else 0,
            "parents": [],
        }
        if n.error:
            out["error"] = n.error
        if n.truncated:
            out["truncated"] = True
        return out

    root = head(node)
    expanded.add(id(node))
    stack: list[tuple[LineageNode, dict[str, Any]]] = [(node, root)]
    while stack:
        current, out = stack.pop()
        for parent in current.parents:
            if id(parent) in expanded:
                out["parents"].append({"fileKey": parent.file_key, "bucket": parent.bucket, "shownElsewhere": True})
                continue
            expanded.add(id(parent))
            child = head(parent)
            out["parents"].append(child)
            stack.append((parent, child))
    root["truncated"] = node.truncated
    return root
