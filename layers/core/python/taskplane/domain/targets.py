"""Targets: what a task, a workflow node, a compensation or a fallback calls (the API's shapes)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from taskplane.domain.events import PLATFORM_BUS, not_aws

#: Largest total of an HTTP target's header names and values (what most servers accept in a request).
MAX_HEADER_BYTES = 16 * 1024

_Name = Annotated[StrictStr, Field(min_length=1, max_length=256)]

#: A header name is an RFC 9110 token; a value holds no CR, LF or NUL (which would end the header
#: early: urllib refuses to send such a value, so the task could only fail every attempt).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BREAKS = re.compile(r"[\r\n\x00]")


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LambdaTarget(_Target):
    type: Literal["lambda"]
    function: Annotated[StrictStr, Field(min_length=1, max_length=170, pattern=r"^[A-Za-z0-9_:\-\.\$]+$")]


class HttpTarget(_Target):
    type: Literal["http"]
    url: Annotated[StrictStr, Field(min_length=1, max_length=2048)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[
        Annotated[StrictStr, Field(max_length=256)], Annotated[StrictStr, Field(max_length=4096)]
    ] = Field(default_factory=dict, max_length=50)

    @field_validator("headers")
    @classmethod
    def _headers_fit(cls, value: dict[str, str]) -> dict[str, str]:
        size = sum(
            len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
            for k, v in value.items()
        )
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"headers are {size} bytes in all; the limit is {MAX_HEADER_BYTES} bytes")
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(
                    f"header name {name!r} is not a token (letters, digits and !#$%&'*+-.^_`|~ only)"
                )
            if _HEADER_VALUE_BREAKS.search(text):
                raise ValueError(f"header {name!r} has a CR, LF or NUL in its value")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        try:
            port = parsed.port
        except ValueError:
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("has a port that is not a number from 1 to 65535")
        return _no_user_info(value)


def _no_user_info(url: str) -> str:
    """Refuse ``scheme://user:password@host``: a URL is shown in errors, logs and the task itself."""
    netloc = urlparse(url).netloc
    if "@" in netloc:
        raise ValueError(
            "must not carry user info (user:password@): send credentials in a header instead, e.g. "
            '"headers": {"Authorization": "Basic <base64 of user:password>"}'
        )
    return url


class SqsTarget(_Target):
    type: Literal["sqs"]
    queue_url: Annotated[StrictStr, Field(min_length=1, max_length=2048, pattern=r"^https?://\S+$")]

    @field_validator("queue_url")
    @classmethod
    def _plain_queue_url(cls, value: str) -> str:
        return _no_user_info(value)


class EventBridgeTarget(_Target):
    """Puts the task's envelope as an event's ``detail``, stamped with the tenant (``domain/events.py``).

    ``bus`` ``"taskplane"`` (the default) is the platform's own bus, where this tenant's triggers
    listen; any other bus must be on the tenant's allow-list (``eventbridge:<bus>``).
    """

    type: Literal["eventbridge"]
    bus: _Name = PLATFORM_BUS
    source: _Name = "taskplane"
    detail_type: _Name = "taskplane.task"

    _source = field_validator("source")(not_aws)


class BuiltinTarget(_Target):
    type: Literal["builtin"]
    name: Literal["echo", "sleep", "fail"]


Target = Annotated[
    LambdaTarget | HttpTarget | SqsTarget | EventBridgeTarget | BuiltinTarget,
    Field(discriminator="type"),
]
TARGET_TYPES: tuple[str, ...] = ("lambda", "http", "sqs", "eventbridge", "builtin")
