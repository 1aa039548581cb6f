from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from lore_core import LoreTracker


@pytest.fixture(params=["s3", "file", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per store kind; the contract tests run against each."""
    if request.param == "s3":
        bucket = request.getfixturevalue("bucket")
        return f"s3://{bucket}/.lore-s3"
    if request.param == "file":
        return (tmp_path / "bucket").as_uri()
    return f"memory://mem-{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def tracker(store_url: str, request: pytest.FixtureRequest) -> LoreTracker:
    if store_url.startswith("s3://"):
        endpoint = request.getfixturevalue("s3_endpoint")
        return LoreTracker.from_url(store_url, endpoint_url=endpoint, region="us-east-1")
    return LoreTracker.from_url(store_url)


@pytest.fixture()
def s3_tracker(bucket: str, s3_client: Any) -> LoreTracker:
    return LoreTracker(bucket=bucket, prefix=".lore-s3", s3_client=s3_client)
