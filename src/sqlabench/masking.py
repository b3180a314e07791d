"""Masking passwords wherever a URL or a driver message could carry one.

A secret can sit in a URL's password part (`scheme://user:secret@host`), in a query parameter
(`?password=secret`, libpq's `sslpassword`, MySQL drivers' `passwd`), or in a libpq
`key=value` string (`host=h password=secret`). All three are masked everywhere text leaves
the suite: results, summaries, reports, errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlalchemy.engine import URL, make_url

MASK = "***"
SECRET_KEYS = ("password", "passwd", "pwd", "sslpassword")
"""Query-parameter and libpq keyword names whose value is a secret."""

_KEYS = "|".join(SECRET_KEYS)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/:@\s\"']*:)(?P<pw>[^@\s\"']*)@")
# in a URL's query the value ends at the next parameter
_QUERY_SECRET = re.compile(rf"(?P<head>[?&](?:{_KEYS})=)(?P<pw>[^&#\s\"']*)", re.I)
# elsewhere: `password=x`, `PGPASSWORD=x`, `password: x`, `'password': 'x'` (a dict's repr);
# a quoted value ends at its closing quote, a bare one at white space
_KEYWORD_SECRET = re.compile(
    # not inside a URL's query (`?password=` is _QUERY_SECRET's), and never across a line
    rf"(?P<head>(?<![?&\w])\w*(?:{_KEYS})['\"]?[ \t]*[=:][ \t]*)"
    r"(?P<pw>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\"]+)",
    re.I,
)


def url_secrets(url: URL) -> Iterator[str]:
    """Every secret a URL holds: its password and the values of secret query parameters."""
    if isinstance(url.password, str) and url.password:
        yield url.password
    for key, value in url.query.items():
        if key.lower() in SECRET_KEYS:
            values = (value,) if isinstance(value, str) else tuple(value)
            yield from (v for v in values if v)


def mask_url(url: str | URL) -> str:
    """The URL as a string with its password and secret query parameters replaced by ***."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except Exception:
            return mask_text(url)
    # only the password part and secret query values are replaced: replacing the password's
    # text wherever it occurs would also eat a user or database name that contains it
    return _QUERY_SECRET.sub(_masked, parsed.render_as_string(hide_password=True))


def _masked(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def mask_text(text: str, *passwords: str | None) -> str:
    """Text with every URL password, secret parameter or keyword, and each given password masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _QUERY_SECRET.sub(_masked, text)
    text = _KEYWORD_SECRET.sub(_masked, text)
    for password in sorted({p for p in passwords if p}, key=len, reverse=True):
        text = text.replace(password, MASK)
    return text
