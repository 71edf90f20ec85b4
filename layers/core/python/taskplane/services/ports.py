"""The seams a use case depends on (a real adapter and a test fake exist for each)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Telemetry(Protocol):
    def count(self, name: str, *, tenant: str, target_type: str, lane: str, value: float = 1) -> None: ...

    def duration_ms(self, ms: float, *, tenant: str, target_type: str, lane: str) -> None: ...


class NullTelemetry:
    def count(self, name: str, *, tenant: str, target_type: str, lane: str, value: float = 1) -> None:
        return None

    def duration_ms(self, ms: float, *, tenant: str, target_type: str, lane: str) -> None:
        return None


class Idempotency(Protocol):
    def register(self, context: Any) -> None:
        """The Lambda invocation now running (its remaining time bounds a key left in progress)."""
        ...

    def once(
        self, tenant: str, key: str, fingerprint: Any, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Run ``action`` once per (tenant, key); returns (its result, replayed?).

        The same key with another fingerprint raises :class:`~taskplane.domain.errors.Conflict`.
        """
        ...
