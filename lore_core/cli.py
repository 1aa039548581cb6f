"""``lore``: read histories, lineage and failures from the command line.

Example::

    lore --store s3://my-bucket/.lore-s3 history uploads/report.pdf
    LORE_STORE=file:///data/bucket lore lineage renders/p1.png --format mermaid
    lore failed --prefix raw/ --json
    lore info

The store and its S3 settings come from the options (``--store``, ``--endpoint-url``,
``--region``, ``--profile``, before or after the command), then ``LORE_*`` variables,
``lore.toml`` / ``[tool.lore]``, and ``~/.config/lore/lore.toml`` (``lore_core.settings``).
Human output ends with a ``store: ...`` line on stderr naming the store it read;
``--json`` prints JSON only (camelCase, timestamps ISO-8601 UTC with milliseconds, as
in the documents). Errors print one line and exit 1 (2 for usage and configuration
mistakes); no traceback (``LORE_DEBUG=1`` shows one for Lore's own bugs). Commands
other than ``info`` only read: they create nothing, not even on a ``file://`` store.
Listing shows progress on a terminal, and nothing when piped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from . import keys, snapshot_cli  # snapshot_cli: lore snapshot / lore query
from .errors import HistoryNotFoundError, LoreConfigError, LoreError, StoreError
from .ids import format_timestamp, new_entry_id
from .lineage import lineage_to_dot, lineage_to_json, lineage_to_mermaid, lineage_to_text
from .models import FailedEntry, FileHistory, HistoryEntry
from .settings import LoreConfig, load_config
from .stores import S3Store, open_store, verify_conditional_writes
from .tracker import LoreTracker

__all__ = ["Session", "main"]

_T = TypeVar("_T")
#: How long the CLI retries a store that answers with transient errors (5xx, timeouts), saying
#: so on stderr; a refused connection fails at once. ``outage_timeout`` in the config wins.
CLI_OUTAGE_TIMEOUT = 15.0
_CLI_CLIENT = {"max_attempts": 1, "connect_timeout": 3.0, "read_timeout": 20.0}  # Lore's loop retries, and says so
_GLOBAL = {"store": "--store", "endpoint_url": "--endpoint-url", "region": "--region", "profile": "--profile"}
_STORE_OPTIONS = ("expected_bucket_owner", "sse", "sse_kms_key_id")
_LS_HELP = (
    "tracked files with each one's latest step and status. Reading the statuses costs one GET per "
    "file (32 in parallel; about 2 hours for 1M files); --no-status lists keys only (one LIST per 1,000 files)"
)


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes, before or after its name (after wins)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--store",
        default=default(None),
        help="store URL: s3://bucket/prefix, file:///dir or memory://name (default: $LORE_STORE, then lore.toml)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=default(None),
        help="S3 endpoint for MinIO, R2, Ceph or a local server, e.g. http://127.0.0.1:9000 ($LORE_ENDPOINT_URL)",
    )
    parser.add_argument("--region", default=default(None), help="S3 region; 'auto' for R2 ($LORE_REGION)")
    parser.add_argument("--profile", default=default(None), help="AWS profile from ~/.aws/config ($LORE_PROFILE)")
    parser.add_argument("--json", action="store_true", default=default(False), help="print JSON instead of text")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog="lore",
        description="Read Lore's per-file history and lineage from an S3 bucket (or a local store).",
        epilog="Settings: options, then LORE_* variables, lore.toml or [tool.lore] in pyproject.toml, "
        "then ~/.config/lore/lore.toml; `lore info` shows what is in force and from where.",
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    history = commands.add_parser("history", parents=[common], help="a file's entries")
    history.add_argument("key", help="the file's key in the bucket")
    history.set_defaults(handler=_history)
    lineage = commands.add_parser("lineage", parents=[common], help="the files a file was derived from")
    lineage.add_argument("key")
    lineage.add_argument("--format", choices=["tree", "json", "mermaid", "dot"], default="tree")
    lineage.set_defaults(handler=_lineage)
    descendants = commands.add_parser("descendants", parents=[common], help="files derived directly from a file")
    descendants.add_argument("key")
    descendants.set_defaults(handler=_descendants)
    failed = commands.add_parser("failed", parents=[common], help="unresolved failed entries, from the index")
    failed.add_argument("--prefix", help="only files whose key starts with this")
    failed.add_argument("--step", help="only entries of this step")
    failed.set_defaults(handler=_failed)
    listing = commands.add_parser(
        "ls", parents=[common], help="tracked files and their latest status", description=_LS_HELP
    )
    listing.add_argument("--prefix", help="only files whose key starts with this")
    listing.add_argument(
        "--status",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read each file's history for its latest step and status (default; one GET per file)",
    )
    listing.set_defaults(handler=_ls)
    info = commands.add_parser(
        "info",
        parents=[common],
        help="the store in force, where each setting came from, the conditional-write check, counts",
        description="Shows the store and settings in force and where each came from, runs the conditional-write "
        "check (it writes and deletes probe objects under <prefix>/~lore/probe/; --no-check skips it), and "
        "counts tracked files (one LIST per 1,000) and open failures (the failure index).",
    )
    info.add_argument("--no-check", action="store_true", help="skip the conditional-write check (write nothing)")
    info.set_defaults(handler=_info)
    snapshot_cli.add_commands(commands, common)  # lore snapshot / lore query: their own module
    return parser


class _UsageError(Exception):
    pass


# --------------------------------------------------------------------------- the session


@dataclass
class Session:
    """What a command needs: the settings in force and, on first use, a read-only tracker."""

    args: argparse.Namespace
    config: LoreConfig
    _tracker: LoreTracker | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return self.config.require_store()

    @property
    def tracker(self) -> LoreTracker:
        if self._tracker is None:
            self._tracker = _open_tracker(self.config)
        return self._tracker

    def store_label(self) -> str:
        """The store as a URL a person can paste, e.g. ``s3://bucket/.lore-s3``."""
        tracker = self.tracker
        return tracker.store.location(tracker.prefix)

    def progress(self, items: Iterable[_T], what: str) -> Iterator[_T]:
        """``items``, counted on the terminal while they come (``lore-s3[cli]``: rich); quiet when piped."""
        return _progress(items, what)


