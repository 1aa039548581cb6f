"""An incremental Parquet snapshot of every history, for SQL engines (``lore snapshot``).

Promises: ``write_snapshot(tracker, "s3://bucket/snap")`` (or a local directory) leaves
two tables there, Hive-partitioned by day, that DuckDB, Athena, Trino, Spark and
pyarrow read as they are::

    URL/entries/date=2026-11-25/part-0.parquet   one row per entry, archived ones included
    URL/lineage/date=2026-11-25/part-0.parquet   one row per derived-from link
    URL/_lore_manifest.json.gz                    what the snapshot holds (see below)

A later snapshot is **incremental**: the LIST of the histories gives each one's ETag,
and only histories whose ETag changed since the manifest was written are read (one GET
each, plus the archive segments they gained); the day partitions holding their rows
are rewritten with those rows replaced, and a deleted history's rows are removed. A
partition is rewritten only when one of its histories' rows for that day changed (the
manifest keeps a hash of each history's rows per day), and each partition is one file,
replaced whole, so a reader never sees a row twice. The manifest is written last; a
snapshot cut short is repaired by the next one (the histories it was changing are
listed in a journal and rebuilt).

It does not read what it wrote back for queries (``lore_core.query`` does), and it never
writes inside the history prefix. pyarrow (``pip install 'lore-s3[sql]'``) is imported only
when a snapshot is written.

Example::

    from lore_core import LoreTracker
    from lore_core.snapshot import write_snapshot

    tracker = LoreTracker.from_url("memory://demo")
    tracker.run("raw/a.csv", step="validate", handler=lambda ctx: None, produces="clean/a.parquet")
    result = write_snapshot(tracker, "/tmp/lore-snapshot")
    assert result.read == 2 and write_snapshot(tracker, "/tmp/lore-snapshot").read == 0
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from . import keys
from .archive import read_archived
from .errors import CorruptHistoryError, LoreError
from .ids import format_timestamp, utc_now
from .models import FileHistory, HistoryEntry, LineageRef, parse_history
from .stores import FileStore, S3Store, make_s3_client

if TYPE_CHECKING:
    from .tracker import LoreTracker

__all__ = [
    "ENTRIES_COLUMNS",
    "LINEAGE_COLUMNS",
    "MANIFEST_NAME",
    "PARTITION_KEY",
    "TABLES",
    "LocalLocation",
    "S3Location",
    "SnapshotError",
    "SnapshotLocation",
    "SnapshotResult",
    "arrow_schema",
    "open_location",
    "partition_path",
    "read_manifest",
    "require_extra",
    "write_snapshot",
]

#: Bumped when a column changes; a snapshot of another format is rebuilt in full.
FORMAT = 1
MANIFEST_NAME = "_lore_manifest.json.gz"
JOURNAL_NAME = "_lore_journal.json"
PARTITION_KEY = "date"
PART_FILE = "part-0.parquet"

#: (name, kind): kind is one of string, timestamp, bigint, int, boolean, strings (a list).
ENTRIES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file_key", "string"),
    ("bucket", "string"),
    ("entry_id", "string"),
    ("step", "string"),
    ("status", "string"),
    ("description", "string"),
    ("started_at", "timestamp"),
    ("completed_at", "timestamp"),
    ("duration_ms", "bigint"),
    ("attempt", "int"),
    ("replay_of", "string"),
    ("resolved_by", "string"),
    ("error_name", "string"),
    ("error_message", "string"),
    ("orchestrator", "string"),
    ("run_id", "string"),
    ("job", "string"),
    ("task", "string"),
    ("orchestrator_partition", "string"),
    ("try_number", "int"),
    ("run_url", "string"),
    ("produces", "strings"),
    ("input_json", "string"),
    ("output_json", "string"),
    ("metadata_json", "string"),
    ("archived", "boolean"),
)
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("file_key", "string"),
    ("bucket", "string"),
    ("entry_id", "string"),
    ("parent_file_key", "string"),
    ("parent_bucket", "string"),
    ("parent_entry_id", "string"),
    ("parent_etag", "string"),
    ("parent_version_id", "string"),
    ("parent_size", "bigint"),
    ("link_count", "bigint"),
    ("ref_json", "string"),
    ("archived", "boolean"),
)
TABLES: dict[str, tuple[tuple[str, str], ...]] = {"entries": ENTRIES_COLUMNS, "lineage": LINEAGE_COLUMNS}
# Fields of a lineage ref that have columns of their own (the rest go to ref_json).
_REF_COLUMNS = {"fileKey", "entryId", "bucket", "count", "etag", "versionId", "size"}

Row = tuple[Any, ...]


class SnapshotError(LoreError):
    """A snapshot cannot be written or read (bad location, missing extra, foreign manifest, bad SQL)."""


def require_extra(module: str) -> Any:
    """Import ``module`` (pyarrow, duckdb), or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SnapshotError(
            f"SQL snapshots need {module.split('.')[0]}, which Lore installs with its [sql] extra: "
            "pip install 'lore-s3[sql]'"
        ) from None


