"""The ``lore`` command against the real S3 endpoint, run as a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker


def lore(*args: str, store: str | None, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORE_")}
    if store is not None:
        env["LORE_STORE"] = store
    if endpoint is not None:
        env["LORE_ENDPOINT_URL"] = endpoint
    # The installed entry point, as a user runs it.
    return subprocess.run(
        [str(Path(sys.executable).parent / "lore"), *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture()
def populated(s3_client: Any, bucket: str) -> str:
    tracker = LoreTracker(bucket=bucket, s3_client=s3_client)
    tracker.run("raw/a.csv", step="validate", handler=lambda ctx: {"rows": 2}, produces="clean/a.parquet")
    tracker.run("clean/a.parquet", step="render", handler=lambda ctx: None, produces="png/a.png")
    tracker.run("raw/b.csv", step="validate", handler=lambda ctx: 1 / 0)
    return f"s3://{bucket}/.lore-s3"


def test_history_text_and_json(populated: str, s3_endpoint: str) -> None:
    text = lore("history", "raw/a.csv", store=populated, endpoint=s3_endpoint)
    assert text.returncode == 0, text.stderr
    assert "raw/a.csv" in text.stdout and "validate" in text.stdout and "success" in text.stdout
    assert "derived to:   clean/a.parquet" in text.stdout
    as_json = lore("history", "raw/b.csv", "--json", store=populated, endpoint=s3_endpoint)
    doc = json.loads(as_json.stdout)
    assert doc["fileKey"] == "raw/b.csv" and doc["entries"][0]["error"]["name"] == "ZeroDivisionError"


def test_lineage_formats(populated: str, s3_endpoint: str) -> None:
    tree = lore("lineage", "png/a.png", store=populated, endpoint=s3_endpoint).stdout
    assert tree.splitlines()[0].startswith("png/a.png") and "clean/a.parquet [render: success]" in tree
    assert "raw/a.csv [validate: success]" in tree
    mermaid = lore("lineage", "png/a.png", "--format", "mermaid", store=populated, endpoint=s3_endpoint).stdout
    assert mermaid.startswith("graph LR") and mermaid.count("-->") == 2
    dot = lore("lineage", "png/a.png", "--format", "dot", store=populated, endpoint=s3_endpoint).stdout
    assert dot.startswith("digraph lineage {") and dot.count("->") == 2
    data = json.loads(lore("lineage", "png/a.png", "--json", store=populated, endpoint=s3_endpoint).stdout)
    assert data["parents"][0]["parents"][0]["fileKey"] == "raw/a.csv"


def test_descendants_failed_ls(populated: str, s3_endpoint: str) -> None:
    assert lore("descendants", "raw/a.csv", store=populated, endpoint=s3_endpoint).stdout.split() == ["clean/a.parquet"]
    failed = json.loads(lore("failed", "--json", store=populated, endpoint=s3_endpoint).stdout)
    assert [(f["fileKey"], f["step"]) for f in failed] == [("raw/b.csv", "validate")]
    assert failed[0]["error"]["name"] == "ZeroDivisionError"
    assert lore("failed", "--step", "other", store=populated, endpoint=s3_endpoint).stdout == ""
    listing = lore("ls", "--prefix", "raw/", "--json", store=populated, endpoint=s3_endpoint)
    assert [(r["fileKey"], r["latestStatus"]) for r in json.loads(listing.stdout)] == [
        ("raw/a.csv", "success"),
        ("raw/b.csv", "failed"),
    ]
    assert lore("ls", "--no-status", store=populated, endpoint=s3_endpoint).stdout.split() == [
        "clean/a.parquet",
        "png/a.png",
        "raw/a.csv",
        "raw/b.csv",
    ]


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lore: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_user_mistakes_print_one_line_and_exit_non_zero(
    populated: str, s3_endpoint: str, s3_client: Any, bucket: str
) -> None:
    _one_line_error(lore("history", "x", store=None), 2, "LORE_STORE")
    _one_line_error(lore("history", "nope.csv", store=populated, endpoint=s3_endpoint), 1, "nope.csv")
    _one_line_error(lore("history", "a/../b", store=populated, endpoint=s3_endpoint), 1, "'..'")
    _one_line_error(lore("ls", store="s3://missing-bucket-x", endpoint=s3_endpoint), 1, "missing-bucket-x")
    _one_line_error(lore("ls", store="ftp://what"), 2, "ftp://what")  # a configuration mistake
    s3_client.put_object(Bucket=bucket, Key=".lore-s3/bad.json", Body=b"{oops")
    _one_line_error(lore("history", "bad", store=populated, endpoint=s3_endpoint), 1, "bad.json", "corrupt")
    usage = lore("lineage", "k", "--format", "svg", store=populated)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_file_store_url(tmp_path: Any) -> None:
    url = (tmp_path / "bucket").as_uri()
    LoreTracker.from_url(url).run("local/file.txt", step="s", handler=lambda ctx: None)
    assert lore("ls", "--no-status", store=url).stdout.split() == ["local/file.txt"]
    assert (tmp_path / "bucket" / ".lore-s3" / "local" / "file.txt.json").is_file()
