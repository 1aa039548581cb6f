"""Dagster-only fixtures: a telemetry-free DAGSTER_HOME, a real instance per test, and a LoreResource
pointed at the local S3 server's fresh bucket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from lore_dagster import LoreResource, LoreS3IOManager


@pytest.fixture(autouse=True, scope="session")
def _dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # Dagster must never phone home from tests, and must never touch a developer's own DAGSTER_HOME.
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "DAGSTER_DISABLE_TELEMETRY")}
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["DAGSTER_DISABLE_TELEMETRY"] = "1"
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real (sqlite, on-disk) instance of its own for each test."""
    home = tmp_path / "instance"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as inst:
        yield inst


@pytest.fixture()
def lore(bucket: str, s3_endpoint: str) -> LoreResource:
    return LoreResource(store=f"s3://{bucket}/.lore-s3", endpoint_url=s3_endpoint)


@pytest.fixture()
def io_manager(bucket: str, lore: LoreResource) -> LoreS3IOManager:
    return LoreS3IOManager(bucket=bucket, prefix="assets", lore=lore)


@pytest.fixture()
def resources(lore: LoreResource, io_manager: LoreS3IOManager) -> dict[str, object]:
    return {"lore": lore, "io_manager": io_manager}
