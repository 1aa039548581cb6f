"""Keeping secrets out of histories.

Values under keys that look secret (``password``, ``token``, ``api_key``, …) are
replaced before anything is written, wherever they sit in inputs, outputs and
metadata; ``key=value`` / ``key: value`` pairs, bearer tokens and passwords in URLs
are masked inside strings such as error messages and stack traces.

Example::

    from lore_core.redaction import Redactor

    r = Redactor()
    r.redact({"user": "ann", "db_password": "hunter2"})   # {'user': 'ann', 'db_password': '***'}
    r.redact_text("login failed: password=hunter2")        # 'login failed: password=***'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Redactor"]

REDACTED = "***"

#: Substrings of key names (case-insensitive, ignoring '-' and '_') whose values are redacted.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "accesskey",
    "sessionkey",
    "cookie",
    "signature",
)


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


class Redactor:
    """Masks secret-looking values; ``keys`` replaces the defaults, ``extra_keys`` adds to them."""

    def __init__(self, keys: Iterable[str] | None = None, extra_keys: Iterable[str] = ()) -> None:
        self.keys = tuple(_norm(k) for k in (*(DEFAULT_SECRET_KEYS if keys is None else keys), *extra_keys))
        if self.keys:
            # "apikey" also matches api_key, API-Key, ...: allow a separator between any two letters.
            names = "|".join("[-_]?".join(re.escape(c) for c in k) for k in sorted(set(self.keys), key=len)[::-1])
            # A key name containing one of the words, then = or :, then the value (quoted or bare).
            # Bounded repeats anchored at a token start keep this linear on long strings.
            self._pairs: re.Pattern[str] | None = re.compile(
                rf"""(?ix)
                (?<![\w.-])(?P<key>["']?[\w.-]{{0,64}}?(?:{names})[\w.-]{{0,64}}["']?)
                (?P<sep>\s*[:=]\s*)
                (?P<value>"[^"]*"|'[^']*'|[^\s,;&"'}}\])]+)
                """
            )
        else:
            self._pairs = None
        self._bearer = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
        self._url_password = re.compile(
            r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://[^/\s:@]{1,256}):[^@\s/]{1,256}@"
        )

    def is_secret_key(self, name: str) -> bool:
        normalised = _norm(name)
        return any(k in normalised for k in self.keys)

    def redact(self, value: Any) -> Any:
        """A copy of a JSON value with secret-looking parts masked."""
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and self.is_secret_key(k) and v is not None else self.redact(v))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            return self.redact_text(value)
        return value

    def redact_text(self, text: str) -> str:
        text = self._bearer.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        if self._pairs is not None:
            text = self._pairs.sub(lambda m: m.group("key") + m.group("sep") + _mask(m.group("value")), text)
        return self._url_password.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)


def _mask(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[0] + REDACTED + value[0]
    return REDACTED
