"""Where things live in the bucket, and which keys are acceptable.

Layout under the history prefix (default ``.lore-s3``)::

    <prefix>/<fileKey>.json                                  one history per tracked file
    <prefix>/~lore/failed/<fileKey>/<entryId>/<step>          failure index, one small object per failed entry
    <prefix>/~lore/failed/<fileKey>/<entryId>/<step>@<lease>  marker of a long-running entry (heartbeat)
    <prefix>/~lore/archive/<fileKey>/<first>-<last>-<n>.json  immutable segments of old entries

``~lore`` is reserved: a file key may not start with it, so no history can land
in the index. ``~`` is on AWS's list of characters to avoid in keys, so real
data practically never collides with it, and it sorts after every letter and
digit, so listings meet the index last.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from .errors import InvalidKeyError

__all__ = [
    "DEFAULT_PREFIX",
    "RESERVED_SEGMENT",
    "failure_index_key",
    "failure_index_prefix",
    "history_key",
    "parse_failure_index_key",
    "validate_file_key",
    "validate_prefix",
]

DEFAULT_PREFIX = ".lore-s3"
RESERVED_SEGMENT = "~lore"
HISTORY_SUFFIX = ".json"
MAX_S3_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_segments(value: str, what: str) -> None:
    if _CONTROL.search(value):
        raise InvalidKeyError(f"{what} {value!r} contains a control character")
    for segment in value.split("/"):
        if segment == "":
            raise InvalidKeyError(f"{what} {value!r} has an empty path segment ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidKeyError(f"{what} {value!r} contains a {segment!r} segment, which could escape the prefix")


def validate_prefix(prefix: str) -> str:
    """Return the normalised history prefix (no trailing '/'), or raise InvalidKeyError."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"history prefix must be a string, got {type(prefix).__name__}")
    if prefix.startswith("/"):
        raise InvalidKeyError(f"history prefix {prefix!r} must not start with '/'")
    normalised = prefix.rstrip("/")
    if not normalised:
        # Histories at the bucket root would collide with data files named *.json.
        raise InvalidKeyError("history prefix must not be empty (the default is '.lore-s3')")
    _check_segments(normalised, "history prefix")
    return normalised


def validate_file_key(file_key: str, prefix: str) -> str:
    """Return ``file_key`` if Lore can keep a history for it, or raise InvalidKeyError."""
    if not isinstance(file_key, str):
        raise InvalidKeyError(f"file key must be a string, got {type(file_key).__name__}")
    if not file_key:
        raise InvalidKeyError("file key must not be empty")
    if file_key.startswith("/"):
        raise InvalidKeyError(f"file key {file_key!r} must not start with '/' (S3 keys are relative to the bucket)")
    _check_segments(file_key, "file key")
    first = file_key.split("/", 1)[0]
    if first == RESERVED_SEGMENT:
        raise InvalidKeyError(
            f"file key {file_key!r} starts with {RESERVED_SEGMENT!r}, which Lore reserves for its index"
        )
    if file_key == prefix or file_key.startswith(prefix + "/"):
        raise InvalidKeyError(
            f"file key {file_key!r} lies inside the history prefix {prefix!r}; histories are not tracked"
        )
    if len(history_key(prefix, file_key).encode("utf-8")) > MAX_S3_KEY_BYTES:
        raise InvalidKeyError(
            f"file key {file_key[:80]!r}... is too long: its history key would exceed S3's {MAX_S3_KEY_BYTES} bytes"
        )
    return file_key


def history_key(prefix: str, file_key: str) -> str:
    return f"{prefix}/{file_key}{HISTORY_SUFFIX}"


def file_key_from_history_key(prefix: str, object_key: str) -> str | None:
    """The file key a history object belongs to, or None if the object is not a history."""
    head = prefix + "/"
    if not object_key.startswith(head) or not object_key.endswith(HISTORY_SUFFIX):
        return None
    rest = object_key[len(head) : -len(HISTORY_SUFFIX)]
    if not rest or rest.split("/", 1)[0] == RESERVED_SEGMENT:
        return None
    return rest


def reserved_root(prefix: str) -> str:
    return f"{prefix}/{RESERVED_SEGMENT}/"


def failure_index_prefix(prefix: str, file_prefix: str = "") -> str:
    return f"{reserved_root(prefix)}failed/{file_prefix}"


def failure_index_key(prefix: str, file_key: str, entry_id: str, step: str) -> str:
    # The step is quoted so that steps with '/' (Dagster asset keys) stay one segment.
    return f"{failure_index_prefix(prefix)}{file_key}/{entry_id}/{quote(step, safe='')}"


def running_marker_key(prefix: str, file_key: str, entry_id: str, step: str, lease_seconds: float) -> str:
    """A marker beside the failure index for a long-running entry; its LastModified is the last heartbeat.

    Quoted steps never contain '@', so the suffix cannot be confused with a step name.
    """
    return f"{failure_index_key(prefix, file_key, entry_id, step)}@{max(1, round(lease_seconds))}"


def entry_index_prefix(prefix: str, file_key: str, entry_id: str) -> str:
    return f"{failure_index_prefix(prefix)}{file_key}/{entry_id}/"


def parse_failure_index_key(prefix: str, object_key: str) -> tuple[str, str, str, int | None] | None:
    """(file_key, entry_id, step, lease seconds or None) of an index object, or None for anything else.

    The lease is set for running markers and None for failures.
    """
    head = failure_index_prefix(prefix)
    if not object_key.startswith(head):
        return None
    parts = object_key[len(head) :].rsplit("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    file_key, entry_id, step = parts
    lease: int | None = None
    if "@" in step:
        step, _, lease_text = step.partition("@")
        if not lease_text.isdigit():
            return None
        lease = int(lease_text)
    return file_key, entry_id, unquote(step), lease


def archive_key(prefix: str, file_key: str, first_id: str, last_id: str, count: int) -> str:
    return f"{reserved_root(prefix)}archive/{file_key}/{first_id}-{last_id}-{count}.json"
