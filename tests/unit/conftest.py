"""Unit-test fixtures: ``api`` is the loopback fake of the HTTP API (``tests/fake_api.py``).

(Integration tests have their own ``api``: the real handlers under moto, from ``tests/conftest.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_api import FakeApi, serving


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A fake API on a free loopback port; ``api.cli(...)`` points a command line at it."""
    with serving() as fake:
        yield fake


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own settings must not leak into what the CLI sends or prints."""
    for name in ("TASKPLANE_URL", "TASKPLANE_API_KEY", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
