"""Keeping secrets out of histories.

Promises: before anything is written,

- values under keys that look secret are replaced, wherever they sit in inputs,
  outputs and metadata (``password``, ``token``, ``api_key``, ``passphrase``,
  ``connection_string``, ``keyfile_dict``, ``webhook_url``, … — at least every name
  in Airflow's ``DEFAULT_SENSITIVE_FIELDS``; words of four letters or fewer, such as
  ``pass``, ``auth``, ``dsn`` and ``sig``, count only as a whole word of the key, so
  ``db_pass`` and ``dbPass`` are secret and ``passenger`` and ``author`` are not);
- inside strings (error messages, stack traces, free text) these are masked:
  ``key=value`` / ``key: value`` pairs under such keys (bare values up to a space, so
  ``password=abc,def`` loses all of ``abc,def``; quoted values up to the closing quote,
  escaped quotes included, also inside escaped JSON), ``Authorization:`` headers
  whatever their scheme, credentials after ``Bearer``/``Basic``/``Token``/… schemes,
  command-line flags (``--password hunter2``, ``--password=x``, ``-p x``, also as
  the ``'--password', 'x'`` of a ``CalledProcessError``'s argument list), URL
  passwords (``scheme://user:***@host``), PEM private-key blocks, JWTs and SAS
  ``sig=`` signatures;
- extra maskers (``maskers``, e.g. an orchestrator's own secrets masker, which knows
  the actual values of connection passwords) run first, on every value and string.

It does not promise to find a secret that is neither under a secret-looking name nor
in one of those shapes (a password in free prose); the patterns stay linear in the
length of the text. Over-masking is preferred to a leak.

Example::

    from lore_core.redaction import Redactor

    r = Redactor()
    r.redact({"user": "ann", "db_pass": "hunter2"})   # {'user': 'ann', 'db_pass': '***'}
    r.redact_text("login failed: password=abc,def")   # 'login failed: password=***'
    r.redact_text("mysql --password hunter2 -h db")    # 'mysql --password *** -h db'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Masker", "Redactor"]

REDACTED = "***"

#: A masker takes a JSON value (or a string) and returns it with what it knows to be secret masked.
Masker = Callable[[Any], Any]

#: Words that make a key secret (case-insensitive, ignoring '-', '_' and '.'): longer words
#: anywhere in the key, words of four letters or fewer only as a whole word of it.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    # Airflow's DEFAULT_SENSITIVE_FIELDS (airflow.sdk._shared.secrets_masker), all covered:
    "access_key",
    "access_token",
    "api_key",
    "apikey",
    "auth_header",
    "authorization",
    "bearer",
    "connection_string",
    "dsn",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "proxy",
    "proxies",
    "secret",
    "service_account",
    "service_key",
    "token",
    "keyfile_dict",
    "webhook",
    # and Lore's own:
    "pass",
    "pwd",
    "auth",
    "sig",
    "signature",
    "credential",
    "session_key",
    "cookie",
    "jwt",
)

_SHORT = 4  # words this long or shorter match only as a whole word
_BOUNDED = 64  # longest run of key characters before/after the secret word
_QUOTED_MAX = 4096  # longest quoted value masked as one

# Words of a key: "dbPass" -> db, pass; "DBPassword" -> db, password; "api_key2" -> api, key, 2.
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Authorization schemes whose next word is a credential, wherever they appear.
_SCHEMES = (
    "bearer|basic|token|digest|negotiate|ntlm|hawk|oauth|bot|apikey|api-key|jwt|"
    "sharedkey|sharedaccesssignature|aws4-hmac-sha256|mac|sso-key"
)
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----")
_PEM_END = "-----END "


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(".", "")


def _spelled(word: str) -> str:
    # "apikey" also matches api_key, API-Key, ...: a separator is allowed between any two letters.
    return "[-_.]?".join(re.escape(c) for c in word)


class Redactor:
    """Masks secret-looking values; ``keys`` replaces the default words, ``extra_keys`` adds to them.

    ``maskers`` run first on every value and string (for example Airflow's secrets
    masker, which masks the values of connections and sensitive variables wherever
    they appear); ``builtin=False`` leaves only them.
    """

    def __init__(
        self,
        keys: Iterable[str] | None = None,
        extra_keys: Iterable[str] = (),
        *,
        maskers: Iterable[Masker] = (),
        builtin: bool = True,
    ) -> None:
        words = {_norm(k) for k in (*(DEFAULT_SECRET_KEYS if keys is None else keys), *extra_keys)}
        words.discard("")
        self.keys = tuple(sorted(words, key=len, reverse=True))
        self.maskers = tuple(maskers)
        self.builtin = builtin
        self._long = tuple(w for w in self.keys if len(w) > _SHORT)
        self._short = frozenset(w for w in self.keys if len(w) <= _SHORT)
        name = self._name_pattern()
        # A key name, optionally quoted (also with escaped quotes: \"password\"), then = or :, then the value.
        self._pairs: re.Pattern[str] | None = None
        self._flags: re.Pattern[str] | None = None
        if name is not None:
            self._pairs = re.compile(
                rf"""(?x)
                (?<![\w.-])
                (?P<key>(?:\\{{0,16}}["'])?{name}(?:\\{{0,16}}["'])?)
                (?P<sep>[ \t]*[:=][ \t]*)
                {_VALUE}
                """
            )
            # Command-line flags: --password x, --db-pass=x, '--password', 'x' (an argv list), and -p x.
            self._flags = re.compile(
                rf"""(?x)
                (?<![\w-])
                (?P<key>--?{name}|-p)
                (?P<sep>=|[ \t]+(?!-)|["'][ \t]*,[ \t]*(?=["'](?!-)))
                {_VALUE}
                """
            )
        self._header = re.compile(
            r"""(?ix)
            (?<![\w-])
            (?P<key>(?:proxy-)?authori[sz]ation|www-authenticate|x-[\w-]{0,40}?(?:auth|token|key|secret)[\w-]{0,40})
            (?P<sep>[ \t]*:[ \t]*)
            (?P<value>(?!["'\\])[^\r\n"'\\]{1,4096})
            """
        )
        self._scheme = re.compile(
            rf"""(?ix)
            (?<![\w-])(?P<scheme>{_SCHEMES})[ \t]+
            (?P<value>(?=[^\s"']{{0,512}}[\d._~+/=%:-])[A-Za-z0-9._~+/=%:-]{{6,}})
            """
        )
        self._url_password = re.compile(
            r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://[^/\s:@]{1,256}):[^@\s/]{1,256}@"
        )
        self._jwt = re.compile(r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]{5,}")

    def _name_pattern(self) -> str | None:
        """A regex fragment matching a key name that contains one of the words."""
        parts = []
        if self._long:
            names = "|".join(_spelled(w) for w in self._long)
            parts.append(rf"[\w.-]{{0,{_BOUNDED}}}?(?i:{names})[\w.-]{{0,{_BOUNDED}}}")
        if self._short:
            names = "|".join(_spelled(w) for w in sorted(self._short, key=len, reverse=True))
            # A whole word: at the start or after a separator or a lower->Upper step, and
            # followed by the end, a separator or an Upper letter (db_pass, dbPass, PASS_FILE).
            before = rf"(?:[\w.-]{{0,{_BOUNDED}}}?(?:[_.-]|(?<=[a-z])(?=[A-Z])))?"
            after = rf"(?:(?:[_.-]|(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z]))[\w.-]{{0,{_BOUNDED}}})?"
            parts.append(rf"{before}(?i:{names})(?![a-z]|(?<=[A-Z])[A-Z]){after}")
        if not parts:
            return None
        return "(?:" + "|".join(parts) + ")"

    def is_secret_key(self, name: str) -> bool:
        if not self.builtin:
            return False
        normalised = _norm(name)
        if any(w in normalised for w in self._long):
            return True
        return any(w.lower() in self._short for w in _WORDS.findall(name))

    def redact(self, value: Any) -> Any:
        """A copy of a JSON value with secret-looking parts masked."""
        for masker in self.maskers:
            value = masker(value)
        return self._redact(value) if self.builtin else value

    def _redact(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            named = _named_secret(value, self)
            for k, v in value.items():
                if isinstance(k, str) and v is not None and (self.is_secret_key(k) or (named and k == "value")):
                    out[self._text(k)] = REDACTED
                else:
                    out[self._text(k) if isinstance(k, str) else k] = self._redact(v)
            return out
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, str):
            return self._text(value)
        return value

    def redact_text(self, text: str) -> str:
        """``text`` with secret-looking parts masked (for messages, stack traces, descriptions)."""
        for masker in self.maskers:
            masked = masker(text)
            text = masked if isinstance(masked, str) else str(masked)
        return self._text(text) if self.builtin else text

    def _text(self, text: str) -> str:
        if not text:
            return text
        text = _mask_pem(text)
        text = self._url_password.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)
        text = self._jwt.sub(REDACTED, text)
        text = self._header.sub(lambda m: m.group("key") + m.group("sep") + REDACTED, text)
        text = self._scheme.sub(lambda m: f"{m.group('scheme')} {REDACTED}", text)
        for pattern in (self._flags, self._pairs):
            if pattern is not None:
                text = pattern.sub(_masked_pair, text)
        return text


# The value after a key: quoted (to the matching, unescaped closing quote at the same
# escape level: "a\"b", \"a\\\"b\"), an unclosed quote (to the end of the line), or bare
# (up to white space, a quote or a separator; commas, semicolons or brackets that are
# followed by more value characters are part of the value: password=abc,def).
_VALUE = rf"""
    (?P<value>
        (?P<bs>\\{{0,16}})(?P<q>["']).{{0,{_QUOTED_MAX}}}?(?<!\\)(?P=bs)(?P=q)
      | \\{{0,16}}["'][^\r\n]{{0,{_QUOTED_MAX}}}
      | (?:[^\s"'`,;&)\]}}]|[,;)\]}}]{{1,16}}(?=[^\s"'`,;&)\]}}]))+
    )
    """


def _masked_pair(m: re.Match[str]) -> str:
    value = m.group("value")
    if value == REDACTED:
        return m.group(0)
    quote = m.group("q")
    if quote is not None:
        bs = m.group("bs") or ""
        masked = f"{bs}{quote}{REDACTED}{bs}{quote}"
    else:
        masked = REDACTED
    return m.group("key") + m.group("sep") + masked


def _named_secret(value: dict[Any, Any], redactor: Redactor) -> bool:
    """``{"name": "DB_PASSWORD", "value": ...}`` (environment variables, parameters): the value is secret."""
    if "value" not in value:
        return False
    name = value.get("name", value.get("key"))
    return isinstance(name, str) and redactor.is_secret_key(name)


def _mask_pem(text: str) -> str:
    """Every PEM private-key block masked, to its END line (or to the end of a truncated text); linear."""
    if "-----BEGIN " not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("-----BEGIN ", pos)
        if start < 0:
            break
        m = _PEM_BEGIN.match(text, start)
        if m is None:
            out.append(text[pos : start + 11])
            pos = start + 11
            continue
        label = m.group(1)
        end = text.find(f"{_PEM_END}{label}-----", m.end())
        out.append(text[pos : m.end()])
        out.append(REDACTED)
        if end < 0:
            return "".join(out)
        pos = end
    out.append(text[pos:])
    return "".join(out)