def _open_tracker(config: LoreConfig) -> LoreTracker:
    url = config.require_store()
    store_options: dict[str, Any] = {name: config.get(name) for name in _STORE_OPTIONS if config.get(name)}
    outage = config.get("outage_timeout", CLI_OUTAGE_TIMEOUT)
    if url.startswith("s3://"):
        store_options.update(
            s3_client=config.s3_client(**_CLI_CLIENT), outage_timeout=outage, retry_refused_connections=False
        )
    elif url.startswith("file:"):
        _require_directory(url)
    store, prefix = open_store(url, **store_options)
    options = {k: v for k, v in config.tracker_options().items() if k not in _STORE_OPTIONS and k != "openlineage"}
    options["outage_timeout"] = outage
    return LoreTracker(prefix=prefix, store=store, **options)


def _require_directory(url: str) -> None:
    """A read of a ``file://`` store that does not exist is an error, as a missing bucket is (and creates nothing)."""
    parsed = urlparse(url)
    path = Path(unquote(parsed.path)).expanduser()
    if parsed.netloc in ("", "localhost") and parsed.path and not path.is_dir():
        raise StoreError(f"no store at {url}: the directory {path} does not exist")


def _progress(items: Iterable[_T], what: str) -> Iterator[_T]:
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield from items
        return
    try:  # the [cli] extra; the core itself depends on nothing it does not need
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    except ImportError:
        yield from items
        return

    columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed:,}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=None)
        for item in items:
            bar.advance(task)
            yield item


# --------------------------------------------------------------------------- output helpers


