"""Local Lambda functions for `taskplane dev --functions examples/functions.py`.

Each top-level function taking (event, context) becomes a Lambda function of that name. A task with
`{"type": "lambda", "function": "greet"}` receives `{"task_id", "attempt", "payload"}` as its event.
"""

from __future__ import annotations

from typing import Any


def greet(event: dict[str, Any], context: Any) -> dict[str, str]:
    """Return a greeting for payload.name."""
    name = (event.get("payload") or {}).get("name", "world")
    return {"greeting": f"hello {name}"}


def flaky(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Fail on the first attempt, succeed on the next: shows retries with a real Lambda target."""
    if event.get("attempt", 1) < 2:
        raise RuntimeError("first attempt fails on purpose")
    return {"attempt": event["attempt"]}
