"""What Lore attaches to a materialization, so the asset page shows history and lineage.

Every key starts with ``lore/``:

=====================  =====================================================
``lore/entry_id``      the history entry recorded for this materialization
``lore/status``        its status (``success`` or ``failed``)
``lore/file``          the S3 object the entry belongs to (``s3://bucket/key``)
``lore/history``       where its history document lives
``lore/derived_from``  the objects (and entries) it was derived from
``lore/lineage``       a Markdown tree of all known ancestors
``lore/successes``     how many successful entries that file has had
``lore/failures``      how many failed entries that file has had
``lore/replay``        True when the entry replays a failed one
``lore/replay_of``     the failed entry it replays (replays only)
=====================  =====================================================

Labels (file keys) are data, never Markdown: in ``lore/lineage`` and
``lore/derived_from`` each is escaped (``markdown_text``) or a code span
(``markdown_code``), so a key such as ``[x](javascript:...)`` or ``<img ...>`` is shown
as it is and never becomes a link or HTML.

A step that fails gets a failed entry and, on the failed asset (partition), an
observation with ``lore/entry_id``, ``lore/status``, ``lore/error``, ``lore/file``,
``lore/history``, ``lore/run_id`` and ``lore/run`` (a link to the run).

``lore_lineage_metadata`` builds the ``lore/reads``/``lore/writes`` metadata an asset
returns in a ``MaterializeResult`` when it writes its own S3 objects.

Example::

    import dagster as dg
    from lore_dagster import lore_lineage_metadata

    @dg.asset
    def copy_report() -> dg.MaterializeResult:
        ...  # copy reports/in.csv to reports/out.csv yourself
        return dg.MaterializeResult(
            metadata=lore_lineage_metadata(reads=["reports/in.csv"], writes=["reports/out.csv"])
        )
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from lore_core import FileHistory, HistoryEntry, LineageNode, LineageRef, LoreTracker
from lore_core.integration import s3_url

__all__ = ["failure_metadata", "lineage_markdown", "lore_lineage_metadata", "materialization_metadata"]

# Bounds keep the metadata small on wide or deep lineages; the full tree is one CLI call away.
_MAX_TREE_NODES = 40
_MAX_TREE_DEPTH = 8


def lore_lineage_metadata(reads: Sequence[str] = (), writes: Sequence[str] = ()) -> dict[str, Any]:
    """``MaterializeResult`` metadata naming the S3 keys an asset read and wrote.

    Lore records one success entry on each written key, derived from every read key
    (their latest successful entries), exactly as ``LoreResource.track`` would.

    Example::

        >>> lore_lineage_metadata(reads=["raw/a.csv"], writes=["out/a.json"])["lore/writes"].value
        ['out/a.json']
    """
    return {
        "lore/reads": dg.MetadataValue.json(list(reads)),
        "lore/writes": dg.MetadataValue.json(list(writes)),
    }


def _label(bucket: str, key: str, home_bucket: str) -> str:
    return key if bucket == home_bucket else s3_url(bucket, key)


# What can make Markdown out of text: emphasis, code, links and images, raw HTML and entities,
# autolinks (an e-mail address, a scheme), line-start blocks; any other character is inert.
_MARKDOWN_SPECIAL = frozenset("\\`*_{}[]()<>#!|&~@:")


def markdown_text(text: str) -> str:
    r"""``text`` as literal Markdown text: no link, no HTML, no emphasis, nothing but its characters.

    Characters that could start Markdown or HTML are backslash-escaped (CommonMark renders
    ``\<`` as ``<``, never as the start of a tag) and line breaks become spaces (they
    would start a new block).

    Example::

        >>> print(markdown_text("[md](javascript:alert(1))"))
        \[md\]\(javascript\:alert\(1\)\)
    """
    return "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else " " if c in "\r\n" else c for c in text)


def markdown_code(text: str) -> str:
    """``text`` as a Markdown code span: shown as it is (HTML and Markdown inert), whatever backticks it holds.

    Example::

        >>> print(markdown_code("a`b"))
        ``a`b``
    """
    text = text.replace("\r", " ").replace("\n", " ")
    longest = current = 0
    for c in text:
        current = current + 1 if c == "`" else 0
        longest = max(longest, current)
    fence = "`" * (longest + 1)
    # A span that starts or ends with a backtick (or a space) is padded; CommonMark strips one space each side.
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _status_of(history: FileHistory | None, entry_id: str | None) -> str:
    if history is None:
        return "untracked"
    if not history.entries:
        return "source"  # known only as something files were derived from
    entry = history.entry(entry_id) if entry_id else history.latest()
    return entry.status.value if entry is not None else "no entry"


