"""Masking passwords wherever a URL or a driver message could carry one."""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/:@\s\"']*:)(?P<pw>[^@\s\"']*)@")
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'[^']*'|\"[^\"]*\"|\S+)", re.I)
MASK = "***"


def mask_url(url: str | URL) -> str:
    """The URL as a string with its password replaced by ***."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return mask_text(url)


def mask_text(text: str, *passwords: str | None) -> str:
    """Text with every URL password, `password=` value and each given password masked."""
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    for password in passwords:
        if password:
            text = text.replace(password, MASK)
    return text
