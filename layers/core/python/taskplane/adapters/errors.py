"""Translate botocore errors into domain exceptions (never branch on message text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.domain.errors import Throttled, Unavailable

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "Throttling",
        "RequestThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate(exc: Exception, what: str) -> Exception:
    """A domain exception for a failed AWS call (throttling -> Throttled, the rest -> Unavailable)."""
    if isinstance(exc, ClientError) and error_code(exc) in THROTTLING_CODES:
        return Throttled(f"{what}: AWS is throttling, try again shortly", retry_after_s=1)
    if isinstance(exc, ClientError | BotoCoreError):
        return Unavailable(f"{what} failed: {type(exc).__name__}")
    return exc


def unless_refused(what: str, call: Callable[..., Any], **kwargs: Any) -> Any | None:
    """Make a conditional write ``call(**kwargs)``: its response, or None when its condition refused it
    (``ConditionalCheckFailedException``); every other failure is translated (:func:`translate`)."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise translate(exc, what) from exc
    except BotoCoreError as exc:
        raise translate(exc, what) from exc
