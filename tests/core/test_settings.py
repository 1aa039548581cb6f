"""One set of settings (issue 12): arguments, then LORE_* variables, then lore.toml or
[tool.lore] in pyproject.toml, then the user's lore.toml; errors name the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreConfigError, LoreTracker
from lore_core.settings import ENVIRONMENT, load_config, user_config_path


def _load(tmp_path: Path, arguments: dict[str, Any] | None = None, **environ: str) -> Any:
    return load_config(arguments, environ=environ, cwd=tmp_path / "project", user_config=tmp_path / "user.toml")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    return tmp_path / "project"


def test_first_source_wins_and_each_value_says_where_it_came_from(tmp_path: Path, project: Path) -> None:
    (tmp_path / "user.toml").write_text('store = "memory://user"\nregion = "eu-west-1"\nprofile = "me"\n')
    (project / "lore.toml").write_text('store = "memory://project"\nregion = "eu-west-2"\n')
    config = _load(tmp_path, {"store": "memory://argument", "region": None}, LORE_REGION="eu-west-3")
    assert config.store == "memory://argument" and config.source("store") == "argument store"
    assert config.region == "eu-west-3" and config.source("region") == "environment LORE_REGION"
    assert config.profile == "me" and config.source("profile") == str(tmp_path / "user.toml")
    assert config.files == (str(project / "lore.toml"), str(tmp_path / "user.toml"))
    without = _load(tmp_path)
    assert without.store == "memory://project" and without.source("store") == str(project / "lore.toml")


def test_pyproject_tool_lore_when_there_is_no_lore_toml(tmp_path: Path, project: Path) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.lore]\nstore = "memory://py"\n')
    config = _load(tmp_path)
    assert config.store == "memory://py" and config.source("store") == f"{project / 'pyproject.toml'} [tool.lore]"
    (project / "lore.toml").write_text('store = "memory://own"\n')
    assert _load(tmp_path).store == "memory://own"  # lore.toml first; pyproject.toml is then not read


def test_user_file_honours_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_config_path({}) == tmp_path / "home" / ".config" / "lore" / "lore.toml"
    assert user_config_path({"XDG_CONFIG_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "lore" / "lore.toml"
    (tmp_path / "xdg" / "lore").mkdir(parents=True)
    (tmp_path / "xdg" / "lore" / "lore.toml").write_text('store = "memory://xdg"\n')
    config = load_config(environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=tmp_path)
    assert config.store == "memory://xdg" and config.source("store") == str(tmp_path / "xdg" / "lore" / "lore.toml")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('stor = "s3://b"\n', ["unknown key 'stor'", "did you mean 'store'"]),
        ('region = "bad region!"\n', ["region:", "'bad region!'"]),
        ('endpoint_url = "127.0.0.1:9000"\n', ["endpoint_url:", "did you mean 'http://127.0.0.1:9000'"]),
        ('store = "ftp://x"\n', ["store:", "ftp://x"]),
        ("max_entries = 0\n", ["max_entries:", "> 0"]),
        ('max_entries = "ten"\n', ["max_entries:", "integer"]),
        ("openlineage = 3\n", ["openlineage:", "true or false"]),
        ('sse = "des"\n', ["sse:", "AES256"]),
        ("store = [\n", ["not valid TOML"]),
    ],
)
def test_unknown_keys_and_bad_values_name_the_file_and_key(
    tmp_path: Path, project: Path, text: str, needles: list[str]
) -> None:
    (project / "lore.toml").write_text(text)
    with pytest.raises(LoreConfigError) as raised:
        _load(tmp_path, {"store": "memory://wins-but-the-file-is-still-checked"})
    message = str(raised.value)
    assert message.startswith(str(project / "lore.toml")), message
    for needle in needles:
        assert needle in message, message


def test_bad_environment_values_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(LoreConfigError, match=r"^environment LORE_MAX_ENTRIES: max_entries: must be an integer"):
        _load(tmp_path, LORE_MAX_ENTRIES="lots")
    with pytest.raises(LoreConfigError, match=r"^environment LORE_REGION: region: 'a b'"):
        _load(tmp_path, LORE_REGION="a b")
    assert _load(tmp_path, LORE_STORE="").store is None  # an empty variable is unset
    assert _load(tmp_path, LORE_WRITABLE_BUCKETS="a, b,a").get("writable_buckets") == ("a", "b")
    assert {"LORE_STORE", "LORE_ENDPOINT_URL", "LORE_REGION", "LORE_PROFILE"} <= set(ENVIRONMENT)


def test_from_config_builds_the_tracker_the_settings_name(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for variable in ENVIRONMENT:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(LoreConfigError, match=r"no store configured.*LORE_STORE.*lore\.toml"):
        LoreTracker.from_config()
    (project / "lore.toml").write_text(f'store = "{(tmp_path / "bucket").as_uri()}"\nmax_entries = 7\n')
    tracker = LoreTracker.from_config()
    assert tracker.bucket == "bucket" and tracker.options.max_entries == 7
    monkeypatch.setenv("LORE_STORE", "memory://from-env")
    assert LoreTracker.from_config().store.location("") == "memory://from-env/"
    assert LoreTracker.from_config(store="memory://argument", max_entries=3).options.max_entries == 3


def test_from_config_uses_the_named_aws_profile(tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    aws_config = tmp_path / "aws-config"
    aws_config.write_text("[profile lore-test]\nregion = eu-west-3\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)  # it would win over the profile's region
    tracker = LoreTracker.from_config(store="s3://some-bucket", profile="lore-test")
    assert tracker.store.client.meta.region_name == "eu-west-3"  # type: ignore[attr-defined]
    monkeypatch.setenv("LORE_PROFILE", "missing-profile")
    with pytest.raises(LoreConfigError, match=r"^environment LORE_PROFILE: profile: .*missing-profile"):
        LoreTracker.from_config(store="s3://some-bucket")
