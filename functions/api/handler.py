"""HTTP API: tasks (submit, batch, get, list, cancel), health and OpenAPI, behind API Gateway REST."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field, ValidationError

from taskplane import wiring
from taskplane.domain.errors import InvalidRequest, TaskplaneError, Throttled, Unauthorized
from taskplane.domain.models import TARGET_TYPES, TaskSubmit
from taskplane.domain.states import TaskState
from taskplane.observability import logger, tracer
from taskplane.services.tasks import MAX_BATCH

#: Largest request body accepted (Lambda's synchronous payload limit is 6 MB).
MAX_BODY_BYTES = 6 * 1024 * 1024

STATUS = {
    "invalid_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "throttled": 429,
    "unavailable": 503,
}


# -- request body --------------------------------------------------------------------------------
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


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json)
app.enable_swagger(path="/v1/docs", title="taskplane", version="1", openapi_version="3.1.0")


class BatchSubmit(BaseModel):
    """Up to 500 task bodies; each is validated on its own and answered in order."""

    tasks: list[Any] = Field(
        min_length=1, max_length=MAX_BATCH, description="task bodies as for POST /v1/tasks"
    )


# -- error shape ---------------------------------------------------------------------------------
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


@app.exception_handler(TaskplaneError)
def _domain_error(exc: TaskplaneError) -> Response:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Throttled) else None
    if STATUS.get(exc.code, 500) >= 500:
        logger.warning("dependency failure", extra={"code": exc.code, "error": exc.message})
    return error_response(STATUS.get(exc.code, 500), exc.code, exc.message, exc.details, headers)


@app.exception_handler(RequestValidationError)
def _validation_error(exc: RequestValidationError) -> Response:
    message, details = validation_details(list(exc.errors()))
    return error_response(400, "invalid_request", message, details)


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(exc: UnicodeDecodeError) -> Response:
    # A body the gateway had to base64-encode because it is not UTF-8 text (so not JSON either).
    return error_response(400, "invalid_request", "request body is not UTF-8 text", [{"field": "body"}])


@app.exception_handler(NotFoundError)
def _no_route(exc: NotFoundError) -> Response:
    return error_response(
        404, "not_found", f"no route {app.current_event.http_method} {app.current_event.path}"
    )


# -- helpers -------------------------------------------------------------------------------------
def tenant() -> str:
    """The tenant is the id of the API key API Gateway checked (the local gateway does the same)."""
    identity = app.current_event.request_context.identity
    key_id = identity.api_key_id if identity else None
    if not key_id:
        raise Unauthorized("missing or unknown API key: send it in the x-api-key header")
    return key_id


def parse_task(raw: Any) -> TaskSubmit:
    try:
        return TaskSubmit.model_validate(raw)
    except ValidationError as exc:
        message, details = validation_details(exc.errors())
        raise InvalidRequest(message, details) from exc


def created(body: Any, status: int = 201) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


# -- routes --------------------------------------------------------------------------------------
@app.get("/v1/health", summary="Liveness", tags=["meta"])
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/openapi.json", summary="This API as OpenAPI 3", tags=["meta"], include_in_schema=False)
def openapi() -> Response[dict[str, Any]]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        # get_openapi_json_schema returns a string; the response model wants the object.
        body=json.loads(app.get_openapi_json_schema(title="taskplane", version="1")),
    )


@app.post("/v1/tasks", summary="Submit a task", tags=["tasks"], responses={201: {"description": "created"}})
def submit(task: Annotated[TaskSubmit, Body()]) -> Response[dict[str, Any]]:
    key = next((v for k, v in app.current_event.headers.items() if k.lower() == "idempotency-key"), None)
    if key is not None and not 1 <= len(key) <= 128:
        raise InvalidRequest("Idempotency-Key must be 1 to 128 characters", [{"field": "Idempotency-Key"}])
    result, fresh = wiring.platform().tasks.submit(tenant(), task, idempotency_key=key)
    return created(result.to_api(), 201 if fresh else 200)


@app.post("/v1/tasks/batch", summary="Submit up to 500 tasks", tags=["tasks"])
def submit_batch(batch: Annotated[BatchSubmit, Body()]) -> dict[str, Any]:
    who = tenant()
    items: list[Any] = []
    for raw in batch.tasks:
        try:
            items.append(parse_task(raw))
        except TaskplaneError as exc:
            items.append(exc)
    outcomes = wiring.platform().tasks.submit_batch(who, items)
    results: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, TaskplaneError):
            error = {"code": outcome.code, "message": outcome.message, "details": outcome.details}
            results.append({"index": index, "error": error})
        else:
            results.append({"index": index, "task_id": outcome.task_id, "state": outcome.state.value})
    return {"results": results}


@app.get("/v1/tasks/<task_id>", summary="Get a task", tags=["tasks"])
def get_task(task_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().tasks.get(tenant(), task_id).to_api()


@app.get("/v1/tasks", summary="List tasks, newest first", tags=["tasks"])
def list_tasks(
    state: Annotated[TaskState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    items, next_cursor = wiring.platform().tasks.list(tenant(), state=state, limit=limit, cursor=cursor)
    return {"items": [t.to_api() for t in items], "next_cursor": next_cursor}


@app.post("/v1/tasks/<task_id>/cancel", summary="Cancel a task that has not started", tags=["tasks"])
def cancel_task(task_id: Annotated[str, Path(max_length=64)]) -> dict[str, Any]:
    return wiring.platform().tasks.cancel(tenant(), task_id).to_api()


# -- entry point ---------------------------------------------------------------------------------
#: Paths anyone may read; every other path needs an API key, checked before the body is validated.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/openapi.json", "/v1/docs"})


def _early_answer(event: dict[str, Any]) -> dict[str, Any] | None:
    """401 without a key and 413 over the body limit, before any parsing."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    if event.get("path") not in PUBLIC_PATHS and not identity.get("apiKeyId"):
        status, code, message, details = (
            401,
            "unauthorized",
            "missing or unknown API key: send it in the x-api-key header",
            [],
        )
    elif len(event.get("body") or "") > MAX_BODY_BYTES:
        status, code = 413, "payload_too_large"
        message, details = (
            f"request body is over the {MAX_BODY_BYTES}-byte limit",
            [{"limit": MAX_BODY_BYTES}],
        )
    else:
        return None
    body = {"error": {"code": code, "message": message, "details": details}}
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway REST proxy event -> response."""
    try:
        return _early_answer(event) or app.resolve(event, context)
    finally:
        wiring.platform().telemetry.flush()
