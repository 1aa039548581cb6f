"""Where things live in the bucket, and which keys are acceptable.

Layout under the history prefix (default ``.lore-s3``)::

    <prefix>/<fileKey>.json                                  one history per tracked file
    <prefix>/~lore/failed/<fileKey>/<entryId>/<step>          failure index, one small object per failed entry
    <prefix>/~lore/failed/<fileKey>/<entryId>/<step>@<lease>  marker of a long-running entry (heartbeat)
    <prefix>/~lore/archive/<fileKey>/<first>-<last>-<n>.json  immutable segments of old entries
    <prefix>/~lore/claims/<fileKey>/<claim>                   replay and skip claims (create-only, leased)
    <prefix>/~lore/probe/<uuid>                               the conditional-write self-check (deleted at once)

Every derived name is checked against S3's 1,024-byte key limit when the file key
or step that it is made from is validated, so no write fails later for a name
that is too long.

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
    "claim_key",
    "failure_index_key",
    "failure_index_prefix",
    "history_key",
    "parse_failure_index_key",
    "validate_file_key",
    "validate_prefix",
    "validate_step",
]

DEFAULT_PREFIX = ".lore-s3"
RESERVED_SEGMENT = "~lore"
HISTORY_SUFFIX = ".json"
MAX_S3_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The longest fixed part a derived name adds after the file key: an archive segment
# ("/<26>-<26>-<count>.json") or a claim ("/replay-<26>"), with room to spare.
_DERIVED_TAIL_BYTES = 80
MAX_STEP_BYTES = 200  # quoted; also keeps a file-store path segment under 255 bytes
_MAX_LEASE_DIGITS = 10
ENTRY_ID_BYTES = 26


def _check_utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(
            f"{what} {value.encode('utf-8', 'backslashreplace').decode()!r} contains a lone surrogate "
            "(not valid UTF-8), which S3 cannot store"
        ) from None


def _check_segments(value: str, what: str) -> None:
    _check_utf8(value, what)
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
    longest = len(f"{reserved_root(prefix)}archive/{file_key}".encode()) + _DERIVED_TAIL_BYTES
    if longest > MAX_S3_KEY_BYTES:
        room = MAX_S3_KEY_BYTES - longest + len(file_key.encode())
        raise InvalidKeyError(
            f"file key {file_key[:80]!r}... is too long: Lore's archive and claim names for it would exceed "
            f"S3's {MAX_S3_KEY_BYTES} bytes (keep keys under {room} bytes)"
        )
    return file_key


def validate_step(prefix: str, file_key: str, step: str) -> str:
    """Return ``step`` if it can name an entry of ``file_key``, or raise InvalidKeyError.

    Checked before anything is written: the failure-index and running-marker names
    made from the file key and the step must fit S3's key limit.
    """
    if not isinstance(step, str) or not step:
        raise InvalidKeyError(f"step name for {file_key!r} must be a non-empty string, got {step!r}")
    _check_utf8(step, "step name")
    if _CONTROL.search(step):
        raise InvalidKeyError(f"step name {step!r} contains a control character")
    quoted = len(quote(step, safe="").encode())
    if quoted > MAX_STEP_BYTES:
        raise InvalidKeyError(
            f"step name {step[:60]!r}... is too long: {quoted} bytes once URL-quoted (the limit is {MAX_STEP_BYTES})"
        )
    marker = running_marker_key(prefix, file_key, "0" * ENTRY_ID_BYTES, step, 10**_MAX_LEASE_DIGITS - 1)
    claim = claim_key(prefix, file_key, "step", step)
    for name in (marker, claim):
        if len(name.encode()) > MAX_S3_KEY_BYTES:
            raise InvalidKeyError(
                f"file key {file_key[:60]!r}... with step {step[:60]!r} is too long: Lore's index name for it "
                f"would be {len(name.encode())} bytes, over S3's {MAX_S3_KEY_BYTES}"
            )
    return step


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


def claim_key(prefix: str, file_key: str, kind: str, name: str) -> str:
    """The claim on ``kind`` work (``replay`` of an entry id, ``step`` for a skip-if-succeeded run)."""
    return f"{reserved_root(prefix)}claims/{file_key}/{kind}-{quote(name, safe='')}"


def probe_key(prefix: str, token: str) -> str:
    return f"{reserved_root(prefix)}probe/{token}"


def archive_key(prefix: str, file_key: str, first_id: str, last_id: str, count: int) -> str:
    return f"{reserved_root(prefix)}archive/{file_key}/{first_id}-{last_id}-{count}.json"
