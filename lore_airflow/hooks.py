"""``LoreHook``: Lore's S3 client and trackers, from an Airflow AWS connection.

Promises: endpoint, region and credentials come from the Airflow connection
(``aws_conn_id``, default ``[lore] aws_conn_id``, itself ``aws_default``) exactly as
the Amazon provider's ``AwsBaseHook`` reads them (login/password or extras, roles,
``endpoint_url`` and ``region_name`` in the extra); a missing connection falls back
to boto3's credential chain, as ``AwsBaseHook`` does. ``[lore] endpoint_url`` and
``[lore] region``, when set, win over the connection's. The client gets Lore's botocore
defaults (standard retries, bounded timeouts, checksums only when an operation
requires them, as ``lore_core.make_s3_client``), then the connection's
``config_kwargs``, then the hook's ``config=`` argument, each over the one before.

It does not cache across instances: ``lore_airflow.tracking.tracker_for`` keeps one
hook (one session, one client) per process and connection (``aws_conn_id``,
``endpoint_url``, ``region``), shared by the trackers of every store and bucket.

Example::

    from lore_airflow import LoreHook

    def count_failures() -> int:  # a task body
        tracker = LoreHook(store="s3://my-bucket/.lore-s3").get_tracker()
        return len(list(tracker.list_failed()))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore import UNSIGNED
from botocore.config import Config

from lore_core import LoreConfigError, LoreTracker
from lore_core.integration import is_s3_url, parse_s3_url
from lore_core.keys import DEFAULT_PREFIX

from .config import LoreSettings
from .masking import airflow_masker

__all__ = ["LoreHook", "lore_botocore_config", "make_tracker", "store_bucket_and_prefix"]

_CHECKSUM_OPTIONS = ("request_checksum_calculation", "response_checksum_validation")


def lore_botocore_config() -> Config:
    """Lore's client defaults (those of ``lore_core.make_s3_client``).

    Checksums are sent and checked only when an operation requires them, unless the
    environment (``AWS_REQUEST_CHECKSUM_CALCULATION`` / ``AWS_RESPONSE_CHECKSUM_VALIDATION``)
    says otherwise: botocore's default uploads over HTTPS as ``aws-chunked`` with a trailing
    checksum, which several S3-compatible servers refuse.
    """
    checksums = {option: "when_required" for option in _CHECKSUM_OPTIONS if not os.environ.get(f"AWS_{option.upper()}")}
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5.0,
        read_timeout=30.0,
        max_pool_connections=32,
        **checksums,
    )


def store_bucket_and_prefix(store: str) -> tuple[str | None, str]:
    """The default bucket and the history prefix of a store URL (bucket None for non-S3 stores)."""
    if not is_s3_url(store):
        return None, ""
    bucket, path = parse_s3_url(store, key_required=False)
    return bucket, path.strip("/") or DEFAULT_PREFIX


class LoreHook(AwsBaseHook):
    """An ``AwsBaseHook`` for S3 that hands out ``LoreTracker``s for the configured store.

    :param aws_conn_id: Airflow AWS connection; None: ``[lore] aws_conn_id`` (default
        ``aws_default``); ``""``: no connection, boto3's credential chain.
    :param store: ``s3://bucket/prefix`` (or ``file:///dir``); None: ``[lore] store``.
    :param endpoint_url: overrides the connection's endpoint (default ``[lore] endpoint_url``).
    :param region_name: overrides the connection's region (default ``[lore] region``).
    :param config: botocore ``Config`` (or its kwargs) merged over Lore's defaults and the
        connection's ``config_kwargs``.
    :param settings: all of the above at once (``LoreSettings``); the other arguments are then ignored.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "Lore (Amazon S3)"

    def __init__(
        self,
        aws_conn_id: str | None = None,
        *,
        store: str | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        verify: bool | str | None = None,
        config: Config | dict[str, Any] | None = None,
        settings: LoreSettings | None = None,
    ) -> None:
        if settings is None:
            settings = LoreSettings.from_airflow(
                store=store, aws_conn_id=aws_conn_id, endpoint_url=endpoint_url, region=region_name
            )
        self.settings = settings
        user_config = Config(**config) if isinstance(config, dict) else config
        self._user_config = user_config
        base = lore_botocore_config()
        super().__init__(
            aws_conn_id=settings.aws_conn_id or None,
            region_name=settings.region,
            client_type="s3",
            config=base.merge(user_config) if user_config is not None else base,
            verify=verify,
        )

    @cached_property
    def conn_config(self) -> Any:
        """The connection, as ``AwsBaseHook`` reads it, with its ``config_kwargs`` kept and ``[lore]`` overrides."""
        wrapper = super().conn_config
        # AwsBaseHook drops the connection's config_kwargs once config= is given; Lore's
        # defaults must not cost the user theirs: defaults < connection < config= argument.
        from_conn = dict(wrapper.extra_config.get("config_kwargs") or {})
        if from_conn:
            if from_conn.get("signature_version") == "unsigned":
                from_conn["signature_version"] = UNSIGNED
            merged = lore_botocore_config().merge(Config(**from_conn))
            if self._user_config is not None:
                merged = merged.merge(self._user_config)
            wrapper.botocore_config = merged
        if self.settings.endpoint_url:
            wrapper.endpoint_url = self.settings.endpoint_url
        return wrapper

    def get_s3_client(self) -> Any:
        """The boto3 S3 client Lore writes with (built once per hook; ``get_conn()`` is the same)."""
        return self.get_conn()

    def get_tracker(self, bucket: str | None = None) -> LoreTracker:
        """A tracker for files of ``bucket`` (default: the store's bucket; same prefix in every bucket).

        It writes histories only in the store's bucket and ``[lore] writable_buckets``, and passes
        every value through Airflow's secrets masker first. ``file://`` and ``memory://`` stores
        hold every bucket's files in the one store (no S3 client is built for them).
        """
        return make_tracker(self.settings, bucket, self.get_s3_client)