def arrow_schema(table: str, *, with_partition: bool = False) -> Any:
    """The pyarrow schema of ``entries`` or ``lineage`` (as stored: the day is in the path)."""
    pa = require_extra("pyarrow")
    kinds = {
        "string": pa.string(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "strings": pa.list_(pa.string()),
    }
    fields = [pa.field(name, kinds[kind]) for name, kind in TABLES[table]]
    if with_partition:
        fields.append(pa.field(PARTITION_KEY, pa.date32()))
    return pa.schema(fields)


# --------------------------------------------------------------------------- locations


class SnapshotLocation:
    """Where a snapshot lives: a local directory or ``s3://bucket/prefix``. Paths are relative."""

    url: str

    def read(self, rel: str) -> bytes | None:
        raise NotImplementedError

    def write(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, rel: str) -> None:
        raise NotImplementedError


class LocalLocation(SnapshotLocation):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def path(self, rel: str) -> Path:
        return self.root.joinpath(*rel.split("/"))

    def read(self, rel: str) -> bytes | None:
        try:
            return self.path(rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SnapshotError(f"cannot read {self.path(rel)}: {exc}") from None

    def write(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        # A dot name: Spark, Hive, pyarrow and DuckDB's *.parquet globs all skip it while it is written.
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)  # readers see the old file or the new one, never half of one
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SnapshotError(f"cannot write {target}: {exc}") from None

    def delete(self, rel: str) -> None:
        path = self.path(rel)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # an emptied day directory goes too


class S3Location(SnapshotLocation):
    def __init__(self, store: S3Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.url = f"s3://{store.bucket}/{prefix}" if prefix else f"s3://{store.bucket}"

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def read(self, rel: str) -> bytes | None:
        found = self.store.get(self.key(rel))
        return None if found is None else found.data

    def write(self, rel: str, data: bytes) -> None:
        self.store.put(self.key(rel), data)  # one PUT replaces the object atomically

    def delete(self, rel: str) -> None:
        self.store.delete(self.key(rel))


def open_location(
    url: str, *, s3_client: Any = None, endpoint_url: str | None = None, region: str | None = None
) -> SnapshotLocation:
    """The snapshot location ``url`` names: ``s3://bucket/prefix``, ``file:///dir`` or a path."""
    if not isinstance(url, str) or not url.strip():
        raise SnapshotError("no snapshot location given: pass a directory or s3://bucket/prefix")
    if url.startswith("s3://"):
        parsed = urlparse(url)
        if not parsed.netloc:
            raise SnapshotError(f"snapshot URL {url!r} names no bucket (use s3://bucket/prefix)")
        prefix = parsed.path.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise SnapshotError(f"snapshot URL {url!r}: the prefix must not contain empty, '.' or '..' segments")
        client = s3_client if s3_client is not None else make_s3_client(endpoint_url, region)
        return S3Location(S3Store(parsed.netloc, client), prefix)
    if "://" in url and not url.startswith("file://"):
        raise SnapshotError(f"snapshot URL {url!r}: use a directory, file:///dir or s3://bucket/prefix")
    path = unquote(urlparse(url).path) if url.startswith("file://") else url
    return LocalLocation(Path(path).expanduser().resolve())


def _refuse_history_prefix(tracker: LoreTracker, location: SnapshotLocation) -> None:
    """A snapshot inside the history prefix would be listed as histories (and look like corrupt ones)."""
    store = tracker.store
    inside = False
    if isinstance(location, S3Location) and isinstance(store, S3Store):
        inside = location.store.bucket == store.bucket and (
            location.prefix == tracker.prefix or location.prefix.startswith(tracker.prefix + "/")
        )
    elif isinstance(location, LocalLocation) and isinstance(store, FileStore):
        history_root = store.root.joinpath(*tracker.prefix.split("/"))
        inside = location.root == history_root or history_root in location.root.parents
    if inside:
        raise SnapshotError(
            f"refusing to write a snapshot at {location.url}: it is inside the history prefix "
            f"{store.location(tracker.prefix)}; choose a location outside it"
        )


# --------------------------------------------------------------------------- rows


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)


def _day(moment: datetime) -> str:
    return format_timestamp(moment)[:10]


def _entry_row(doc: FileHistory, entry: HistoryEntry, archived: bool) -> Row:
    error = entry.error
    orch = entry.orchestrator
    data = entry.to_json_dict()
    return (
        doc.file_key,
        doc.bucket,
        entry.id,
        entry.step,
        entry.status.value,
        entry.description,
        entry.started_at,
        entry.completed_at,
        entry.duration_ms,
        entry.attempt,
        entry.replay_of,
        entry.resolved_by,
        error.name if error else None,
        error.message if error else None,
        orch.system if orch else None,
        orch.run_id if orch else None,
        orch.job if orch else None,
        orch.task if orch else None,
        orch.partition if orch else None,
        orch.try_number if orch else None,
        orch.url if orch else None,
        list(entry.produces) if entry.produces is not None else None,
        _json_text(data.get("input")),
        _json_text(data.get("output")),
        _json_text(data.get("metadata")),
        archived,
    )


def _lineage_row(doc: FileHistory, ref: LineageRef, entry_id: str | None, archived: bool) -> Row:
    data = ref.to_json_dict()
    size = data.get("size")
    rest = {k: v for k, v in data.items() if k not in _REF_COLUMNS}
    return (
        doc.file_key,
        doc.bucket,
        entry_id,
        ref.file_key,
        ref.bucket or doc.bucket,
        ref.entry_id,
        str(data["etag"]) if data.get("etag") is not None else None,
        str(data["versionId"]) if data.get("versionId") is not None else None,
        int(size) if isinstance(size, int | float | str) and str(size).isdigit() else None,
        ref.count if ref.count is not None else 1,
        _json_text(rest) if rest else None,
        archived,
    )


_Rows = dict[str, dict[str, list[Row]]]  # table -> day -> rows


def _rows_of(doc: FileHistory, entries: Sequence[HistoryEntry], archived: bool, *, file_level: bool) -> _Rows:
    """The rows ``entries`` of ``doc`` contribute, by table and day (plus the file-level links)."""
    out: _Rows = {"entries": defaultdict(list), "lineage": defaultdict(list)}
    for entry in entries:
        day = _day(entry.started_at)
        out["entries"][day].append(_entry_row(doc, entry, archived))
        for ref in entry.derived_from or ():
            out["lineage"][day].append(_lineage_row(doc, ref, entry.id, archived))
    if file_level:
        day = _day(doc.created_at)
        for ref in doc.derived_from:
            out["lineage"][day].append(_lineage_row(doc, ref, None, archived))
    return out


def _digest(rows: list[Row]) -> str:
    return hashlib.blake2b(repr(rows).encode("utf-8"), digest_size=8).hexdigest()


# --------------------------------------------------------------------------- result


@dataclass
class SnapshotResult:
    """What one ``write_snapshot`` did."""

    url: str
    source: str
    files: int = 0  # histories in the snapshot after this run
    read: int = 0  # histories read (new, changed or rebuilt)
    new: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    entries: int = 0  # rows in the snapshot after this run
    lineage: int = 0
    partitions_written: int = 0
    partitions_deleted: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # file key -> why (a corrupt history)
    requests: dict[str, int] = field(default_factory=dict)  # to the history store, by kind
    seconds: float = 0.0

    def summary(self) -> str:
        requests = ", ".join(f"{n} {kind.upper()}" for kind, n in sorted(self.requests.items())) or "no requests"
        text = (
            f"snapshot of {self.source} at {self.url}: {self.read} histories read ({self.new} new, "
            f"{self.changed} changed), {self.removed} removed, {self.unchanged} unchanged; "
            f"{self.files} histories, {self.entries} entries and {self.lineage} lineage rows; "
            f"{self.partitions_written} partitions written, {self.partitions_deleted} deleted; "
            f"{requests} to the histories; {self.seconds:.2f} s"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} histories skipped (do not parse): " + ", ".join(sorted(self.skipped)[:5])
        return text

    def to_json_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


# --------------------------------------------------------------------------- manifest


def _empty_manifest(source: str) -> dict[str, Any]:
    return {"format": FORMAT, "source": source, "generation": 0, "files": {}, "partitions": {t: {} for t in TABLES}}


def _load_manifest(location: SnapshotLocation) -> dict[str, Any] | None:
    raw = location.read(MANIFEST_NAME)
    if raw is None:
        return None
    try:
        manifest = json.loads(gzip.decompress(raw))
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"the snapshot manifest at {location.url}/{MANIFEST_NAME} does not parse: {exc}") from None
    if not isinstance(manifest, dict) or "files" not in manifest:
        raise SnapshotError(f"{location.url}/{MANIFEST_NAME} is not a Lore snapshot manifest")
    return manifest


def read_manifest(location: SnapshotLocation) -> dict[str, Any]:
    """The manifest of the snapshot at ``location``, or a clear error when there is none."""
    manifest = _load_manifest(location)
    if manifest is None:
        raise SnapshotError(f"no snapshot at {location.url} (write one with: lore snapshot --to {location.url})")
    return manifest


def partition_path(table: str, day: str) -> str:
    return f"{table}/{PARTITION_KEY}={day}/{PART_FILE}"


# --------------------------------------------------------------------------- writing


@dataclass
class _FilePlan:
    """What changes for one history: rows to drop (all, or only live ones) and add, by table and day."""

    key: str
    drop_all: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in TABLES})
    drop_live: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in TABLES})
    add: _Rows = field(default_factory=lambda: {t: defaultdict(list) for t in TABLES})
    record: dict[str, Any] | None = None  # the manifest's new record (None: remove it)