def lineage_markdown(node: LineageNode, home_bucket: str | None = None) -> str:
    """A compact Markdown tree of ``node`` and its ancestors (bounded in size).

    The lineage is a DAG: a file reached again is named "(see above)" and not expanded
    again (a visited set), so the tree grows with the number of files, never with the
    number of paths; a graph ``get_lineage`` cut at its node cap says so.

    Example::

        >>> from lore_core import LineageNode
        >>> print(lineage_markdown(LineageNode(file_key="a.json", bucket="b")))
        - **a.json** (untracked)
    """
    home = home_bucket or node.bucket
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()

    def visit(item: LineageNode, depth: int) -> None:
        if len(lines) >= _MAX_TREE_NODES:
            return
        indent = "  " * depth
        label = _label(item.bucket, item.file_key, home)
        via = item.via.entry_id if item.via is not None else None
        status = _status_of(item.history, via)
        # Keys are data, not Markdown: a key named "[x](javascript:...)" or "<img ...>" is shown as it is.
        text = f"**{markdown_text(label)}**" if depth == 0 else markdown_code(label)
        suffix = f" ({status}" + (f", entry {markdown_code(via)}" if via else "") + ")"
        ident = (item.bucket, item.file_key)
        if ident in seen:
            lines.append(f"{indent}- {text}{suffix} (see above)")
            return
        seen.add(ident)
        lines.append(f"{indent}- {text}{suffix}")
        if depth >= _MAX_TREE_DEPTH and item.parents:
            lines.append(f"{indent}  - … {len(item.parents)} more")
            return
        for parent in item.parents:
            visit(parent, depth + 1)
        if item.truncated and len(lines) < _MAX_TREE_NODES:
            lines.append(f"{indent}  - … more ancestors not read (lineage node cap)")

    visit(node, 0)
    if len(lines) >= _MAX_TREE_NODES:
        lines.append("- … (tree truncated)")
    return "\n".join(lines)


def _derived_from_markdown(refs: Sequence[LineageRef], home_bucket: str) -> str:
    if not refs:
        return "_no recorded sources_"
    return "\n".join(
        f"- {markdown_code(_label(r.bucket or home_bucket, r.file_key, home_bucket))}"
        + (f" (entry {markdown_code(r.entry_id)})" if r.entry_id else "")
        for r in refs
    )


def materialization_metadata(
    tracker: LoreTracker,
    file_key: str,
    entry: HistoryEntry,
    derived_from: Sequence[LineageRef],
    processed_file: str | None = None,
    *,
    replay_of: str | None = None,
) -> dict[str, Any]:
    """The ``lore/*`` metadata for one recorded entry, from what the tracker just read and wrote.

    For a per-file partition the counts are those of this step on ``processed_file``,
    where its failures are recorded (its output object only ever sees successes). A replay
    (of the failed entry ``replay_of``) says so: ``lore/replay`` and ``lore/replay_of``.
    """
    # What was just recorded is in the tracker's cache: no request reads it back.
    if processed_file is not None:
        source = tracker.get_history(processed_file, fresh=False)
        counts = {"success": 0, "failed": 0}
        for item in source.entries if source is not None else []:
            if item.step == entry.step and item.status.value in counts:
                counts[item.status.value] += 1
    else:
        history = tracker.get_history(file_key, fresh=False)
        counts = history.counts() if history is not None else {}
    lineage = tracker.get_lineage(file_key, fresh=False)
    tree = lineage_markdown(lineage, tracker.bucket) if lineage is not None else "_no lineage recorded_"
    return {
        "lore/entry_id": dg.MetadataValue.text(entry.id),
        "lore/status": dg.MetadataValue.text(entry.status.value),
        "lore/file": dg.MetadataValue.text(s3_url(tracker.bucket, file_key)),
        "lore/history": dg.MetadataValue.text(tracker.history_location(file_key)),
        "lore/derived_from": dg.MetadataValue.md(_derived_from_markdown(derived_from, tracker.bucket)),
        "lore/lineage": dg.MetadataValue.md(tree),
        "lore/successes": dg.MetadataValue.int(counts.get("success", 0)),
        "lore/failures": dg.MetadataValue.int(counts.get("failed", 0)),
        **({"lore/processed_file": dg.MetadataValue.text(processed_file)} if processed_file else {}),
        "lore/replay": dg.MetadataValue.bool(replay_of is not None),
        **({"lore/replay_of": dg.MetadataValue.text(replay_of)} if replay_of else {}),
    }


def failure_metadata(
    tracker: LoreTracker, file_key: str, entry: HistoryEntry, processed_file: str | None = None
) -> dict[str, Any]:
    """The ``lore/*`` metadata of a failed entry, for the observation of the failed (partition of the) asset."""
    error = entry.error
    orchestrator = entry.orchestrator
    out: dict[str, Any] = {
        "lore/entry_id": dg.MetadataValue.text(entry.id),
        "lore/status": dg.MetadataValue.text(entry.status.value),
        "lore/error": dg.MetadataValue.text(
            (f"{error.name}: " if error is not None and error.name else "") + (error.message if error else "failed")
        ),
        "lore/file": dg.MetadataValue.text(s3_url(tracker.bucket, file_key)),
        "lore/history": dg.MetadataValue.text(tracker.history_location(file_key)),
    }
    if orchestrator is not None and orchestrator.run_id:
        out["lore/run_id"] = dg.MetadataValue.text(orchestrator.run_id)
    if orchestrator is not None and orchestrator.url:
        out["lore/run"] = dg.MetadataValue.url(orchestrator.url)
    if processed_file:
        out["lore/processed_file"] = dg.MetadataValue.text(processed_file)
    if entry.replay_of:
        out["lore/replay_of"] = dg.MetadataValue.text(entry.replay_of)
    return out
