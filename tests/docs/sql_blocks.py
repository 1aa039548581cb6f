"""```sql blocks (README "SQL over all history"): queries run, other engines' tables match the snapshot.

- A block without ``CREATE`` is DuckDB SQL, what ``lore query`` runs: each statement runs
  against a snapshot of the store the quick start writes (through ``query_snapshot``, the
  function behind ``lore query``), and any ``entries.x`` / ``lineage.x`` it names exists.
- A block with ``CREATE TABLE`` is for the engine the paragraph before it names (Athena,
  Trino or Spark): each table must read ``URL/entries/`` or ``URL/lineage/`` as Parquet and
  declare exactly the snapshot's columns, in order, with that engine's types, partitioned
  by ``date`` the way that engine spells it. Those engines do not run here; their
  statements are checked against the columns ``lore_core.snapshot`` writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lore_core.query import query_snapshot
from lore_core.snapshot import PARTITION_KEY, TABLES, write_snapshot

from .markdown import Block

_HIVE = {
    "string": "string",
    "timestamp": "timestamp",
    "bigint": "bigint",
    "int": "int",
    "boolean": "boolean",
    "strings": "array<string>",
}
_TRINO = {
    "string": "varchar",
    "timestamp": "timestamp(3)",
    "bigint": "bigint",
    "int": "integer",
    "boolean": "boolean",
    "strings": "array(varchar)",
}
_ENGINE = re.compile(r"\b(Athena|Trino|Spark)\b")
_CREATE = re.compile(r"\bCREATE\s+(?:EXTERNAL\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.`\"]+)\s*\(", re.I)


def _statements(text: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", text)
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def _split_columns(body: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in body:
        depth += char in "(<"
        depth -= char in ")>"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current] if p.strip()]


def _closing(text: str, start: int) -> int:
    """The index of the parenthesis closing the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    raise AssertionError("unbalanced parentheses")


def _unquote(name: str) -> str:
    return name.strip("`\"'")


def _check_table(statement: str, engine: str, where: str) -> str:
    match = _CREATE.search(statement)
    assert match, f"{where}: not a CREATE TABLE: {statement[:80]}"
    open_at = match.end() - 1
    close_at = _closing(statement, open_at)
    declared = []
    for column in _split_columns(statement[open_at + 1 : close_at]):
        name, _, kind = column.partition(" ")
        declared.append((_unquote(name), re.sub(r"\s+", "", kind).lower()))
    rest = statement[close_at + 1 :]
    location = re.search(r"(?:LOCATION|external_location\s*=)\s*'([^']+)'", rest, re.I)
    assert location, f"{where}: {match.group(1)} names no location"
    table = location.group(1).rstrip("/").rsplit("/", 1)[-1]
    assert table in TABLES, f"{where}: {location.group(1)} is not a snapshot's entries/ or lineage/ directory"
    assert location.group(1).endswith(f"/{table}/"), f"{where}: end the location with a slash: {location.group(1)}"
    columns = TABLES[table]
    if engine == "Trino":
        expected = [(name, _TRINO[kind]) for name, kind in columns] + [(PARTITION_KEY, "varchar")]
        assert re.search(rf"partitioned_by\s*=\s*ARRAY\s*\[\s*'{PARTITION_KEY}'\s*\]", rest, re.I), where
        assert re.search(r"format\s*=\s*'PARQUET'", rest, re.I), f"{where}: format = 'PARQUET'"
    elif engine == "Athena":
        expected = [(name, _HIVE[kind]) for name, kind in columns]
        partition = re.search(r"PARTITIONED\s+BY\s*\(\s*([`\"]?\w+[`\"]?)\s+(\w+)\s*\)", rest, re.I)
        assert partition and (_unquote(partition.group(1)), partition.group(2).lower()) == (PARTITION_KEY, "string"), (
            f"{where}: Athena's table must be PARTITIONED BY (`{PARTITION_KEY}` string)"
        )
        assert re.search(r"STORED\s+AS\s+PARQUET", rest, re.I), f"{where}: STORED AS PARQUET"
        template = re.search(r"'storage\.location\.template'\s*=\s*'([^']+)'", rest)
        if template:
            assert template.group(1) == f"{location.group(1)}{PARTITION_KEY}=${{{PARTITION_KEY}}}/", where
    else:  # Spark: a data source table; the partition column is declared with the others
        expected = [(name, _HIVE[kind]) for name, kind in columns] + [(PARTITION_KEY, "date")]
        assert re.search(rf"PARTITIONED\s+BY\s*\(\s*`?{PARTITION_KEY}`?\s*\)", rest, re.I), where
        assert re.search(r"USING\s+PARQUET", statement, re.I), f"{where}: USING PARQUET"
    assert declared == expected, (
        f"{where}: {engine}'s {table} table must declare exactly the snapshot's columns, in order:\n"
        f"  missing or different: {[c for c in expected if c not in declared]}\n"
        f"  not in the snapshot:  {[c for c in declared if c not in expected]}"
    )
    return table


def _check_ddl(block: Block, engine: str) -> None:
    tables = [_check_table(s, engine, block.where) for s in _statements(block.text) if _CREATE.search(s) is not None]
    assert sorted(tables) == sorted(TABLES), f"{block.where}: {engine}: create both tables (got {tables})"


def _check_query(block: Block, request: pytest.FixtureRequest) -> None:
    env = request.getfixturevalue("doc_env")
    env.run_check("quick-start")
    snapshot = Path(request.getfixturevalue("tmp_path")) / "sql-block-snapshot"
    write_snapshot(env.tracker(), str(snapshot))
    for statement in _statements(block.text):
        for table, column in re.findall(r"\b(entries|lineage)\.(\w+)", statement):
            assert column in {c for c, _ in TABLES[table]} | {PARTITION_KEY}, f"{block.where}: no {table}.{column}"
        result = query_snapshot(str(snapshot), statement)  # raises on an error, with DuckDB's message
        assert result.columns, f"{block.where}: returns no columns: {statement[:80]}"


def check_sql(block: Block, request: pytest.FixtureRequest) -> None:
    if re.search(r"\bCREATE\b", block.text, re.I):
        engine = _ENGINE.search(block.prose)
        assert engine, f"{block.where}: say in the paragraph before a CREATE block which engine it is for"
        _check_ddl(block, engine.group(1))
    else:
        _check_query(block, request)