def _list_histories(tracker: LoreTracker) -> Iterator[tuple[str, str | None]]:
    """(file key, ETag) of every history, one LIST per 1,000 (Lore's reserved area skipped in one step)."""
    store, prefix = tracker.store, tracker.prefix
    reserved = keys.reserved_root(prefix)
    start_after: str | None = None
    while True:
        hit_reserved = False
        for obj in store.list(f"{prefix}/", start_after):
            if obj.key.startswith(reserved):
                hit_reserved = True
                break
            file_key = keys.file_key_from_history_key(prefix, obj.key)
            if file_key is not None:
                yield file_key, obj.etag
        if not hit_reserved:
            return
        start_after = reserved[:-1] + "0"  # '0' sorts right after '/'


def _read_history(tracker: LoreTracker, file_key: str) -> tuple[FileHistory | None, str | None]:
    found = tracker.store.get(keys.history_key(tracker.prefix, file_key))
    if found is None:
        return None, None
    try:
        return parse_history(found.data), found.etag
    except (ValueError, TypeError, ValidationError) as exc:
        location = tracker.store.location(keys.history_key(tracker.prefix, file_key))
        raise CorruptHistoryError(location, f"does not parse: {str(exc).splitlines()[0]}") from None


def _plan(
    tracker: LoreTracker,
    key: str,
    listed_etag: str | None,
    old: dict[str, Any] | None,
    touched: dict[str, list[str]] | None,
    rebuild: bool,
    result: SnapshotResult,
) -> _FilePlan:
    """Read one changed (or new, or vanished) history and plan its rows' replacement.

    ``touched``: the days an interrupted snapshot may have rewritten for this history (from the
    journal); its rows there are dropped and written again, like those of a history read anew.
    """
    plan = _FilePlan(key)
    old_live: dict[str, dict[str, str]] = {t: {} for t in TABLES}
    old_archived: dict[str, set[str]] = {t: set() for t in TABLES}
    for table in TABLES:
        old_live[table] = dict((old or {}).get("live", {}).get(table, {}))
        old_archived[table] = set((old or {}).get("archived", {}).get(table, []))
        old_archived[table] |= set((touched or {}).get(table, []))  # dropped whole below: touched means reset
    try:
        doc, etag = _read_history(tracker, key)
    except CorruptHistoryError as exc:
        result.skipped[key] = str(exc)
        doc, etag = None, listed_etag
    if doc is None:  # deleted (or unreadable): its rows go
        for table in TABLES:
            plan.drop_all[table] = set(old_live[table]) | old_archived[table]
        if key in result.skipped:
            plan.record = {"etag": etag, "segments": [], "live": {t: {} for t in TABLES}, "corrupt": True}
            plan.record["archived"] = {t: [] for t in TABLES}
        return plan

    segments = [ref.key.rsplit("/", 1)[-1] for ref in doc.archived or ()]
    seen = set((old or {}).get("segments", []))
    reset = rebuild or touched is not None or old is None or bool(old.get("corrupt")) or not seen <= set(segments)
    to_read = [ref for ref in doc.archived or () if reset or ref.key.rsplit("/", 1)[-1] not in seen]
    archived_entries = read_archived(tracker.store, to_read) if to_read else []
    live = _rows_of(doc, doc.entries, False, file_level=True)
    gained = _rows_of(doc, archived_entries, True, file_level=False)

    # What the next LIST is compared with: the listed ETag (the file store lists a change token, not the
    # MD5 a GET gives). Should the history change between the LIST and the GET, the next run reads it again.
    kept_etag = listed_etag if listed_etag is not None else etag
    record: dict[str, Any] = {"etag": kept_etag, "segments": segments, "live": {}, "archived": {}}
    for table in TABLES:
        hashes = {day: _digest(rows) for day, rows in live[table].items()}
        record["live"][table] = hashes
        if reset:
            plan.drop_all[table] = set(old_live[table]) | old_archived[table]
            days = set(hashes) | set(gained[table]) | plan.drop_all[table]
            record["archived"][table] = sorted(gained[table])
        else:
            # Only days whose live rows changed, and days that archive segments added rows to.
            moved = {day for day in set(hashes) | set(old_live[table]) if hashes.get(day) != old_live[table].get(day)}
            days = moved | set(gained[table])
            plan.drop_live[table] = days
            record["archived"][table] = sorted(old_archived[table] | set(gained[table]))
        for day in days:
            plan.add[table][day] = live[table].get(day, []) + gained[table].get(day, [])
    plan.record = record
    return plan


