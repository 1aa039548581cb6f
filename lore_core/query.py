"""SQL over a snapshot with embedded DuckDB (``lore query``): ``entries`` and ``lineage`` as tables.

Promises: ``query_snapshot(url, sql)`` answers ``sql`` over exactly the partition files the
snapshot's manifest names (a snapshot being rewritten is never read half old, half new
through here), with ``entries`` and ``lineage`` as views over ``read_parquet(...,
hive_partitioning = true)`` so ``date`` is a column. A snapshot in S3 is first brought
into a local cache (one GET per partition file that changed since the last query; no
DuckDB extension is downloaded, so it works offline against any S3-compatible endpoint).
DuckDB never installs or loads extensions on its own here.

It does not write snapshots (``lore_core.snapshot``). duckdb and pyarrow come with
``pip install 'lore-s3[sql]'`` and are imported only when a query runs.

Example::

    from lore_core.query import query_snapshot

    result = query_snapshot("/tmp/lore-snapshot", "select step, status, count(*) as n from entries group by all")
    for row in result.rows:
        print(dict(zip(result.columns, row)))
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .snapshot import (
    PARTITION_KEY,
    TABLES,
    LocalLocation,
    S3Location,
    SnapshotError,
    arrow_schema,
    open_location,
    partition_path,
    read_manifest,
    require_extra,
)

__all__ = ["QueryResult", "cache_root", "connect_snapshot", "query_snapshot"]


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def cache_root() -> Path:
    """Where snapshots read from S3 are cached: ``$LORE_CACHE_DIR``, else ``$XDG_CACHE_HOME/lore``
    (``~/.cache/lore``)."""
    if os.environ.get("LORE_CACHE_DIR"):
        return Path(os.environ["LORE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lore"


def _local_files(location: LocalLocation, manifest: dict[str, Any]) -> dict[str, list[Path]]:
    return {
        table: [location.path(partition_path(table, day)) for day in sorted(manifest["partitions"].get(table, {}))]
        for table in TABLES
    }


def _cached_files(location: S3Location, manifest: dict[str, Any]) -> dict[str, list[Path]]:
    """The manifest's partition files, downloaded into the cache unless already there at their generation."""
    digest = hashlib.sha256(f"{location.store.identity()}/{location.prefix}".encode()).hexdigest()[:16]
    root = cache_root() / "snapshots" / digest
    out: dict[str, list[Path]] = {}
    for table in TABLES:
        wanted: list[Path] = []
        for day, info in sorted(manifest["partitions"].get(table, {}).items()):
            folder = root / table / f"{PARTITION_KEY}={day}"
            path = folder / f"part-g{int(info.get('generation', 0))}.parquet"
            if not path.exists():
                data = location.read(partition_path(table, day))
                if data is None:
                    raise SnapshotError(
                        f"{location.url}/{partition_path(table, day)} is listed in the manifest but missing "
                        "(a snapshot is being written, or was cut short: run lore snapshot again)"
                    )
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".{os.getpid()}.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, path)
            for stale in folder.glob("part-g*.parquet"):
                if stale != path:
                    with contextlib.suppress(OSError):
                        stale.unlink()
            wanted.append(path)
        out[table] = wanted
        # Days no longer in the snapshot leave the cache too.
        known = {f"{PARTITION_KEY}={day}" for day in manifest["partitions"].get(table, {})}
        for folder in (root / table).glob(f"{PARTITION_KEY}=*") if (root / table).is_dir() else ():
            if folder.name not in known:
                for leftover in folder.iterdir():
                    with contextlib.suppress(OSError):
                        leftover.unlink()
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return out


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def connect_snapshot(
    url: str, *, s3_client: Any = None, endpoint_url: str | None = None, region: str | None = None
) -> Any:
    """A DuckDB connection with ``entries`` and ``lineage`` views over the snapshot at ``url``."""
    duckdb = require_extra("duckdb")
    require_extra("pyarrow")
    location = open_location(url, s3_client=s3_client, endpoint_url=endpoint_url, region=region)
    manifest = read_manifest(location)
    if isinstance(location, S3Location):
        files = _cached_files(location, manifest)
    else:
        assert isinstance(location, LocalLocation)
        files = _local_files(location, manifest)
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    for table, paths in files.items():
        if paths:
            listed = ", ".join(_sql_string(str(p)) for p in paths)
            con.execute(
                f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true, "
                "hive_types = {'" + PARTITION_KEY + "': DATE})"
            )
        else:  # an empty table still has its columns
            con.register(f"_lore_empty_{table}", arrow_schema(table, with_partition=True).empty_table())
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM _lore_empty_{table}")
    return con


def query_snapshot(
    url: str, sql: str, *, s3_client: Any = None, endpoint_url: str | None = None, region: str | None = None
) -> QueryResult:
    """Run ``sql`` over the snapshot at ``url``; a failing statement raises ``SnapshotError`` (one line)."""
    duckdb = require_extra("duckdb")
    con = connect_snapshot(url, s3_client=s3_client, endpoint_url=endpoint_url, region=region)
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without a result (SET, CREATE ...)
            return QueryResult([], [])
        table = relation.to_arrow_table()
    except duckdb.Error as exc:
        message = " ".join(str(exc).split("\n\n")[0].split())
        raise SnapshotError(f"query failed: {message}") from None
    finally:
        con.close()
    columns = [str(name) for name in table.column_names]
    # Column-wise to Python (pyarrow, no pytz needed for timestamps with a zone), then rows.
    values = [table.column(i).to_pylist() for i in range(table.num_columns)]
    return QueryResult(columns, list(zip(*values, strict=True)) if values else [])
