"""Domain exceptions; one place (the API handler) maps their types to HTTP answers."""

from __future__ import annotations

from typing import Any


class TaskplaneError(Exception):
    code = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class InvalidRequest(TaskplaneError):
    code = "invalid_request"


class Unauthorized(TaskplaneError):
    code = "unauthorized"


class NotFound(TaskplaneError):
    code = "not_found"


class Conflict(TaskplaneError):
    code = "conflict"


class LimitExceeded(TaskplaneError):
    """The tenant (or the platform) holds as many of something as it may; nothing was created. Not
    worth retrying as is: delete some, or have the operator raise the limit the message names."""

    code = "limit_exceeded"


class PayloadTooLarge(TaskplaneError):
    code = "payload_too_large"


class Throttled(TaskplaneError):
    """The platform is over capacity; the caller should come back after ``retry_after_s``."""

    code = "throttled"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(TaskplaneError):
    """A dependency failed; nothing was accepted, the caller may retry."""

    code = "unavailable"


# -- workflow nodes: raised to Step Functions, whose Retry and Catch match the class name ----------
# (domain.workflow's RETRYABLE_ERROR and FATAL_ERROR). They live here, not in services.workflows,
# so the step handler can catch them without importing the workflow service at import time.


class NodeAttemptFailed(Exception):
    """One attempt of a node (or a compensation) failed; Step Functions may retry it."""


class NodeFailed(Exception):
    """A node (or a compensation) failed for good."""


class EventRefused(ValueError):
    """A trigger's event that no try can ever turn into its task: too large for any item with no bucket
    to keep it in (domain/windows.py ``MAX_ITEM_EVENT_BYTES``), or nested deeper than a task's payload
    may be. The worker dead-letters its lane message, with this reason, instead of failing every try."""
