"""``lore``: read histories, lineage and failures from the command line.

Example::

    lore --store s3://my-bucket/.lore-s3 history uploads/report.pdf
    LORE_STORE=file:///data/bucket lore lineage renders/p1.png --format mermaid
    lore failed --prefix raw/ --json

Errors print one line and exit non-zero (1 for Lore's errors, 2 for usage).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import snapshot_cli  # lore snapshot / lore query
from .errors import HistoryNotFoundError, LoreError
from .ids import format_timestamp
from .lineage import lineage_to_dot, lineage_to_json, lineage_to_mermaid, lineage_to_text
from .models import FileHistory, HistoryEntry
from .tracker import LoreTracker

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser = argparse.ArgumentParser(
        prog="lore",
        description="Read Lore's per-file history and lineage from an S3 bucket (or a local store).",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("LORE_STORE"),
        help="store URL: s3://bucket/prefix, file:///dir or memory://name (default: $LORE_STORE)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get("LORE_ENDPOINT_URL"),
        help="S3 endpoint for MinIO, R2 or a local server (default: $LORE_ENDPOINT_URL)",
    )
    parser.add_argument("--region", default=os.environ.get("LORE_REGION"), help="AWS region (default: $LORE_REGION)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    history = commands.add_parser("history", parents=[common], help="a file's entries")
    history.add_argument("key", help="the file's key in the bucket")
    lineage = commands.add_parser("lineage", parents=[common], help="the files a file was derived from")
    lineage.add_argument("key")
    lineage.add_argument("--format", choices=["tree", "json", "mermaid", "dot"], default="tree")
    descendants = commands.add_parser("descendants", parents=[common], help="files derived directly from a file")
    descendants.add_argument("key")
    failed = commands.add_parser("failed", parents=[common], help="unresolved failed entries, from the index")
    failed.add_argument("--prefix", help="only files whose key starts with this")
    failed.add_argument("--step", help="only entries of this step")
    listing = commands.add_parser("ls", parents=[common], help="tracked files")
    listing.add_argument("--prefix", help="only files whose key starts with this")
    snapshot_cli.add_commands(commands, common)  # lore snapshot / lore query: their own module
    return parser


def _entry_line(entry: HistoryEntry) -> str:
    duration = f"{entry.duration_ms} ms" if entry.duration_ms is not None else "-"
    parts = [entry.id, entry.status.value.ljust(7), entry.step, format_timestamp(entry.started_at), duration]
    if entry.attempt and entry.attempt > 1:
        parts.append(f"attempt {entry.attempt}")
    if entry.replay_of:
        parts.append(f"replay of {entry.replay_of}")
    if entry.resolved_by:
        parts.append(f"resolved by {entry.resolved_by}")
    if entry.error is not None:
        parts.append(f"error: {entry.error.name + ': ' if entry.error.name else ''}{entry.error.message}")
    return "  ".join(parts)


def _print_history(tracker: LoreTracker, history: FileHistory) -> None:
    print(f"{history.file_key}  ({tracker.history_location(history.file_key)})")
    print(f"  created {format_timestamp(history.created_at)}, updated {format_timestamp(history.updated_at)}")
    if history.derived_from:
        print("  derived from: " + ", ".join(r.file_key for r in history.derived_from))
    if history.derived_to:
        print("  derived to:   " + ", ".join(r.file_key for r in history.derived_to))
    if not history.entries:
        print("  no entries")
    for entry in history.entries:
        print("  " + _entry_line(entry))


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "sql_handler", None) is not None:  # lore snapshot / lore query (snapshot_cli.py)
        return int(args.sql_handler(args))
    if not args.store:
        raise _UsageError("no store given: pass --store URL or set LORE_STORE (e.g. s3://my-bucket/.lore-s3)")
    options: dict[str, Any] = {}
    if args.store.startswith("s3://"):
        options = {"endpoint_url": args.endpoint_url, "region": args.region}
    tracker = LoreTracker.from_url(args.store, **options)

    if args.command == "history":
        history = tracker.get_history(args.key)
        if history is None:
            raise HistoryNotFoundError(f"no history for {args.key!r} at {tracker.history_location(args.key)}")
        if args.json:
            _emit(history.to_json_dict())
        else:
            _print_history(tracker, history)
    elif args.command == "lineage":
        node = tracker.get_lineage(args.key)
        if node is None:
            raise HistoryNotFoundError(f"no history for {args.key!r} at {tracker.history_location(args.key)}")
        if args.json or args.format == "json":
            _emit(lineage_to_json(node))
        elif args.format == "mermaid":
            print(lineage_to_mermaid(node))
        elif args.format == "dot":
            print(lineage_to_dot(node))
        else:
            print(lineage_to_text(node))
    elif args.command == "descendants":
        children = tracker.get_descendants(args.key)
        if args.json:
            _emit(children)
        else:
            for child in children:
                print(child)
    elif args.command == "failed":
        failures = list(tracker.list_failed(prefix=args.prefix, step=args.step))
        if args.json:
            _emit([f.model_dump(mode="json") for f in failures])
        else:
            for f in failures:
                when = format_timestamp(f.failed_at) if f.failed_at else "-"
                print(f"{f.file_key}  {f.step}  {f.entry_id}  {when}")
    elif args.command == "ls":
        keys = tracker.list_tracked_files(prefix=args.prefix)
        if args.json:
            _emit(list(keys))
        else:
            for key in keys:
                print(key)
    return 0


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except _UsageError as exc:
        print(f"lore: error: {exc}", file=sys.stderr)
        return 2
    except LoreError as exc:
        print(f"lore: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
