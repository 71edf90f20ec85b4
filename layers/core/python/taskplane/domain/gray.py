"""Gray release for tasks: a tenant's routing rules send some tasks to a Lambda alias or a URL
variant. A rule matches tasks carrying all of its labels (``env=canary``, which the ``x-env`` header
sets) and takes ``percent`` of them, chosen by a stable hash of the task id (the same task always
takes the same route). The first matching rule wins; the chosen route is recorded on the task.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import urlparse, urlunparse

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    #: labels a task must carry (all of them); empty: every task
    labels: dict[str, str] = Field(default_factory=dict)
    #: share of the matching tasks that take this route
    percent: int = Field(default=100, ge=0, le=100)
    #: Lambda targets: call this alias (qualifier) instead
    lambda_alias: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_\-\$]{1,128}$")] | None = None
    #: HTTP targets: call this host (and port) instead, same scheme, path and query
    http_host: Annotated[StrictStr, Field(min_length=1, max_length=255)] | None = None


def bucket(task_id: str) -> int:
    """A stable 0..99 for a task id."""
    return int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:4], "big") % 100


def with_alias(function: str, alias: str) -> str:
    """``function`` (a name, name:qualifier or ARN) qualified with ``alias`` instead."""
    if function.startswith("arn:"):
        parts = function.split(":")
        return ":".join([*parts[:7], alias])
    return f"{function.split(':', 1)[0]}:{alias}"


def with_host(url: str, host: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(netloc=host))


def choose_route(
    rules: list[RouteRule], task_id: str, labels: dict[str, str], target: dict[str, Any]
) -> dict[str, Any] | None:
    """The route a task takes: ``{"rule", "variant", "target"}``, or None for the stable target.

    Examples
    --------
    >>> rule = RouteRule(name="canary", labels={"env": "canary"}, lambda_alias="canary")
    >>> choose_route([rule], "t1", {"env": "canary"}, {"type": "lambda", "function": "orders"})["target"]
    {'type': 'lambda', 'function': 'orders:canary'}
    """
    for rule in rules:
        if any(labels.get(k) != v for k, v in rule.labels.items()):
            continue
        if bucket(task_id) >= rule.percent:
            continue
        kind = target.get("type")
        if kind == "lambda" and rule.lambda_alias:
            routed = {**target, "function": with_alias(str(target.get("function", "")), rule.lambda_alias)}
            return {"rule": rule.name, "variant": f"alias:{rule.lambda_alias}", "target": routed}
        if kind == "http" and rule.http_host:
            routed = {**target, "url": with_host(str(target.get("url", "")), rule.http_host)}
            return {"rule": rule.name, "variant": f"host:{rule.http_host}", "target": routed}
    return None
