"""LoreResource's fields come first; what they leave unset comes from Lore's settings
(LORE_* variables, lore.toml / [tool.lore], the user's lore.toml), as for the CLI (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lore_core.settings import ENVIRONMENT
from lore_dagster import LoreResource


@pytest.fixture()
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_resource_without_store_uses_lore_settings(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean / "lore.toml").write_text(f'store = "{(clean / "bucket").as_uri()}"\nlease_seconds = 90\n')
    tracker = LoreResource().get_tracker()
    assert tracker.bucket == "bucket" and tracker.options.lease_seconds == 90
    monkeypatch.setenv("LORE_STORE", "memory://dagster-env")
    assert LoreResource().get_tracker().store.location("") == "memory://dagster-env/"
    resource = LoreResource(store="memory://field", lease_seconds=30)
    assert resource.get_tracker().store.location("") == "memory://field/"
    assert resource.settings().source("store") == "LoreResource store"
    assert resource.get_tracker().options.lease_seconds == 30


def test_the_profile_names_the_clients_aws_profile(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean / "aws-config").write_text(
        "[profile dg]\nregion = ap-south-1\naws_access_key_id = a\naws_secret_access_key = b\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(clean / "aws-config"))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("LORE_PROFILE", "dg")
    client = LoreResource(store="s3://some-bucket").get_s3_client()
    assert client.meta.region_name == "ap-south-1"
