"""Turning step inputs, outputs and metadata into JSON without ever failing a step.

Values JSON can hold are kept as they are. A few common types get their obvious
JSON form (dates as ISO strings, tuples and sets as lists, paths as strings).
Anything else is stored as a clearly marked string, ``"<not JSON-serialisable:
TYPE: repr>"``, so the step still runs and the history still says what it was.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

__all__ = ["TRUNCATED_MARK", "UNSERIALISABLE_MARK", "clean_text", "limit_size", "limit_text", "to_jsonable"]

log = logging.getLogger("lore")

UNSERIALISABLE_MARK = "<not JSON-serialisable: "
_MAX_DEPTH = 64
_MAX_REPR = 500


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8: lone surrogates (from undecodable bytes) become ``\\udcxx`` escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _mark(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the step either
        text = f"<repr failed: {type(exc).__name__}>"
    if len(text) > _MAX_REPR:
        text = text[:_MAX_REPR] + "..."
    kind = type(value)
    return clean_text(f"{UNSERIALISABLE_MARK}{kind.__module__}.{kind.__qualname__}: {text}>")


def to_jsonable(value: Any, what: str = "value") -> Any:
    """A JSON-ready copy of ``value``; unserialisable parts become marked strings (and a warning is logged)."""
    marked: list[str] = []
    result = _convert(value, 0, set(), marked)
    if marked:
        log.warning("lore: %s is not fully JSON-serialisable; stored %d part(s) as marked strings", what, len(marked))
    return result


def _convert(value: Any, depth: int, seen: set[int], marked: list[str]) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        marked.append(repr(value))
        return _mark(value)
    if isinstance(value, Enum):
        return _convert(value.value, depth, seen, marked)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (UUID, PurePath)):
        return str(value)
    if depth >= _MAX_DEPTH:
        marked.append("depth")
        return _mark(value)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in seen:
            marked.append("cycle")
            return f"{UNSERIALISABLE_MARK}cycle>"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                return {
                    (clean_text(k) if isinstance(k, str) else str(_convert(k, depth + 1, seen, marked))): _convert(
                        v, depth + 1, seen, marked
                    )
                    for k, v in value.items()
                }
            items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
            return [_convert(v, depth + 1, seen, marked) for v in items]
        finally:
            seen.discard(id(value))
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic models
        try:
            return _convert(value.model_dump(mode="json"), depth + 1, seen, marked)
        except Exception:
            pass
    marked.append(type(value).__name__)
    return _mark(value)


TRUNCATED_MARK = "loreTruncated"
_PREVIEW_CHARS = 1024


def limit_size(value: Any, max_bytes: int) -> Any:
    """``value`` if its JSON is at most ``max_bytes``; else a marked stand-in with its size and a preview.

    The stand-in is ``{"loreTruncated": true, "originalBytes": N, "preview": "<first 1 KiB of the JSON>"}``.
    """
    if value is None or max_bytes <= 0:
        return value
    encoded = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    size = len(encoded.encode("utf-8"))
    if size <= max_bytes:
        return value
    return {TRUNCATED_MARK: True, "originalBytes": size, "preview": encoded[: min(_PREVIEW_CHARS, max_bytes)]}


def limit_text(text: str | None, max_bytes: int) -> str | None:
    """``text`` cut to ``max_bytes`` (UTF-8) with a marker saying how long it was."""
    if text is None:
        return text
    text = clean_text(text)
    if max_bytes <= 0:
        return text
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    kept = raw[:max_bytes].decode("utf-8", errors="ignore")
    return f"{kept}... [truncated by lore: {len(raw)} bytes originally]"
