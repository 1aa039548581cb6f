"""Lay out a file's ancestors and descendants as columns for an inline SVG (no JS, no CDN).

Example::

    from lore_airflow.ui.graph import layout

    g = layout(("b", "root.csv"), parents={("b", "root.csv"): [("b", "raw.csv")]}, children={})
    assert [n.label for n in g.nodes] == ["raw.csv", "root.csv"]
"""

from __future__ import annotations

from dataclasses import dataclass

from lore_core.integration import s3_url

__all__ = ["Edge", "Graph", "Node", "layout"]

FileId = tuple[str, str]  # (bucket, key)

COL_W = 260
ROW_H = 56
BOX_W = 220
BOX_H = 34


@dataclass
class Node:
    file: FileId
    label: str
    x: int
    y: int
    role: str  # "root" | "ancestor" | "descendant"
    status: str | None = None
    href: str = ""
    outside: bool = False  # in a bucket the page may not read: drawn, never read or linked


@dataclass
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    truncated: bool = False  # more ancestors than the page draws


def _depths(start: FileId, links: dict[FileId, list[FileId]], limit: int) -> dict[FileId, int]:
    depth = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for item in frontier:
            for other in links.get(item, []):
                if other not in depth and len(depth) < limit:
                    depth[other] = depth[item] + 1
                    nxt.append(other)
        frontier = nxt
    return depth


def layout(
    root: FileId,
    parents: dict[FileId, list[FileId]],
    children: dict[FileId, list[FileId]],
    *,
    status: dict[FileId, str] | None = None,
    limit: int = 80,
) -> Graph:
    """Ancestors to the left of ``root``, descendants to the right, one column per generation."""
    status = status or {}
    up = _depths(root, parents, limit)
    down = _depths(root, children, limit)
    column: dict[FileId, int] = {}
    for f, d in up.items():
        column[f] = -d
    for f, d in down.items():
        if f not in column:
            column[f] = d
    min_col = min(column.values())
    by_col: dict[int, list[FileId]] = {}
    for f, c in sorted(column.items(), key=lambda item: (item[1], item[0])):
        by_col.setdefault(c, []).append(f)
    rows = max(len(v) for v in by_col.values())
    nodes: dict[FileId, Node] = {}
    for c, files in by_col.items():
        for i, f in enumerate(files):
            label = f[1] if f[0] == root[0] else s3_url(*f)
            role = "root" if f == root else ("ancestor" if c < 0 else "descendant")
            nodes[f] = Node(f, label, 10 + (c - min_col) * COL_W, 10 + i * ROW_H, role, status.get(f))
    edges: list[Edge] = []
    seen: set[tuple[FileId, FileId]] = set()
    for links, forward in ((parents, False), (children, True)):
        for a, others in links.items():
            for b in others:
                src, dst = (a, b) if forward else (b, a)
                if src in nodes and dst in nodes and (src, dst) not in seen and src != dst:
                    seen.add((src, dst))
                    start, end = nodes[src], nodes[dst]
                    edges.append(Edge(start.x + BOX_W, start.y + BOX_H // 2, end.x, end.y + BOX_H // 2))
    width = 20 + (max(column.values()) - min_col) * COL_W + BOX_W
    height = 20 + rows * ROW_H
    return Graph(list(nodes.values()), edges, width, height)
