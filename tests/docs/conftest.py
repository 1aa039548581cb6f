"""Fixtures for running the documents' code blocks: the session's local S3 server (from
tests/conftest.py) with an empty ``my-bucket``, boto3 pointed at it through
``AWS_ENDPOINT_URL``, and the telemetry-free ``DAGSTER_HOME`` of the Dagster tests."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from lore_core.testing import LocalS3Server
from tests.dagster.conftest import _dagster_home  # noqa: F401  (a fixture: Dagster never phones home)

from .checks import BUCKET, CHECKS, DocEnv
from .markdown import Block, all_blocks


def _empty_bucket(client: Any) -> None:
    """Remove ``my-bucket`` and everything in it, if it exists."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=BUCKET)
    except client.exceptions.NoSuchBucket:
        pass


def run_python_block(block: Block, env: DocEnv) -> None:
    """Run ``block`` under the check its ``<!-- test: NAME -->`` marker names."""
    assert block.marker in CHECKS, (
        f"{block.where}: no check named {block.marker!r} in tests/docs/checks.py (checks: {', '.join(sorted(CHECKS))})"
    )
    runs: list[dict[str, Any]] = []

    class Runner:
        source = block.text

        def __call__(self, **names: Any) -> dict[str, Any]:
            assert not runs, f"{block.where}: the check ran the block twice"
            namespace: dict[str, Any] = {"__name__": f"doc_block_{block.line}", **names}
            # Padded to the block's first line: a traceback names the document and its line.
            code = compile("\n" * block.line + block.text, str(Path(block.path)), "exec", dont_inherit=True)
            with warnings.catch_warnings():
                # A documented example must not use what its library has deprecated.
                warnings.simplefilter("error", DeprecationWarning)
                exec(code, namespace)
            runs.append(namespace)
            return namespace

    CHECKS[block.marker](env, Runner())
    assert runs, f"{block.where}: the check {block.marker!r} never ran the block"


def block_marked(name: str) -> Block:
    (block,) = [b for b in all_blocks() if b.marker == name and b.lang == "python"]
    return block


@pytest.fixture()
def doc_env(s3_server: LocalS3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DocEnv]:
    client = s3_server.client()
    _empty_bucket(client)
    client.create_bucket(Bucket=BUCKET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)  # boto3's own setting: blocks name no endpoint
    with ExitStack() as stack:
        env = DocEnv(
            endpoint=s3_server.endpoint_url,
            client=client,
            tmp_path=tmp_path,
            stack=stack,
            setenv=monkeypatch.setenv,
            run_check=lambda name: run_python_block(block_marked(name), env),
        )
        yield env
    _empty_bucket(client)
