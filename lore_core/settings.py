"""One set of settings for the CLI, ``LoreTracker.from_config()`` and both adapters.

Promises: every value is looked up in the same places, the first that sets it wins:

1. arguments (CLI options, ``from_config(...)`` keywords, a Dagster resource's fields);
2. the environment: ``LORE_<NAME>`` (``LORE_STORE``, ``LORE_ENDPOINT_URL``, ``LORE_REGION``,
   ``LORE_PROFILE``, ... see ``ENVIRONMENT``); an empty variable counts as unset;
3. ``lore.toml`` in the working directory, or else ``[tool.lore]`` in its ``pyproject.toml``;
4. the user's ``$XDG_CONFIG_HOME/lore/lore.toml`` (``~/.config/lore/lore.toml``).

Unknown keys and bad values are ``LoreConfigError``\\ s naming the file (or variable, or
option) and the key; nothing is silently dropped or changed. Each resolved value remembers
where it came from (``Setting.source``), which ``lore info`` prints. Airflow reads its own
``[lore]`` section first and these sources for what it leaves unset (``lore_airflow.config``).
It does not build trackers (``LoreTracker.from_config`` does) or open stores.

Example::

    from lore_core.settings import load_config

    config = load_config({"store": "memory://demo"}, environ={}, cwd="/nonexistent", user_config=None)
    assert config.store == "memory://demo"
    assert config.source("store") == "argument store"
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .config import TrackerOptions
from .errors import LoreConfigError
from .stores import make_s3_client

__all__ = ["ENVIRONMENT", "KEYS", "LoreConfig", "Setting", "load_config", "user_config_path"]

# botocore's own check of region names (it raises InvalidRegionError for anything else).
_REGION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# --------------------------------------------------------------------------- value checks
# Each takes the raw value (a TOML value, or a string from the environment or a CLI option)
# and returns the value to use, or raises ValueError saying what is wrong with it.


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _store(value: object) -> str:
    url = _text(value)
    scheme = url.split("://", 1)[0] if "://" in url else None
    if scheme not in ("s3", "file", "memory"):
        raise ValueError(f"{url!r} is not a store URL: use s3://bucket/prefix, file:///path or memory://name")
    return url


def _endpoint(value: object) -> str:
    url = _text(value)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        guess = "http://" + url.split("://", 1)[-1]
        raise ValueError(f"{url!r} is not an http(s) URL (did you mean {guess!r}?)")
    try:
        parsed.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise ValueError(f"{url!r} has a port that is not a number") from None
    return url


def _region(value: object) -> str:
    region = _text(value)
    if not _REGION.match(region):
        raise ValueError(
            f"{region!r} is not a region name (letters, digits and '-': e.g. 'eu-west-1', or 'auto' for R2)"
        )
    return region


def _sse(value: object) -> str:
    sse = _text(value)
    if sse not in ("AES256", "aws:kms"):
        raise ValueError(f"must be 'AES256' or 'aws:kms', got {sse!r}")
    return sse


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, got {value!r}")


def _int(value: object) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"must be an integer, got {value!r}")


def _float(value: object) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"must be a number, got {value!r}")


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # from the environment: comma-separated
        return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(value))
    raise ValueError(f"must be a list of names, got {value!r}")


def _checker_for(annotation: Any) -> Callable[[object], Any]:
    """The check of a ``TrackerOptions`` field, from its type."""
    hint = annotation
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        return _bool
    if hint is int:
        return _int
    if hint is float:
        return _float
    return _names  # tuple[str, ...]


@dataclass(frozen=True)
class _Key:
    check: Callable[[object], Any]
    help: str


_TRACKER_HINTS = typing.get_type_hints(TrackerOptions)

#: Every key Lore reads, with its check. Tracker options are ``TrackerOptions``'s fields.
KEYS: dict[str, _Key] = {
    "store": _Key(_store, "where histories live: s3://bucket/prefix, file:///path or memory://name"),
    "endpoint_url": _Key(_endpoint, "S3 endpoint for MinIO, R2, Ceph or a local server (http:// or https://)"),
    "region": _Key(_region, "S3 region ('auto' for Cloudflare R2)"),
    "profile": _Key(_text, "AWS profile (boto3 session profile from ~/.aws/config)"),
    "expected_bucket_owner": _Key(_text, "account id sent as ExpectedBucketOwner on every request"),
    "sse": _Key(_sse, "server-side encryption of history writes: AES256 or aws:kms"),
    "sse_kms_key_id": _Key(_text, "KMS key for sse = 'aws:kms'"),
    "snapshot": _Key(_text, "default location of the Parquet snapshot (lore snapshot / lore query)"),
    "openlineage": _Key(_bool, "emit OpenLineage run events (extra [openlineage])"),
    **{
        f.name: _Key(_checker_for(_TRACKER_HINTS[f.name]), "tracker option (README: Configuration)")
        for f in dataclasses.fields(TrackerOptions)
    },
}

#: Environment variable -> key. Each key has one: ``LORE_`` + its name in capitals.
ENVIRONMENT: dict[str, str] = {
    "LORE_STORE": "store",
    "LORE_ENDPOINT_URL": "endpoint_url",
    "LORE_REGION": "region",
    "LORE_PROFILE": "profile",
    **{f"LORE_{name.upper()}": name for name in KEYS},
}

_S3_ONLY = ("endpoint_url", "region", "profile", "expected_bucket_owner", "sse", "sse_kms_key_id")
_STORE_ONLY = ("expected_bucket_owner", "sse", "sse_kms_key_id")
_NOT_FOR_TRACKER = ("store", "endpoint_url", "region", "profile", "snapshot", "openlineage")


@dataclass(frozen=True)
class Setting:
    """A resolved value and where it came from (``"argument --store"``, ``"environment LORE_STORE"``,
    ``"/path/lore.toml"``, ``"/path/pyproject.toml [tool.lore]"``)."""

    name: str
    value: Any
    source: str


@dataclass(frozen=True)
class LoreConfig:
    """The settings in force: ``values`` by key (only keys something set), and the files read."""

    values: Mapping[str, Setting]
    files: tuple[str, ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        setting = self.values.get(name)
        return setting.value if setting is not None else default

    def source(self, name: str) -> str | None:
        setting = self.values.get(name)
        return setting.source if setting is not None else None

    @property
    def store(self) -> str | None:
        return typing.cast("str | None", self.get("store"))

    @property
    def endpoint_url(self) -> str | None:
        return typing.cast("str | None", self.get("endpoint_url"))

    @property
    def region(self) -> str | None:
        return typing.cast("str | None", self.get("region"))

    @property
    def profile(self) -> str | None:
        return typing.cast("str | None", self.get("profile"))

    def require_store(self) -> str:
        """The store URL, or a ``LoreConfigError`` saying every place one can be set."""
        if not self.store:
            raise LoreConfigError(
                "no store configured: pass --store URL (or store=...), set LORE_STORE, or put "
                'store = "s3://my-bucket/.lore-s3" in lore.toml, [tool.lore] in pyproject.toml or '
                f"{user_config_path()}"
            )
        return self.store

    def tracker_options(self) -> dict[str, Any]:
        """What ``LoreTracker.from_url`` takes besides the URL and client: tracker and store options set here."""
        options = {name: s.value for name, s in self.values.items() if name not in _NOT_FOR_TRACKER}
        if self.get("openlineage"):  # only when asked for: the option belongs to the [openlineage] extra
            options["openlineage"] = True
        return options

    def s3_client(self, **client_options: Any) -> Any:
        """A boto3 S3 client for the endpoint, region and profile in force (``make_s3_client``'s defaults).

        A profile that does not exist, or an endpoint or region botocore refuses, is a
        ``LoreConfigError`` naming the setting and where it came from.
        """
        from botocore.exceptions import BotoCoreError

        try:
            return make_s3_client(self.endpoint_url, self.region, profile=self.profile, **client_options)
        except (BotoCoreError, ValueError) as exc:
            culprit = "profile" if "profile" in str(exc).lower() and self.profile else None
            if culprit is None:
                culprit = "region" if "region" in str(exc).lower() and self.region else "endpoint_url"
            where = self.source(culprit) or "boto3's configuration"
            raise LoreConfigError(f"{where}: {culprit}: {exc}") from None

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{key: {"value": ..., "source": ...}}`` for every key set (for ``lore info``)."""
        return {
            name: {"value": list(s.value) if isinstance(s.value, tuple) else s.value, "source": s.source}
            for name, s in self.values.items()
        }


def user_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/lore/lore.toml``, or ``~/.config/lore/lore.toml``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "lore" / "lore.toml"


def _check(name: str, value: object, where: str) -> Any:
    key = KEYS.get(name)
    if key is None:
        close = difflib.get_close_matches(name, KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LoreConfigError(f"{where}: unknown key {name!r}{hint}; known keys: {', '.join(sorted(KEYS))}")
    try:
        checked = key.check(value)
        if name in TrackerOptions.__dataclass_fields__:
            TrackerOptions(**{name: checked})  # ranges, as the tracker checks them
    except (ValueError, LoreConfigError) as exc:
        message = str(exc).removeprefix(f"{name} ")
        label = where if where.startswith("--") else f"{where}: {name}"  # a CLI option names the key itself
        raise LoreConfigError(f"{label}: {message}") from None
    return checked


def _read_toml(path: Path, table: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The table at ``table`` in the TOML file, or None when the file (or table) is absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoreConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LoreConfigError(f"{path}: not valid TOML: {exc}") from None
    for part in table:
        data = data.get(part) if isinstance(data, dict) else None
        if data is None:
            return None
    if not isinstance(data, dict):
        raise LoreConfigError(f"{path}: [{'.'.join(table)}] must be a table")
    return data


def _project_file(cwd: Path) -> tuple[str, dict[str, Any]] | None:
    """``lore.toml`` in ``cwd``, or else ``[tool.lore]`` of its ``pyproject.toml`` (like ruff)."""
    own = _read_toml(cwd / "lore.toml")
    if own is not None:
        return str(cwd / "lore.toml"), own
    table = _read_toml(cwd / "pyproject.toml", ("tool", "lore"))
    if table is not None:
        return f"{cwd / 'pyproject.toml'} [tool.lore]", table
    return None


def load_config(
    arguments: Mapping[str, Any] | None = None,
    *,
    argument_source: str | Mapping[str, str] = "argument",
    environ: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    user_config: str | os.PathLike[str] | bool | None = True,
) -> LoreConfig:
    """The settings in force, from ``arguments`` (None values are unset), the environment,
    the project file and the user file, in that order.

    ``argument_source`` labels arguments in ``source`` (a string, suffixed with the key, or a
    mapping from key to label: the CLI passes ``{"store": "--store", ...}``). ``environ``,
    ``cwd`` and ``user_config`` (a path; False or None for none; True for the default
    ``user_config_path()``) are for tests and embedding.
    """
    env = os.environ if environ is None else environ
    found: dict[str, Setting] = {}
    files: list[str] = []

    def offer(name: str, value: Any, where: str) -> None:
        checked = _check(name, value, where)
        found.setdefault(name, Setting(name, checked, where))

    for name, value in (arguments or {}).items():
        if value is None:
            continue
        if isinstance(argument_source, str):
            label = f"{argument_source} {name}"
        else:
            label = argument_source.get(name, f"argument {name}")
        offer(name, value, label)
    for variable, name in ENVIRONMENT.items():
        value = env.get(variable)
        if value is not None and value.strip():
            offer(name, value, f"environment {variable}")
    project = _project_file(Path(cwd) if cwd is not None else Path.cwd())
    sources: list[tuple[str, dict[str, Any]]] = [project] if project is not None else []
    if user_config:
        path = user_config_path(env) if user_config is True else Path(user_config)
        table = _read_toml(path)
        if table is not None:
            sources.append((str(path), table))
    for where, table in sources:
        files.append(where)
        for name, value in table.items():
            offer(name, value, where)
    return LoreConfig(found, tuple(files))
