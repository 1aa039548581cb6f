"""Lore's settings inside Airflow: the ``[lore]`` section of Airflow's own config.

Every option can also be given as an environment variable (``AIRFLOW__LORE__STORE``),
and ``lore_callbacks(...)``, the sensor and the operator accept the same names as
arguments, which win over the config.

- ``store``: ``s3://bucket/prefix`` (or ``file:///dir``); the listener tracks
  nothing while it is empty. Histories live in each file's own bucket.
- ``aws_conn_id``: Airflow AWS connection for S3, read by ``LoreHook`` (an
  ``AwsBaseHook``: credentials, role, ``endpoint_url`` and ``region_name`` in its extra);
  default ``aws_default``. A connection that does not exist means boto3's credential chain.
- ``endpoint_url`` / ``region``: override the connection's (MinIO, a local S3 server).
- ``raise_on_error``: ``True`` makes a tracking failure fail the task (default
  ``False``: it is logged as an error naming what was not recorded, and the task
  goes on).
- ``lease_seconds``: how long a running entry stays valid without renewal (default
  Lore's, 600). While the task runs a heartbeat renews it every third of the lease,
  so only a task whose worker died is ever reported abandoned.
- ``first_heartbeat_seconds``: delay before the first renewal (default Lore's, 5).
- ``hook_lineage``: ``True`` (default): S3 reads/writes made through ``S3Hook``
  count as inlets/outlets.
- ``listener``: ``True`` (default): the plugin's listener tracks tasks with
  ``s3://`` inlets/outlets.
- ``ui_default_prefix``: prefix of the failed-entries list on the lineage page.
- ``buckets``: comma-separated buckets whose histories the lineage page may read
  (default: the store's bucket only); ``?file=s3://other/...`` is refused with 403.
- ``openlineage``: ``True`` sends each entry's life as OpenLineage run events (extra
  ``lore-s3[openlineage]``; ``lore_core.openlineage``) through openlineage-python's client,
  configured the standard way (``openlineage.yml``, ``OPENLINEAGE_CONFIG``,
  ``OPENLINEAGE_URL``); each run's ``parent`` facet names the task instance's run as
  Airflow's OpenLineage provider emits it (default ``False``).
- ``openlineage_namespace``: the namespace of those runs' jobs (default ``lore``).
- ``writable_buckets``: comma-separated buckets, besides the store's, in which Lore may
  write histories (default: none). A task's files in any other bucket are never
  written: reading one is recorded as a ``derivedFrom`` ref (naming its bucket) on what
  the task wrote into the store, writing one as a ``derivedTo`` ref on what it read.

What ``[lore]`` leaves unset among ``store``, ``endpoint_url``, ``region``,
``lease_seconds``, ``first_heartbeat_seconds`` and ``writable_buckets`` comes from Lore's
own settings, as for the CLI and Dagster (``lore_core.settings``): ``LORE_*`` variables,
``lore.toml`` / ``[tool.lore]`` in the working directory, ``~/.config/lore/lore.toml``.

Example::

    from lore_airflow.config import LoreSettings

    settings = LoreSettings.from_airflow(store="s3://my-bucket/.lore-s3")
    assert settings.store == "s3://my-bucket/.lore-s3"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lore_core import LoreConfigError
from lore_core.settings import load_config

__all__ = ["LoreSettings"]

_SECTION = "lore"
#: Settings that fall back to ``lore_core.settings`` when ``[lore]`` leaves them unset.
_SHARED = ("store", "endpoint_url", "region", "lease_seconds", "first_heartbeat_seconds", "writable_buckets")
#: The Amazon provider's default connection, as for every AWS hook.
DEFAULT_AWS_CONN_ID = "aws_default"


def _conf_get(option: str) -> str | None:
    # The task SDK's view of Airflow's config (airflow.cfg and AIRFLOW__* variables): workers
    # must not need airflow-core's airflow.configuration.
    from airflow.sdk.configuration import conf

    value = conf.get(_SECTION, option, fallback=None)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _as_bool(value: str | bool | None, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return value.strip().lower() in ("1", "true", "yes", "on")


def _as_names(value: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in (value or "").split(",") if name.strip()))


def _as_seconds(option: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise LoreConfigError(f"[lore] {option} must be a number of seconds, got {value!r}") from None


@dataclass(frozen=True)
class LoreSettings:
    """Where Lore writes and how it reacts to its own failures."""

    store: str | None = None
    aws_conn_id: str | None = DEFAULT_AWS_CONN_ID
    endpoint_url: str | None = None
    region: str | None = None
    raise_on_error: bool = False
    hook_lineage: bool = True
    listener: bool = True
    ui_default_prefix: str | None = None
    lease_seconds: float | None = None
    first_heartbeat_seconds: float | None = None
    buckets: tuple[str, ...] = ()
    writable_buckets: tuple[str, ...] = ()
    openlineage: bool = False
    openlineage_namespace: str | None = None

    @classmethod
    def from_airflow(cls, **overrides: Any) -> LoreSettings:
        """Settings from ``[lore]`` in Airflow's config; keyword arguments that are not None win."""
        values: dict[str, Any] = {
            "store": _conf_get("store"),
            "aws_conn_id": _conf_get("aws_conn_id") or DEFAULT_AWS_CONN_ID,
            "endpoint_url": _conf_get("endpoint_url"),
            "region": _conf_get("region"),
            "raise_on_error": _as_bool(_conf_get("raise_on_error"), False),
            "hook_lineage": _as_bool(_conf_get("hook_lineage"), True),
            "listener": _as_bool(_conf_get("listener"), True),
            "ui_default_prefix": _conf_get("ui_default_prefix"),
            "lease_seconds": _as_seconds("lease_seconds", _conf_get("lease_seconds")),
            "first_heartbeat_seconds": _as_seconds("first_heartbeat_seconds", _conf_get("first_heartbeat_seconds")),
            "buckets": _as_names(_conf_get("buckets")),
            "writable_buckets": _as_names(_conf_get("writable_buckets")),
            "openlineage": _as_bool(_conf_get("openlineage"), False),
            "openlineage_namespace": _conf_get("openlineage_namespace"),
        }
        if any(values[name] in (None, ()) for name in _SHARED):
            shared = load_config()  # LORE_* variables, lore.toml / [tool.lore], the user's lore.toml
            for name in _SHARED:
                if values[name] in (None, ()) and shared.get(name) is not None:
                    values[name] = shared.get(name)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise TypeError(f"unknown Lore setting(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        for option in ("buckets", "writable_buckets"):
            given = values[option]
            values[option] = _as_names(given) if isinstance(given, str) else tuple(given)
        return cls(**values)

    def tracker_options(self) -> dict[str, Any]:
        """The ``LoreTracker`` options these settings set (Lore's defaults for the rest)."""
        options = {"lease_seconds": self.lease_seconds, "first_heartbeat_seconds": self.first_heartbeat_seconds}
        return {name: value for name, value in options.items() if value is not None}
