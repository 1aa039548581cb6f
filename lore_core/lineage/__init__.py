"""Lineage graphs (``graph``) and their drawings as text, JSON, Mermaid and Graphviz dot (``render``)."""

from .graph import LineageNode, build_lineage
from .render import lineage_to_dot, lineage_to_json, lineage_to_mermaid, lineage_to_text

__all__ = [
    "LineageNode",
    "build_lineage",
    "lineage_to_dot",
    "lineage_to_json",
    "lineage_to_mermaid",
    "lineage_to_text",
]
