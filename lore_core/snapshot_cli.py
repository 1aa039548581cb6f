"""``lore snapshot`` and ``lore query``: the SQL commands, registered into ``lore``'s parser by ``cli.py``.

Example::

    lore --store s3://my-bucket/.lore-s3 snapshot --to s3://my-bucket/lore-snapshot
    lore query --snapshot s3://my-bucket/lore-snapshot "select step, status, count(*) as n from entries group by all"
    LORE_SNAPSHOT=./snap lore query --csv "select * from lineage"

Each handler returns the exit status; Lore's errors propagate to ``cli.main`` (one line, exit 1).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .ids import format_timestamp
from .query import QueryResult, query_snapshot
from .snapshot import write_snapshot
from .stores import S3Store
from .tracker import LoreTracker

__all__ = ["add_commands"]


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``snapshot`` and ``query`` to ``lore``'s subcommands; each sets ``sql_handler(args) -> exit status``."""
    snapshot = commands.add_parser(
        "snapshot",
        parents=[common],
        help="write the histories as Parquet tables (entries, lineage) for SQL; incremental",
        description="Write every history (archived entries included) as Hive-partitioned Parquet tables "
        "entries/ and lineage/ under a directory or s3://bucket/prefix. A later run reads only the histories "
        "whose ETag changed.",
    )
    snapshot.add_argument(
        "--to",
        default=os.environ.get("LORE_SNAPSHOT"),
        help="directory or s3://bucket/prefix to write (default: $LORE_SNAPSHOT)",
    )
    snapshot.add_argument("--full", action="store_true", help="rebuild from every history instead of the changes")
    snapshot.set_defaults(sql_handler=run_snapshot)

    query = commands.add_parser(
        "query",
        parents=[common],
        help="run SQL (DuckDB) over a snapshot: tables entries and lineage",
        description="Run SQL with embedded DuckDB over a snapshot written by `lore snapshot`; the tables are "
        "entries and lineage, each with a date column.",
    )
    query.add_argument("sql", help='e.g. "select step, status, count(*) as n from entries group by all"')
    query.add_argument(
        "--snapshot",
        default=os.environ.get("LORE_SNAPSHOT"),
        help="directory or s3://bucket/prefix of the snapshot (default: $LORE_SNAPSHOT)",
    )
    query.add_argument("--csv", action="store_true", help="print CSV (with a header row)")
    query.set_defaults(sql_handler=run_query)


def _usage(message: str) -> int:
    print(f"lore: error: {message}", file=sys.stderr)
    return 2


def _setting(args: argparse.Namespace, name: str) -> str | None:
    """A global option as given (before or after the command), else its ``LORE_*`` variable."""
    value = getattr(args, name, None)
    return str(value) if value else os.environ.get(f"LORE_{name.upper()}") or None


def _s3_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"endpoint_url": _setting(args, "endpoint_url"), "region": _setting(args, "region")}


def run_snapshot(args: argparse.Namespace) -> int:
    store = _setting(args, "store")
    if not store:
        return _usage("no store given: pass --store URL or set LORE_STORE (e.g. s3://my-bucket/.lore-s3)")
    if not args.to:
        return _usage("no snapshot location given: pass --to DIR or s3://bucket/prefix, or set LORE_SNAPSHOT")
    options = _s3_options(args) if store.startswith("s3://") else {}
    tracker = LoreTracker.from_url(store, **options)
    # The tracker's own S3 client writes an s3:// snapshot when there is one; else one built from the options.
    writer = {} if isinstance(tracker.store, S3Store) else _s3_options(args)
    result = write_snapshot(tracker, args.to, full=args.full, **writer)
    if getattr(args, "json", False):
        print(json.dumps(result.to_json_dict(), indent=2))
    else:
        print(result.summary())
    return 0


def _plain(value: Any) -> Any:
    """A JSON value for a DuckDB/Arrow value (timestamps as Lore writes them: UTC, milliseconds)."""
    if isinstance(value, datetime):
        return format_timestamp(value) if value.tzinfo is not None else value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any, null: str) -> str:
    value = _plain(value)
    if value is None:
        return null
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _print_table(result: QueryResult) -> None:
    if not result.columns:
        return
    cells = [[_cell(v, "NULL").replace("\n", " ") for v in row] for row in result.rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(result.columns)]
    print("  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"({len(cells)} row{'s' if len(cells) != 1 else ''})")


def run_query(args: argparse.Namespace) -> int:
    if not args.snapshot:
        return _usage("no snapshot given: pass --snapshot DIR or s3://bucket/prefix, or set LORE_SNAPSHOT")
    as_json = bool(getattr(args, "json", False))
    if as_json and args.csv:
        return _usage("choose one of --json and --csv")
    result = query_snapshot(args.snapshot, args.sql, **_s3_options(args))
    if as_json:
        rows = [dict(zip(result.columns, (_plain(v) for v in row), strict=True)) for row in result.rows]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if result.columns:
            writer.writerow(result.columns)
        writer.writerows([_cell(v, "") for v in row] for row in result.rows)
    else:
        _print_table(result)
    return 0
