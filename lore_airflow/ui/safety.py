"""What a browser may do with a Lore page: follow only http(s) or relative links, run only Lore's own script.

Everything on the page comes from history documents that any pipeline able to
write to the bucket can plant, so:

- ``safe_href`` turns a stored value into a link only when it is an ``http(s)``
  URL or a relative one; ``javascript:``, ``data:``, ``vbscript:`` and every other
  scheme (however it is cased, padded or split by tabs and newlines, which browsers
  ignore) is shown as text instead;
- every response carries ``SECURITY_HEADERS``: a Content-Security-Policy that allows
  no inline script, no ``eval``, nothing from another origin and framing only by
  Airflow's own pages, plus ``nosniff`` and a same-origin referrer policy;
- Lore sets no cookies (the login is Airflow's ``_token`` cookie, HttpOnly).

Jinja2 autoescaping (see ``app.py``) covers text; this module covers URLs and headers.

Example::

    from lore_airflow.ui.safety import safe_href

    assert safe_href("https://airflow.example/dags/a/runs/r") == "https://airflow.example/dags/a/runs/r"
    assert safe_href("javascript:alert(1)") is None
"""

from __future__ import annotations

import re

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "safe_href"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_SAFE_SCHEMES = frozenset({"http", "https"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# Browsers drop ASCII tab and newline anywhere in a URL ("java\tscript:" is javascript:)
# and trim C0 controls and spaces at both ends; a URL with any control character is refused.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_href(value: object) -> str | None:
    """``value`` if a browser would treat it as an ``http(s)`` or relative URL, else None."""
    if not isinstance(value, str):
        return None
    url = value.strip(" ")
    if not url or _CONTROL.search(url):
        return None
    scheme = _SCHEME.match(url)
    if scheme is not None:
        return url if scheme.group(1).lower() in _SAFE_SCHEMES else None
    # No scheme: a path, query or fragment relative to the page (or '//host/...', which is http(s)).
    return url