def _emit(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _time(value: Any) -> str | None:
    return format_timestamp(value) if value is not None else None


def _not_found(session: Session, key: str) -> HistoryNotFoundError:
    """ "no history", and what was probably meant when the key repeats the end of the store's prefix
    (``raw/orders.csv`` under prefix ``.lore-s3/raw`` is looked up at ``.lore-s3/raw/raw/orders.csv.json``)."""
    tracker = session.tracker
    message = f"no history for {key!r} at {tracker.history_location(key)}"
    parent, _, last = tracker.prefix.rpartition("/")
    if parent and key.startswith(last + "/"):
        inner = key[len(last) + 1 :]
        there = tracker.history_location(inner)
        found = "exists" if tracker.get_history(inner) is not None else "does not exist either"
        message += (
            f". The store's prefix {tracker.prefix!r} already ends in {last + '/'!r}: did you mean file {inner!r} "
            f"with this store, or file {key!r} under prefix {parent!r} (--store {_with_prefix(session.url, parent)})? "
            f"Both are {there}, which {found}"
        )
    return HistoryNotFoundError(message)


def _with_prefix(url: str, prefix: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme in ("s3", "memory"):
        return f"{parsed.scheme}://{parsed.netloc}/{prefix}"
    return f"{url.split('?', 1)[0]}?prefix={prefix}"


def _ref_names(history: FileHistory, refs: Iterable[Any]) -> list[str]:
    names = (r.file_key if r.bucket in (None, history.bucket) else f"s3://{r.bucket}/{r.file_key}" for r in refs)
    return list(dict.fromkeys(names))  # each related file once, however often it was linked


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
        print("  derived from: " + ", ".join(_ref_names(history, history.derived_from)))
    if history.derived_to:
        print("  derived to:   " + ", ".join(_ref_names(history, history.derived_to)))
    if not history.entries:
        print("  no entries")
    for entry in history.entries:
        print("  " + _entry_line(entry))


def _failure_json(failure: FailedEntry) -> dict[str, Any]:
    """A failure as the documents name things: camelCase, times with milliseconds."""
    out: dict[str, Any] = {
        "fileKey": failure.file_key,
        "bucket": failure.bucket,
        "entryId": failure.entry_id,
        "step": failure.step,
        "failedAt": _time(failure.failed_at),
        "abandoned": failure.abandoned,
    }
    if failure.error is not None:
        out["error"] = failure.error.to_json_dict()
    return out


def _failure_line(failure: FailedEntry) -> str:
    when = _time(failure.failed_at) or "-"
    if failure.error is not None:
        first = (failure.error.message.strip().splitlines() or [""])[0]
        reason = f"{failure.error.name + ': ' if failure.error.name else ''}{first}"
    else:
        reason = "abandoned (its lease expired)" if failure.abandoned else "-"
    return f"{failure.file_key}  {failure.step}  {failure.entry_id}  {when}  {reason}"


# --------------------------------------------------------------------------- commands


def _history(args: argparse.Namespace, session: Session) -> int:
    history = session.tracker.get_history(args.key)
    if history is None:
        raise _not_found(session, args.key)
    if args.json:
        _emit(history.to_json_dict())
    else:
        _print_history(session.tracker, history)
    return 0


def _lineage(args: argparse.Namespace, session: Session) -> int:
    node = session.tracker.get_lineage(args.key)
    if node is None:
        raise _not_found(session, args.key)
    if args.json or args.format == "json":
        _emit(lineage_to_json(node))
    elif args.format == "mermaid":
        print(lineage_to_mermaid(node))
    elif args.format == "dot":
        print(lineage_to_dot(node))
    else:
        print(lineage_to_text(node))
    return 0


def _descendants(args: argparse.Namespace, session: Session) -> int:
    history = session.tracker.get_history(args.key)
    if history is None:
        raise _not_found(session, args.key)
    children = _ref_names(history, history.derived_to)
    if args.json:
        _emit(children)
    else:
        for child in children:
            print(child)
    return 0


def _failed(args: argparse.Namespace, session: Session) -> int:
    failures = list(session.progress(session.tracker.list_failed(prefix=args.prefix, step=args.step), "failures"))
    if args.json:
        _emit([_failure_json(f) for f in failures])
    else:
        for failure in failures:
            print(_failure_line(failure))
    return 0


def _ls(args: argparse.Namespace, session: Session) -> int:
    tracker = session.tracker
    rows: list[dict[str, Any]] = []
    if args.status:
        for history in session.progress(tracker.list_all_histories(prefix=args.prefix), "reading histories"):
            latest = history.latest()
            rows.append(
                {
                    "fileKey": history.file_key,
                    "latestStep": latest.step if latest else None,
                    "latestStatus": latest.status.value if latest else None,
                    "entries": len(history.entries),
                    "updatedAt": _time(history.updated_at),
                }
            )
    else:
        rows = [{"fileKey": k} for k in session.progress(tracker.list_tracked_files(prefix=args.prefix), "listing")]
    if args.json:
        _emit(rows)
    else:
        width = max((len(r["fileKey"]) for r in rows), default=0)
        for row in rows:
            if args.status:
                status = row["latestStatus"] or "-"
                print(f"{row['fileKey']:<{width}}  {status:<7}  {row['latestStep'] or '-'}  {row['updatedAt']}")
            else:
                print(row["fileKey"])
    if not rows and args.prefix and not args.json:
        parent, _, last = tracker.prefix.rpartition("/")
        if parent and args.prefix.startswith(last + "/"):
            print(
                f"lore: nothing under {args.prefix!r}: the store's prefix {tracker.prefix!r} already ends in "
                f"{last + '/'!r} (try --prefix {args.prefix[len(last) + 1 :]!r}, or the store "
                f"{_with_prefix(session.url, parent)})",
                file=sys.stderr,
            )
    return 0


def _store_kind(url: str) -> str:
    return urlparse(url).scheme


def _conditional_check(session: Session) -> dict[str, Any]:
    tracker = session.tracker
    probe = keys.probe_key(tracker.prefix, new_entry_id())
    where = tracker.store.location(keys.probe_key(tracker.prefix, ""))
    try:
        verify_conditional_writes(tracker.store, probe)
    except LoreError as exc:
        return {"checked": True, "ok": False, "detail": str(exc), "probeLocation": where}
    return {
        "checked": True,
        "ok": True,
        "detail": "If-None-Match and If-Match honoured (probe objects written and deleted)",
        "probeLocation": where,
    }


def _info(args: argparse.Namespace, session: Session) -> int:
    url = session.url
    tracker = session.tracker
    store = tracker.store
    kind = _store_kind(url)
    data: dict[str, Any] = {
        "store": session.store_label(),
        "type": kind,
        "bucket": store.bucket,
        "prefix": tracker.prefix,
        "endpoint": None,
        "region": None,
        "settings": session.config.describe(),
        "configFiles": list(session.config.files),
    }
    if isinstance(store, S3Store):
        data["endpoint"] = store.client.meta.endpoint_url
        data["region"] = store.client.meta.region_name
        data["profile"] = session.config.profile
    elif kind == "file":
        data["directory"] = str(getattr(store, "root", ""))
    if args.no_check:
        data["conditionalWrites"] = {"checked": False, "ok": None, "detail": "skipped (--no-check)"}
    else:
        data["conditionalWrites"] = _conditional_check(session)
    counts: dict[str, Any] = {}
    counters: list[tuple[str, Callable[[], int]]] = [
        ("trackedFiles", lambda: sum(1 for _ in session.progress(tracker.list_tracked_files(), "counting files"))),
        ("openFailures", lambda: sum(1 for _ in session.progress(tracker.list_failed(), "counting failures"))),
    ]
    for name, count in counters:
        try:
            counts[name] = count()
        except LoreError as exc:  # a role that may not list: say so, keep the rest
            counts[name] = None
            counts[name + "Error"] = str(exc)
    data.update(counts)
    if args.json:
        _emit(data)
        return 0
    lines = [
        f"store:        {data['store']}  ({kind})",
        f"bucket:       {data['bucket']}",
        f"prefix:       {data['prefix']}",
    ]
    if kind == "s3":
        lines += [
            f"endpoint:     {data['endpoint']}",
            f"region:       {data['region'] or '-'}",
            f"profile:      {data['profile'] or '-'}",
        ]
    elif kind == "file":
        lines.append(f"directory:    {data['directory']}")
    lines.append("settings (first source wins: options, LORE_* variables, lore.toml/pyproject.toml, user file):")
    for name, setting in data["settings"].items():
        lines.append(f"  {name} = {setting['value']!r}  from {setting['source']}")
    if not data["configFiles"]:
        lines.append("  (no lore.toml, [tool.lore] or user config file found)")
    check = data["conditionalWrites"]
    if not check["checked"]:
        lines.append("conditional writes: not checked (--no-check)")
    else:
        verdict = "ok" if check["ok"] else "FAILED"
        lines.append(f"conditional writes: {verdict}: {check['detail']}")
        lines.append(f"  (info runs this check: it writes and deletes probe objects at {check['probeLocation']}*)")
    for name, label in (("trackedFiles", "tracked files"), ("openFailures", "open failures")):
        value = data[name]
        lines.append(f"{label + ':':<15}{value if value is not None else 'unknown: ' + data[name + 'Error']}")
    print("\n".join(lines))
    return 0 if check.get("ok") in (True, None) else 1


# --------------------------------------------------------------------------- entry point


def _setup_logging() -> None:
    """Lore's warnings (a store being retried, a repair skipped) on stderr, one line each."""
    logger = logging.getLogger("lore")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lore: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _session(args: argparse.Namespace) -> Session:
    given = {name: getattr(args, name, None) for name in _GLOBAL}
    return Session(args, load_config(given, argument_source=_GLOBAL))


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "sql_handler", None) is not None:  # lore snapshot / lore query (snapshot_cli.py)
        return int(args.sql_handler(args))
    session = _session(args)
    session.config.require_store()
    handler: Callable[[argparse.Namespace, Session], int] = args.handler
    code = handler(args, session)
    if not getattr(args, "json", False) and session._tracker is not None:
        print(f"store: {session.store_label()}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    _setup_logging()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (_UsageError, LoreConfigError) as exc:
        print(f"lore: error: {exc}", file=sys.stderr)
        return 2
    except LoreError as exc:
        print(f"lore: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of Lore's or a library's: one line unless asked for more
        if os.environ.get("LORE_DEBUG"):
            traceback.print_exc()
        print(
            f"lore: error: unexpected {type(exc).__name__}: {exc} (LORE_DEBUG=1 shows the traceback)", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
