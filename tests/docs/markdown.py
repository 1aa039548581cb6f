"""Fenced code blocks of the README and docs/, with what surrounds them.

Each block knows its file, the line of its opening fence, its language, its text
(dedented when the fence is indented, as in a list item), the section it is in, the
``<!-- test: NAME -->`` marker right before it (if any) and the prose paragraph that
precedes it.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
_HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")
_MARKER = re.compile(r"^<!--\s*test:\s*(?P<name>[\w.:/-]+)\s*-->$")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository, e.g. "docs/dagster.md"
    line: int  # 1-based line of the opening fence
    lang: str  # "" for a fence without an info string
    text: str
    section: str  # the nearest "## " heading above the block ("" before the first)
    marker: str | None  # NAME of a "<!-- test: NAME -->" line right before the fence
    prose: str  # the paragraph right before the block (after the previous block or heading)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def first_text_line(self) -> int:
        """The 1-based line of the block's first line of code."""
        return self.line + 1

    def __str__(self) -> str:
        return f"{self.where} ({self.lang or 'no language'})"


def doc_paths() -> list[Path]:
    """The documents whose code blocks are checked: the README and every page of docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = path.relative_to(REPO).as_posix()
    blocks: list[Block] = []
    section = ""
    prose_start = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        if heading:
            if len(heading.group(1)) == 2:
                section = heading.group(2)
            prose_start = i + 1
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            i += 1
            continue
        indent, marks = fence.group("indent"), fence.group("fence")
        end = i + 1
        while end < len(lines) and not re.match(rf"^ {{0,{len(indent) + 3}}}{re.escape(marks)}\s*$", lines[end]):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{rel}:{i + 1}: code fence is never closed")
        body = textwrap.dedent("\n".join(lines[i + 1 : end]))
        before = [text.strip() for text in lines[prose_start:i] if text.strip()]
        marker = _MARKER.match(before[-1]) if before else None
        paragraph: list[str] = []
        for text in reversed(lines[prose_start:i]):
            if _MARKER.match(text.strip()):
                continue
            if not text.strip() and paragraph:
                break
            if text.strip():
                paragraph.insert(0, text.strip())
        blocks.append(
            Block(
                path=rel,
                line=i + 1,
                lang=fence.group("info").strip().split(" ")[0] if fence.group("info").strip() else "",
                text=body + "\n",
                section=section,
                marker=marker.group("name") if marker else None,
                prose=" ".join(paragraph),
            )
        )
        prose_start = end + 1
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in doc_paths() for block in blocks_of(path)]
