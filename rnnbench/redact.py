"""Masking secrets for anything shown, logged or stored: URL passwords and secret-named keys.

Used by the studies (storage URLs) and by tracking (W&B configs); imports nothing of
rnnbench, so every layer may use it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

MASK = "***"

# SQLAlchemy's URL grammar: ``scheme://user:password@host``, where the password runs to the
# last ``@`` before the host (it may hold ``:`` and ``/``, not ``@``).
_USERINFO = re.compile(r"(?P<head>[\w+.-]+://[^:/@\s]*):(?P<password>[^@\s]*)@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<password>[^&\s]*)",
                           re.IGNORECASE)


def mask_password(url: str) -> str:
    """``url`` (or any text holding URLs) with passwords replaced by ``***``: the userinfo
    password and ``password=`` query parameters."""
    url = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", url)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK, url)


def _secrets(url: str) -> tuple[str, ...]:
    found = [m["password"] for m in _USERINFO.finditer(url)]
    found += [m["password"] for m in _QUERY_SECRET.finditer(url)]
    found += [unquote(x) for x in found]
    return tuple(sorted({x for x in found if x and x != MASK}, key=len, reverse=True))


def redact(text: str, url: str | None = None) -> str:
    """``text`` with URL passwords masked, and every occurrence of ``url``'s password too (a
    driver's error message may quote it outside any URL). Passwords under 4 characters are
    masked inside URLs only: replacing every such string would garble the text."""
    text = mask_password(str(text))
    for secret in _secrets(url or ""):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


_SECRET_KEY = re.compile(r"(^|[_.-])(pass(word|wd)?|pwd|secret|token|api_?key|credentials?)"
                         r"($|[_.-])", re.IGNORECASE)


def mask_secrets(obj: Any) -> Any:
    """A copy of a config-like object (mappings, lists, strings) for showing or recording:
    string values under secret-sounding keys (``password``, ``token``, ``api_key``...)
    become ``***`` and URL passwords in strings are masked."""
    if isinstance(obj, dict):
        return {k: MASK if isinstance(k, str) and _SECRET_KEY.search(k) and isinstance(v, str)
                and v else mask_secrets(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(mask_secrets(v) for v in obj)
    return mask_password(obj) if isinstance(obj, str) else obj


