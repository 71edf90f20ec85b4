"""Pieces every HTTP route module shares: the error shape, body parsing, the tenant of a request."""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, ValidationError

from taskplane.domain.errors import InvalidRequest, Unauthorized
from taskplane.domain.models import TARGET_TYPES

M = TypeVar("M", bound=BaseModel)

STATUS = {
    "invalid_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "throttled": 429,
    "unavailable": 503,
}


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON value", "", 0)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise json.JSONDecodeError(f"number {text[:20]} is out of range", "", 0)
    return value


def parse_json(text: str) -> dict[str, Any]:
    """``json.loads`` for request bodies: anything but a JSON object is a 400 (json_invalid), never a crash.

    Powertools would otherwise take the first element of a list body as the body, dropping the rest.
    """
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(f"not valid JSON: {exc.msg}", exc.doc, exc.pos) from None
    except (RecursionError, ValueError) as exc:
        # RecursionError: nested too deeply; ValueError: an integer over Python's 4300-digit limit.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "a number has too many digits"
        raise json.JSONDecodeError(f"not valid JSON: {reason}", "", 0) from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
        raise json.JSONDecodeError(
            f"the body must be a JSON object, not {'null' if value is None else kind}", "", 0
        )
    return value


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )


def validation_details(errors: list[Any], skip: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """Pydantic / Powertools errors -> (a one-line message naming the fields, details)."""
    details = []
    for err in errors:
        if err.get("type") == "json_invalid":
            # Its loc is ("body", character offset): the field at fault is the whole body.
            reason = (err.get("ctx") or {}).get("error", "not valid JSON")
            details.append({"field": "body", "message": reason, "type": "json_invalid"})
            continue
        loc = [str(p) for p in err.get("loc", ())][skip:]
        # Drop "body" and the discriminator's tag from paths like target.builtin.name.
        parts = [
            p
            for i, p in enumerate(loc)
            if p != "body" and not (i and loc[i - 1] == "target" and p in TARGET_TYPES)
        ]
        field = ".".join(parts) or "body"
        details.append({"field": field, "message": err.get("msg", "invalid"), "type": err.get("type")})
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    first = details[0]["message"] if details else "invalid request"
    return f"invalid {fields}: {first}", details


def tenant_of(event: BaseProxyEvent) -> str:
    """The tenant is the id of the API key API Gateway checked (the local gateway does the same)."""
    identity = (event.raw_event.get("requestContext") or {}).get("identity") or {}
    key_id = identity.get("apiKeyId")
    if not key_id:
        raise Unauthorized("missing or unknown API key: send it in the x-api-key header")
    return key_id


def header(event: BaseProxyEvent, name: str) -> str | None:
    """A request header, whatever its case."""
    lowered = name.lower()
    return next((v for k, v in (event.headers or {}).items() if k.lower() == lowered), None)


def parse_model(model: type[M], raw: Any) -> M:
    """Validate ``raw`` as ``model``; errors become a 400 naming the fields."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message, details = validation_details(exc.errors())
        raise InvalidRequest(message, details) from exc


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)
