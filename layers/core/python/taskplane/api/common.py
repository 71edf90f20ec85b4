"""Pieces every HTTP route module shares: the error shape, body parsing, the tenant of a request."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIResponseValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from pydantic import BaseModel, ValidationError

from taskplane.domain import text as text_rules
from taskplane.domain.errors import InvalidRequest, Unauthorized
from taskplane.domain.models import TARGET_TYPES

M = TypeVar("M", bound=BaseModel)

STATUS = {
    "invalid_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "conflict": 409,
    "limit_exceeded": 409,
    "payload_too_large": 413,
    "throttled": 429,
    "unavailable": 503,
}


#: The API key, as the served OpenAPI states it: one security scheme, required by every operation
#: but the public ones (API Gateway checks it and hands the handler the key's id; see tenant_of).
API_KEY_SCHEME = "apiKey"
SECURITY_SCHEMES: dict[str, Any] = {
    API_KEY_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "Your tenant's API key (taskplane dev prints one). Every operation needs it but "
        "GET /v1/health, /v1/openapi.json, /v1/docs and the dashboard's files.",
    }
}
#: The security requirement of a public operation: anonymous access (an empty requirement object).
PUBLIC: list[dict[str, list[str]]] = [{}]

#: The request headers operations declare (Powertools reads and validates them; the spec lists them).
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        description="The same key with the same body answers what the first request made (kept 24 h); "
        "with another body, 409.",
    ),
]
EnvHeader = Annotated[
    str | None,
    Header(
        alias="x-env",
        min_length=1,
        max_length=256,
        description="Shorthand for the label env=<value> (gray-release rules match on it); a label env in "
        "the body wins.",
    ),
]
#: Header names as clients write them (Powertools reports a header by its lower-cased name).
HEADER_NAMES = {"idempotency-key": "Idempotency-Key", "x-env": "x-env", "x-api-key": "x-api-key"}


class _ValidTextResponses(OpenAPIResponseValidationMiddleware):
    """Powertools' response validation, given valid Unicode only.

    pydantic cannot serialize a lone UTF-16 surrogate (UnicodeEncodeError: a 5xx), and data that
    reached the platform from outside (an event, a target's answer, a record stored before input was
    checked) may hold one: every route's answer is made valid text here, the one place all of them
    pass, with U+FFFD in place of each surrogate.
    """

    def _handle_response(self, *, route: Any, response: Response) -> Response:
        response.body = text_rules.valid_text(response.body)
        return super()._handle_response(route=route, response=response)


class Resolver(APIGatewayRestResolver):
    """The REST resolver with request and response validation, answering valid Unicode only."""

    def __init__(self, **options: Any) -> None:
        super().__init__(enable_validation=True, **options)
        # The attribute Powertools reads when it builds each route's middleware stack (the response
        # test in tests/integration/test_text_edges.py fails if a Powertools release renames it).
        self._response_validation_middleware = _ValidTextResponses(
            validation_serializer=options.get("serializer"),
            has_response_validation_error=self._has_response_validation_error,
        )


def parse_json(text: str) -> dict[str, Any]:
    """Every JSON request body is read here: anything but a JSON object is a 400 (json_invalid), and a
    duplicate key or text that is not valid Unicode a 400 naming its path (``domain/text.py``).

    Powertools would otherwise take the first element of a list body as the body, dropping the rest.
    """
    try:
        value = text_rules.loads(text)
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
    # An error may quote what it was given (an id, a path): answer valid text whatever that was.
    body = text_rules.valid_text({"error": {"code": code, "message": message, "details": details or []}})
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
        if len(loc) == 2 and loc[0] == "header":
            loc[1] = HEADER_NAMES.get(loc[1].lower(), loc[1])
        # Drop "body" and the discriminator's tag from paths like target.builtin.name.
        parts = [
            p
            for i, p in enumerate(loc)
            if p != "body" and not (i and loc[i - 1] in ("target", "fallback") and p in TARGET_TYPES)
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
    """A request header, whatever its case (for Content-Type; declared headers are route parameters)."""
    lowered = name.lower()
    return next((v for k, v in (event.headers or {}).items() if k.lower() == lowered), None)


def parse_model(model: type[M], raw: Any) -> M:
    """Validate ``raw`` as ``model``; errors become a 400 naming the fields."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message, details = validation_details(exc.errors())
        raise InvalidRequest(message, details) from exc


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers
    )
