"""Secrets callers hand the platform stay where they were put.

A caller may give credentials in a target's headers (``Authorization``, ``x-api-key``), in a URL's
query (``?token=...``) or in payload fields named like a secret (``password``, ``client_secret``,
``api_key``). The platform carries them to the target and nowhere else: text it *builds* (a task's
error, a history entry, a dead letter's reason, a run's node error, a log line) never quotes them.
Two tools, both pure:

- :func:`secret_values` collects the secret strings of one attempt (its target and its envelope),
  and :func:`scrub` blanks each of them out of a message, whatever the library that wrote the message
  (urllib, botocore, a Lambda function's own error text) chose to quote;
- :func:`mask_text` blanks what *looks* like a secret in any text (``authorization: Bearer x``,
  ``password=x``, ``https://user:x@host``), for log lines whose secrets are not known in advance.

User info in a target URL (``https://user:password@host``) is refused when the target is made (see
``domain/models.py``): credentials belong in a header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

REDACTED = "***"

#: Key and header names whose values are secrets, matched anywhere in the name, in any case.
SECRET_NAME = re.compile(
    r"(?i)(pass(word|wd|phrase)?\b|passw|secret|token|auth(?!ors?\b)|cookie|credential|session|"
    r"signature|api[-_]?key|apikey|(access|private|signing|secret|client)[-_]?key)"
)
#: Secrets shorter than this are not blanked out of free text (they would blank ordinary words).
MIN_SECRET_LEN = 4

_PAIR = re.compile(
    r"(?i)\b([\w-]*(?:pass(?:word|wd|phrase)?|secret|token|auth(?!ors?\b)\w*|api[-_]?key|apikey|cookie|"
    r"credential|session|signature)[\w-]*)"
    r"(\"?\s*[:=]\s*)(\"?)((?:Bearer|Basic|Token|Digest)\s+)?([^\s\",;&}]+)"
)
_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate"})
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def is_secret_name(name: object) -> bool:
    """Whether a key or header called ``name`` holds a secret (``Authorization``, ``db_password``)."""
    return isinstance(name, str) and SECRET_NAME.search(name) is not None


def url_secrets(text: str) -> list[str]:
    """The user names and passwords of the URLs in ``text``, and their query values under
    secret-like names (``?token=...``)."""
    found: list[str] = []
    for url in _URL.findall(text):
        try:
            parts = urlsplit(url)
            found += [p for p in (parts.username, parts.password) if p]
            found += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
        except ValueError:
            continue
    return found


def secret_values(*sources: Any) -> list[str]:
    """Every secret string in ``sources`` (targets, envelopes, payloads), longest first.

    A value is secret when its key is secret-like (at any depth, in any container under such a key),
    or when it is a URL's user info or secret-named query value. An ``Authorization`` value's
    credentials count on their own too (``Bearer abc`` gives ``Bearer abc`` and ``abc``).

    >>> secret_values({"headers": {"Authorization": "Bearer s3cret-token"}, "payload": {"user": "ada"}})
    ['Bearer s3cret-token', 's3cret-token']
    """
    found: set[str] = set()
    stack: list[tuple[Any, bool]] = [(s, False) for s in sources]
    while stack:
        value, secret = stack.pop()
        if isinstance(value, str):
            if secret:
                found.add(value)
                found.update(p for p in value.split() if p != value and p.lower() not in _SCHEMES)
            if "://" in value:
                found.update(url_secrets(value))
        elif isinstance(value, dict):
            stack.extend((v, secret or is_secret_name(k)) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, secret) for v in value)
        elif secret and isinstance(value, int | float) and not isinstance(value, bool):
            found.add(str(value))
    return sorted((s for s in found if len(s) >= MIN_SECRET_LEN), key=lambda s: (-len(s), s))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (and anything :func:`mask_text` recognises) blanked out.

    >>> scrub("GET https://h/ failed: bad token s3cret-token", ["s3cret-token"])
    'GET https://h/ failed: bad token ***'
    """
    for secret in secrets:  # longest first (secret_values' order), so no secret leaves a tail
        if secret in text:
            text = text.replace(secret, REDACTED)
    return mask_text(text)


def mask_text(text: str) -> str:
    """Blank what looks like a secret in free text: ``authorization: Bearer x``, ``password=x``,
    ``"api_key": "x"``, and the user info of URLs (``https://user:x@host`` -> ``https://***@host``).

    >>> mask_text('login failed for https://ada:hunter2@db.example/ with password=hunter2')
    'login failed for https://***@db.example/ with password=***'
    """
    if "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4) or ''}{REDACTED}", text)
