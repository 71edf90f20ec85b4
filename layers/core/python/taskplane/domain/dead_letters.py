"""Dead letters: a task that ended FAILED, as its tenant sees it, and the redrive bookkeeping."""

from __future__ import annotations

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
