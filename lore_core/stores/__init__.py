"""Stores, chosen by URL: ``s3://bucket/prefix``, ``file:///path``, ``memory://name``."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from ..errors import InvalidStoreURLError
from ..keys import DEFAULT_PREFIX
from .base import ConditionFailed, ListedObject, RequestStats, Store, StoredObject, verify_conditional_writes
from .file import FileStore
from .memory import MemoryStore
from .s3 import S3Store, make_s3_client

__all__ = [
    "ConditionFailed",
    "FileStore",
    "ListedObject",
    "MemoryStore",
    "RequestStats",
    "S3Store",
    "Store",
    "StoredObject",
    "make_s3_client",
    "open_store",
    "verify_conditional_writes",
]


def open_store(url: str, **s3_options: Any) -> tuple[Store, str]:
    """Build the store a URL names; return it with the history prefix.

    ``s3://bucket`` and ``s3://bucket/prefix`` (prefix defaults to ``.lore-s3``);
    ``file:///dir`` (the directory plays the bucket; ``?prefix=`` and ``?bucket=``
    override the defaults); ``memory://name``.
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidStoreURLError(
            f"store URL {url!r} must look like s3://bucket/prefix, file:///path or memory://name"
        )
    parsed = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InvalidStoreURLError(f"store URL {url!r} names no bucket")
        prefix = parsed.path.strip("/") or query.get("prefix", DEFAULT_PREFIX)
        options = {k: v for k, v in s3_options.items() if v is not None}
        client = options.pop("s3_client", None)
        return S3Store(parsed.netloc, client, **options), prefix
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidStoreURLError(f"store URL {url!r}: use file:///absolute/path (three slashes)")
        path = unquote(parsed.path)
        if not path:
            raise InvalidStoreURLError(f"store URL {url!r} names no directory")
        return FileStore(path, bucket=query.get("bucket")), query.get("prefix", DEFAULT_PREFIX)
    if parsed.scheme == "memory":
        name = parsed.netloc or "memory"
        return MemoryStore(name), parsed.path.strip("/") or query.get("prefix", DEFAULT_PREFIX)
    raise InvalidStoreURLError(f"store URL {url!r}: unknown scheme {parsed.scheme!r} (use s3, file or memory)")
