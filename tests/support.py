"""Helpers the test modules import (a plain module: ``conftest`` names clash between test folders).

Fixtures stay in ``tests/conftest.py``; what a test module imports by name lives here.
"""

from __future__ import annotations

import copy
import json
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from ``events/`` (a fresh copy each time)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant: str | None = "acme",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """A REST proxy event from ``events/apigw_rest_proxy.json`` for this request."""
    event = copy.deepcopy(load_event("apigw_rest_proxy"))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["requestContext"]["path"] = "/prod" + path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["body"] = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    event["requestContext"]["identity"]["apiKeyId"] = tenant
    if tenant is None:
        event["requestContext"]["identity"]["apiKey"] = None
    return event


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Inline:
    """The tick's sender pool, sending in the tick's own thread (no simulated time passes meanwhile)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future
