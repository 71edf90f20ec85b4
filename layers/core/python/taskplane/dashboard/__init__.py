"""The web dashboard: static files (plain ES modules and CSS, no build step) shipped as package data.

The api function serves them: ``/`` is ``index.html`` and every other file is ``/ui/<name>``. They are
public (a browser cannot send a header when it loads a page); the data calls they make carry the
tenant's API key, which the page keeps in ``sessionStorage``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

#: Content type per file extension; only text files are shipped (no binary media types needed).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

#: Strict: everything from this origin, no inline script or style, no third party at all.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

INDEX = "index.html"
ASSET_PREFIX = "/ui/"


def _type_of(name: str) -> str | None:
    return next((t for ext, t in CONTENT_TYPES.items() if name.endswith(ext)), None)


@cache
def files() -> dict[str, str]:
    """Every shipped file by name (read once per process)."""
    root = resources.files(__package__).joinpath("static")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.is_file() and _type_of(entry.name)
    }


def asset(name: str) -> tuple[str, str] | None:
    """(content type, text) of a shipped file, or None when there is no such file."""
    text = files().get(name)
    kind = _type_of(name)
    return (kind, text) if text is not None and kind else None


def public_paths() -> frozenset[str]:
    """The HTTP paths the dashboard is served on (``/`` and one per asset)."""
    return frozenset({"/"} | {ASSET_PREFIX + name for name in files() if name != INDEX})
