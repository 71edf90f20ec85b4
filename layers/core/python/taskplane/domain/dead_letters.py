"""Dead letters: a task that ended FAILED, as its tenant sees it, and the redrive bookkeeping."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel

from taskplane.domain.clock import to_rfc3339

#: ``dead``: waiting for a redrive; ``redriving``: a redrive chose ``redriven_as`` and may not have
#: finished (a second redrive completes it with the same id); ``redriven``: the new task is queued.
DeadLetterStatus = Literal["dead", "redriving", "redriven"]


class DeadLetter(BaseModel):
    """One failed task kept for its tenant (the id is the failed task's id)."""

    tenant: str
    task_id: str
    reason: str
    at: int
    attempts: int = 0
    target_type: str = "unknown"
    error: dict[str, str] | None = None
    #: the retry policy's fallback's outcome, when one was called: {"state", "result" | "error"}
    fallback: dict[str, Any] | None = None
    status: DeadLetterStatus = "dead"
    redriven_as: str | None = None
    redriven_at: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "reason": self.reason,
            "dead_at": to_rfc3339(self.at),
            "attempts": self.attempts,
            "target_type": self.target_type,
            "error": self.error,
            **({"fallback": self.fallback} if self.fallback is not None else {}),
            "status": self.status,
            "redriven_as": self.redriven_as,
            "redriven_at": to_rfc3339(self.redriven_at),
        }


class RedriveMoves(ABC):
    """The redrive's three moves of a record, the same for every store; a store supplies ``_move``:
    set ``new`` (and ``redriven_at``) only if the record is ``old`` — and, once claimed, still claimed
    for ``new_task_id`` — answering whether it moved (``redriven_as`` is set by the claim)."""

    def claim(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool:
        """Mark a ``dead`` record ``redriving`` as ``new_task_id``; False when it is not ``dead``."""
        return self._move(tenant, task_id, "dead", "redriving", new_task_id, now_ms)

    def finish(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool:
        """Mark a ``redriving`` record ``redriven``."""
        return self._move(tenant, task_id, "redriving", "redriven", new_task_id, now_ms)

    def release(self, tenant: str, task_id: str, new_task_id: str, now_ms: int) -> bool:
        """Give a claim back (the new task could not be queued): ``redriving`` -> ``dead``."""
        return self._move(tenant, task_id, "redriving", "dead", new_task_id, now_ms)

    @abstractmethod
    def _move(
        self,
        tenant: str,
        task_id: str,
        old: DeadLetterStatus,
        new: DeadLetterStatus,
        new_task_id: str,
        now_ms: int,
    ) -> bool: ...
