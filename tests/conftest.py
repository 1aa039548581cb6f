"""Fixtures shared by every test: a real S3 endpoint and fresh buckets.

By default the endpoint is moto's S3 server on 127.0.0.1 over HTTP (one lock per
request so conditional writes are atomic). With ``LORE_TEST_S3_ENDPOINT`` set, the
same fixtures point at that S3-compatible endpoint instead (Ceph RGW in CI, or your
MinIO, R2 or AWS bucket), and every test gets a fresh bucket there, emptied and
removed afterwards:

- ``LORE_TEST_S3_ENDPOINT``: e.g. ``http://127.0.0.1:17480`` or ``https://s3.us-east-1.amazonaws.com``
- ``LORE_TEST_S3_ACCESS_KEY`` / ``LORE_TEST_S3_SECRET_KEY``: credentials allowed to create buckets
- ``LORE_TEST_S3_REGION``: default ``us-east-1``
- ``LORE_TEST_S3_CA_BUNDLE``: a CA bundle (or the server's self-signed certificate) for HTTPS;
  the tests' clients trust it through ``AWS_CA_BUNDLE`` and ``SSL_CERT_FILE``
- ``LORE_TEST_S3_KMS_KEY_ID``: a KMS key id the server knows, for the SSE-KMS tests (default ``alias/lore``)

Tests marked ``moto_only`` (they need the in-process server: added latency, request
counts, moto credentials in subprocesses) are deselected against an external endpoint,
and those marked ``fault_proxy`` (``lore_core.testing.FaultProxy`` forwards plain HTTP)
are deselected against an ``https://`` one. Variants of a test for the file and memory
stores are deselected too: they do not touch S3.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lore_core.testing import LocalS3Server

EXTERNAL_ENDPOINT = os.environ.get("LORE_TEST_S3_ENDPOINT") or None
EXTERNAL_REGION = os.environ.get("LORE_TEST_S3_REGION") or "us-east-1"
EXTERNAL_CA_BUNDLE = os.environ.get("LORE_TEST_S3_CA_BUNDLE") or None
KMS_KEY_ID = os.environ.get("LORE_TEST_S3_KMS_KEY_ID") or "alias/lore"

# Parametrised fixtures whose non-S3 variants are deselected against an external endpoint.
_STORE_PARAMS = {"store_url", "shared_url", "target"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "moto_only: needs the in-process moto server (latency, request counts, moto credentials); "
        "deselected when LORE_TEST_S3_ENDPOINT is set",
    )
    config.addinivalue_line(
        "markers",
        "fault_proxy: goes through lore_core.testing.FaultProxy, which forwards plain HTTP; "
        "deselected when LORE_TEST_S3_ENDPOINT is an https:// endpoint",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if EXTERNAL_ENDPOINT is None:
        return
    https = EXTERNAL_ENDPOINT.startswith("https://")
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        # The Airflow tests hand moto's fake credentials to their subprocesses (tests/airflow/conftest.py).
        moto_only = item.get_closest_marker("moto_only") is not None or "tests/airflow/" in item.nodeid
        params = getattr(getattr(item, "callspec", None), "params", {})
        other_store = any(params.get(name, "s3") != "s3" for name in _STORE_PARAMS)
        through_proxy = https and item.get_closest_marker("fault_proxy") is not None
        (dropped if moto_only or other_store or through_proxy else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    if EXTERNAL_ENDPOINT is None:
        return "S3: moto's server on 127.0.0.1 (set LORE_TEST_S3_ENDPOINT to use another)"
    return f"S3: external endpoint {EXTERNAL_ENDPOINT} (LORE_TEST_S3_ENDPOINT), region {EXTERNAL_REGION}"


class ExternalS3:
    """Stands in for :class:`LocalS3Server` when ``LORE_TEST_S3_ENDPOINT`` is set."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = EXTERNAL_REGION
        self.ca_bundle = EXTERNAL_CA_BUNDLE

    def client(self, **config: Any) -> Any:
        """A boto3 client for the endpoint, configured as a user of that server would configure
        their own: checksums only when required (RGW 16 refuses aws-chunked uploads over HTTPS)."""
        import boto3
        from botocore.config import Config

        defaults = {
            "retries": {"mode": "standard"},
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            verify=self.ca_bundle,
            config=Config(**(defaults | config)),
        )