def _encode_manifest(manifest: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode("utf-8"), mtime=0)


def write_snapshot(
    tracker: LoreTracker,
    to_url: str,
    *,
    s3_client: Any = None,
    endpoint_url: str | None = None,
    region: str | None = None,
    full: bool = False,
    workers: int = 16,
) -> SnapshotResult:
    """Write (or bring up to date) the Parquet snapshot of ``tracker``'s histories at ``to_url``.

    ``to_url`` is a local directory, ``file:///dir`` or ``s3://bucket/prefix`` (written with
    ``s3_client``, else the tracker's S3 client, else one built from ``endpoint_url``/``region``).
    Only histories whose ETag changed since the last snapshot there are read, unless ``full``.
    Costs one LIST per 1,000 histories plus one GET per changed history (and one per archive
    segment it gained); nothing else is read from the bucket of histories.
    """
    pa = require_extra("pyarrow")
    pq = require_extra("pyarrow.parquet")
    started = time.perf_counter()
    if s3_client is None and isinstance(tracker.store, S3Store) and endpoint_url is None and region is None:
        s3_client = tracker.store.client
    location = open_location(to_url, s3_client=s3_client, endpoint_url=endpoint_url, region=region)
    _refuse_history_prefix(tracker, location)
    source = tracker.store.location(tracker.prefix)
    before = tracker.store.stats.snapshot()
    result = SnapshotResult(url=location.url, source=source)

    manifest = _load_manifest(location)
    if manifest is not None and manifest.get("source") != source:
        raise SnapshotError(
            f"{location.url} holds a snapshot of {manifest.get('source')}, not of {source}; "
            "write this one somewhere else"
        )
    if manifest is None or full or manifest.get("format") != FORMAT:
        old_partitions = manifest["partitions"] if manifest is not None else {t: {} for t in TABLES}
        manifest, rebuild = _empty_manifest(source), True
    else:
        old_partitions, rebuild = manifest["partitions"], False
    previous = set(manifest["files"]) if manifest is not None else set()
    journal_raw = location.read(JOURNAL_NAME)
    interrupted: dict[str, dict[str, list[str]]] = json.loads(journal_raw) if journal_raw else {}

    files: dict[str, dict[str, Any]] = manifest["files"]
    listed = dict(_list_histories(tracker))
    todo = [
        key
        for key, etag in listed.items()
        if rebuild or key in interrupted or etag is None or files.get(key, {}).get("etag") != etag
    ]
    todo += [key for key in files if key not in listed]
    result.unchanged = len(listed) - sum(1 for key in todo if key in listed)

    def plan(key: str) -> _FilePlan:
        return _plan(tracker, key, listed.get(key), files.get(key), interrupted.get(key), rebuild, result)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        plans = list(pool.map(plan, todo))

    # Gather, per table and day, whose rows are dropped and what is added.
    work: dict[tuple[str, str], tuple[set[str], set[str], list[Row]]] = {}
    for p in plans:
        for table in TABLES:
            for day in p.drop_all[table] | p.drop_live[table] | set(p.add[table]):
                drop_all, drop_live, add = work.setdefault((table, day), (set(), set(), []))
                if day in p.drop_all[table]:
                    drop_all.add(p.key)
                if day in p.drop_live[table]:
                    drop_live.add(p.key)
                add.extend(p.add[table].get(day, []))
    if rebuild:  # partitions left by an older format or a full rebuild's predecessor go unless rewritten
        for table, days in old_partitions.items():
            for day in days:
                work.setdefault((table, day), (set(), set(), []))

    generation = int(manifest.get("generation", 0)) + 1
    partitions: dict[str, dict[str, dict[str, Any]]] = manifest["partitions"]
    existing_days = {(table, day) for table, days in partitions.items() for day in days}
    if work:
        # Until the manifest is written, the partitions of these histories may be half rewritten:
        # the next snapshot rebuilds their rows on these days (and on their days in the manifest).
        journal = {key: {t: list(days) for t, days in tables.items()} for key, tables in interrupted.items()}
        for p in plans:
            for table in TABLES:
                days = p.drop_all[table] | p.drop_live[table] | set(p.add[table])
                mine = journal.setdefault(p.key, {}).setdefault(table, [])
                mine[:] = sorted(set(mine) | days)
        location.write(JOURNAL_NAME, json.dumps(journal, sort_keys=True).encode("utf-8"))

    def rewrite(item: tuple[tuple[str, str], tuple[set[str], set[str], list[Row]]]) -> tuple[str, str, int]:
        (table, day), (drop_all, drop_live, add) = item
        schema = arrow_schema(table)
        parts = []
        if not rebuild and (table, day) in existing_days:
            raw = location.read(partition_path(table, day))
            if raw is not None:
                existing = pq.read_table(pa.BufferReader(raw), schema=schema)
                keep = _keep_mask(pa, existing, drop_all, drop_live)
                parts.append(existing.filter(keep))
        if add:
            columns = list(zip(*add, strict=True))
            arrays = [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)]
            parts.append(pa.Table.from_arrays(arrays, schema=schema))
        table_rows = pa.concat_tables(parts) if parts else schema.empty_table()
        if table_rows.num_rows == 0:
            location.delete(partition_path(table, day))
            return table, day, 0
        order = [("file_key", "ascending"), ("entry_id" if table == "entries" else "parent_file_key", "ascending")]
        table_rows = table_rows.sort_by(order)
        sink = pa.BufferOutputStream()
        pq.write_table(table_rows, sink, compression="snappy")
        location.write(partition_path(table, day), sink.getvalue().to_pybytes())
        return table, day, table_rows.num_rows

    with ThreadPoolExecutor(max_workers=4) as pool:
        for table, day, rows in pool.map(rewrite, sorted(work.items())):
            if rows:
                partitions.setdefault(table, {})[day] = {"rows": rows, "generation": generation}
                result.partitions_written += 1
            elif (table, day) in existing_days or (rebuild and day in old_partitions.get(table, {})):
                partitions.get(table, {}).pop(day, None)
                result.partitions_deleted += 1

    for p in plans:
        if p.record is None:
            files.pop(p.key, None)
            result.removed += p.key in previous
        else:
            result.read += 1
            result.new += p.key not in previous
            result.changed += p.key in previous
            files[p.key] = p.record
    if work or todo or rebuild:  # a first (or full) snapshot writes its manifest even when empty
        manifest["generation"] = generation
        manifest["updatedAt"] = format_timestamp(utc_now())
        location.write(MANIFEST_NAME, _encode_manifest(manifest))
        if work:
            location.delete(JOURNAL_NAME)

    after = tracker.store.stats.snapshot()
    result.requests = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) - before.get(k, 0)}
    result.files = len(files)
    result.entries = sum(p["rows"] for p in partitions.get("entries", {}).values())
    result.lineage = sum(p["rows"] for p in partitions.get("lineage", {}).values())
    result.seconds = time.perf_counter() - started
    return result


def _keep_mask(pa: Any, existing: Any, drop_all: set[str], drop_live: set[str]) -> Any:
    """Rows of the partition that stay: not of a history dropped whole, nor a live row of a changed one."""
    import pyarrow.compute as pc

    keys_column = existing.column("file_key")
    gone = pc.is_in(keys_column, value_set=pa.array(sorted(drop_all), pa.string()))
    live_gone = pc.and_(
        pc.is_in(keys_column, value_set=pa.array(sorted(drop_live), pa.string())),
        pc.invert(existing.column("archived")),
    )
    return pc.invert(pc.or_(gone, live_gone))
