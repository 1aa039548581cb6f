"""Lineage as a graph of files: each file appears once, however often and however it was derived.

Promises: ``build_lineage`` costs two round trips at any depth when documents carry
``ancestry`` (the file, then every ancestor in parallel); parents no ancestry lists
(documents written by other tools) are fetched level by level. The result is a DAG
of ``LineageNode`` objects (a file reached by two paths is one shared node), capped
at ``max_nodes`` with ``truncated`` set where parents were left out. ``walk()``
visits each node once. It does not draw anything (``render``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import LoreError
from ..models import FileHistory, LineageRef

__all__ = ["LineageNode", "build_lineage"]

DocKey = tuple[str, str]
FetchOne = Callable[[str, str], FileHistory | None]


@dataclass(eq=False)
class LineageNode:
    """One file in a lineage graph: its history and the files it was derived from (shared nodes)."""

    file_key: str
    bucket: str
    history: FileHistory | None = None
    via: LineageRef | None = None
    parents: list[LineageNode] = field(default_factory=list)
    error: str | None = None
    truncated: bool = False

    def walk(self) -> list[LineageNode]:
        """This node and every ancestor, each once, depth first."""
        out: list[LineageNode] = []
        seen: set[int] = set()
        stack: list[LineageNode] = [self]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            out.append(node)
            stack.extend(reversed(node.parents))
        return out

    @property
    def key(self) -> DocKey:
        return (self.bucket, self.file_key)


def _absolute(ref: LineageRef, doc_bucket: str) -> DocKey:
    return (ref.bucket or doc_bucket, ref.file_key)


def _fetch_into(
    fetch_one: FetchOne, wanted: Iterable[DocKey], docs: dict[DocKey, FileHistory | None], errors: dict[DocKey, str]
) -> None:
    todo = [item for item in dict.fromkeys(wanted) if item not in docs and item not in errors]
    if not todo:
        return

    def fetch(item: DocKey) -> tuple[DocKey, FileHistory | None, str | None]:
        try:
            return item, fetch_one(item[0], item[1]), None
        except LoreError as exc:  # one bad ancestor must not hide the rest of the graph
            return item, None, str(exc)

    with ThreadPoolExecutor(max_workers=min(32, len(todo))) as pool:
        for item, doc, error in pool.map(fetch, todo):
            if error is not None:
                errors[item] = error
            else:
                docs[item] = doc


def build_lineage(root: FileHistory, bucket: str, fetch_one: FetchOne, max_nodes: int = 2000) -> LineageNode:
    """The lineage DAG of ``root`` (already read), fetching ancestors with ``fetch_one(bucket, key)``."""
    root_key = (bucket, root.file_key)
    docs: dict[DocKey, FileHistory | None] = {root_key: root}
    errors: dict[DocKey, str] = {}
    # Round trip 2: every ancestor the document lists, at once (never more than the cap).
    _fetch_into(fetch_one, [_absolute(r, bucket) for r in (root.ancestry or [])][:max_nodes], docs, errors)
    top = LineageNode(file_key=root.file_key, bucket=bucket, history=root)
    nodes: dict[DocKey, LineageNode] = {root_key: top}
    frontier = [root_key]
    while frontier:
        # Parents no ancestry listed (other tools' documents, or ancestry cut at its bound).
        wanted = [
            _absolute(ref, key[0]) for key in frontier if (doc := docs.get(key)) is not None for ref in doc.derived_from
        ]
        room = max(0, max_nodes - len(nodes))  # never read more files than the cap can show
        _fetch_into(fetch_one, [k for k in dict.fromkeys(wanted) if k not in nodes][:room], docs, errors)
        following: list[DocKey] = []
        for key in frontier:
            node = nodes[key]
            doc = docs.get(key)
            for ref in doc.derived_from if doc is not None else []:
                parent_key = _absolute(ref, key[0])
                parent = nodes.get(parent_key)
                if parent is None:
                    if len(nodes) >= max_nodes:
                        node.truncated = top.truncated = True
                        continue
                    parent = LineageNode(
                        file_key=parent_key[1],
                        bucket=parent_key[0],
                        history=docs.get(parent_key),
                        via=ref,
                        error=errors.get(parent_key),
                    )
                    nodes[parent_key] = parent
                    following.append(parent_key)
                if parent not in node.parents:
                    node.parents.append(parent)
        frontier = following
    return top