def _credentials_env() -> dict[str, str]:
    if EXTERNAL_ENDPOINT is None:
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    env = {"AWS_DEFAULT_REGION": EXTERNAL_REGION}
    for name, variable in (
        ("AWS_ACCESS_KEY_ID", "LORE_TEST_S3_ACCESS_KEY"),
        ("AWS_SECRET_ACCESS_KEY", "LORE_TEST_S3_SECRET_KEY"),
    ):
        value = os.environ.get(variable) or os.environ.get(name)
        if not value:
            raise pytest.UsageError(f"LORE_TEST_S3_ENDPOINT is set: set {variable} too")
        env[name] = value
    if os.environ.get("LORE_TEST_S3_SESSION_TOKEN"):
        env["AWS_SESSION_TOKEN"] = os.environ["LORE_TEST_S3_SESSION_TOKEN"]
    if EXTERNAL_CA_BUNDLE:
        # Clients built by Lore and by tests (boto3: AWS_CA_BUNDLE; urllib3 and ssl: SSL_CERT_FILE),
        # and the tests' subprocesses, trust the endpoint's certificate.
        env["AWS_CA_BUNDLE"] = EXTERNAL_CA_BUNDLE
        env["SSL_CERT_FILE"] = EXTERNAL_CA_BUNDLE
    return env


@pytest.fixture(autouse=True, scope="session")
def _fake_aws_credentials() -> Iterator[None]:
    # Never reach a real account by accident: fixed credentials and no shared config files
    # (with LORE_TEST_S3_ENDPOINT, the credentials given for that endpoint).
    saved = dict(os.environ)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            **_credentials_env(),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def s3_server(_fake_aws_credentials: None) -> Iterator[LocalS3Server | ExternalS3]:
    if EXTERNAL_ENDPOINT is not None:
        yield ExternalS3(EXTERNAL_ENDPOINT)
        return
    with LocalS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: LocalS3Server | ExternalS3) -> str:
    return s3_server.endpoint_url


@pytest.fixture()
def s3_client(s3_server: LocalS3Server | ExternalS3) -> Any:
    return s3_server.client()


@pytest.fixture(scope="session")
def kms_key_id() -> str:
    """A KMS key id the S3 server knows (moto accepts any; Ceph RGW's test KMS has ``alias/lore``)."""
    return KMS_KEY_ID


def _create_bucket(client: Any, name: str) -> None:
    region = client.meta.region_name
    if EXTERNAL_ENDPOINT is not None and region and region != "us-east-1":
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    else:
        client.create_bucket(Bucket=name)


def _remove_bucket(client: Any, name: str) -> None:
    """Empty and delete a test bucket on an external endpoint (one LIST and one DeleteObjects per 1,000 keys)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)
    except (ClientError, BotoCoreError) as exc:  # leftovers are the endpoint owner's to sweep
        import warnings

        warnings.warn(f"could not remove test bucket {name}: {exc}", stacklevel=1)


@pytest.fixture()
def bucket(s3_server: LocalS3Server | ExternalS3, s3_client: Any) -> Iterator[str]:
    """A fresh, empty bucket on the S3 server (emptied and removed afterwards on an external endpoint)."""
    name = f"lore-test-{uuid.uuid4().hex[:12]}"
    _create_bucket(s3_client, name)
    yield name
    if EXTERNAL_ENDPOINT is not None:
        _remove_bucket(s3_server.client(), name)  # a client of its own: the test's may carry fault hooks