def openlineage_namespace() -> str:
    """The namespace of Airflow's OpenLineage provider: ``[openlineage] namespace``, else
    ``$OPENLINEAGE_NAMESPACE``, else "default" (the provider's ``conf.namespace()``)."""
    from airflow.sdk.configuration import conf

    return str(conf.get("openlineage", "namespace", fallback="") or "") or os.getenv("OPENLINEAGE_NAMESPACE", "default")


def openlineage_sink(settings: LoreSettings) -> Any:
    """The process's OpenLineage sink for ``[lore] openlineage``: one queue and client for every tracker;
    its parent facets name the task runs that Airflow's OpenLineage provider emits."""
    try:
        # Only with [lore] openlineage: openlineage-python is an optional extra.
        from lore_core.openlineage import DEFAULT_NAMESPACE, shared_sink
    except ImportError as exc:
        raise LoreConfigError(
            f"[lore] openlineage = true needs openlineage-python: pip install 'lore-s3[openlineage]' ({exc})"
        ) from None
    return shared_sink(settings.openlineage_namespace or DEFAULT_NAMESPACE, airflow_namespace=openlineage_namespace())


def make_tracker(settings: LoreSettings, bucket: str | None, s3_client: Callable[[], Any]) -> LoreTracker:
    """``LoreHook.get_tracker`` with the S3 client from ``s3_client()`` (called for ``s3://`` stores only)."""
    if not settings.store:
        raise LoreConfigError("no Lore store configured: set [lore] store (AIRFLOW__LORE__STORE) or pass store=")
    default_bucket, prefix = store_bucket_and_prefix(settings.store)
    options = settings.tracker_options()
    if settings.openlineage:
        options["openlineage"] = openlineage_sink(settings)
    # Airflow's secrets masker first: it knows the connection passwords and sensitive variables.
    maskers = [airflow_masker]
    if default_bucket is None:
        return LoreTracker.from_url(settings.store, extra_maskers=maskers, **options)
    # Links between writable buckets are written on both sides; other buckets are never written.
    options["writable_buckets"] = tuple(dict.fromkeys((default_bucket, *settings.writable_buckets)))
    return LoreTracker(
        bucket=bucket or default_bucket, prefix=prefix, s3_client=s3_client(), extra_maskers=maskers, **options
    )
