"""Fixtures shared by every test: a real S3 endpoint over HTTP (moto's server on
127.0.0.1, one lock per request so conditional writes are atomic) and fresh buckets."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lore_core.testing import LocalS3Server


@pytest.fixture(autouse=True, scope="session")
def _fake_aws_credentials() -> Iterator[None]:
    # Never reach a real account: fake credentials and no shared config files.
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def s3_server(_fake_aws_credentials: None) -> Iterator[LocalS3Server]:
    with LocalS3Server() as server:
        yield server


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: LocalS3Server) -> str:
    return s3_server.endpoint_url


@pytest.fixture()
def s3_client(s3_server: LocalS3Server) -> Any:
    return s3_server.client()


@pytest.fixture()
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket on the local S3 server."""
    name = f"lore-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name
