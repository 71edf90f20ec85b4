"""HTTP API behind API Gateway REST: composes the route modules, maps errors to the contract's shape."""

from __future__ import annotations

import json
import threading
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import dashboard, init_phase, wiring
from taskplane.api import dashboard as dashboard_routes
from taskplane.api import dead_letters, events, schedules, stats, tasks, triggers, uploads, workflows
from taskplane.api.common import (
    PUBLIC,
    SECURITY_SCHEMES,
    STATUS,
    Resolver,
    error_response,
    parse_json,
    validation_details,
)
from taskplane.domain import text as text_rules
from taskplane.domain.errors import TaskplaneError, Throttled
from taskplane.observability import logger, tracer
from taskplane.services.trigger_dead_letters import OPERATION_KEY, operate

#: Largest request body accepted (Lambda's synchronous payload limit is 6 MB).
MAX_BODY_BYTES = 6 * 1024 * 1024

app = Resolver(json_body_deserializer=parse_json)
# Every operation needs the API key unless it says otherwise (PUBLIC): a new route is secure by default.
app.configure_openapi(
    title="taskplane",
    version="1",
    security_schemes=SECURITY_SCHEMES,
    security=[{scheme: []} for scheme in SECURITY_SCHEMES],
)

#: The Swagger UI page. Its route is added on the first request for it: enabling it imports
#: Powertools' OpenAPI models (about 40 ms of this module's import otherwise), which no other route needs.
DOCS_PATH = "/v1/docs"
_docs = threading.Event()
_docs_lock = threading.Lock()


def _enable_docs() -> None:
    with _docs_lock:
        if not _docs.is_set():
            app.enable_swagger(path=DOCS_PATH, title="taskplane", version="1", persist_authorization=True)
            _docs.set()


# -- error shape ---------------------------------------------------------------------------------
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


# -- routes --------------------------------------------------------------------------------------
@app.get("/v1/health", summary="Liveness", tags=["meta"], security=PUBLIC)
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


app.include_router(tasks.router)
app.include_router(schedules.router)
app.include_router(triggers.router)
app.include_router(events.router)
app.include_router(uploads.router)
app.include_router(workflows.router)
app.include_router(dead_letters.router)
app.include_router(stats.router)
app.include_router(dashboard_routes.router)


# -- entry point ---------------------------------------------------------------------------------
#: Paths anyone may read; every other path needs an API key, checked before the body is validated.
#: The dashboard's page and files are public (a browser cannot send a key with them); its data calls
#: send the key like any client.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/openapi.json", DOCS_PATH}) | dashboard.public_paths()


def _content_type(event: dict[str, Any]) -> str:
    headers = event.get("headers") or {}
    value = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
    return str(value).strip().lower()


def _json_by_default(event: dict[str, Any]) -> dict[str, Any]:
    """Read a form-encoded body (what `curl -d` sends unless told otherwise) as the JSON it is:
    no route takes form data, and the README's own curl examples rely on this."""
    if not _content_type(event).startswith("application/x-www-form-urlencoded"):
        return event
    event = dict(event)
    for field in ("headers", "multiValueHeaders"):
        headers = {k: v for k, v in (event.get(field) or {}).items() if k.lower() != "content-type"}
        headers["Content-Type"] = ["application/json"] if field == "multiValueHeaders" else "application/json"
        event[field] = headers
    return event


def _invalid_text_outside_body(event: dict[str, Any]) -> str | None:
    """The first path, header or query parameter that is not valid Unicode, named for the error."""
    if text_rules.has_invalid_text([event.get("path") or "", event.get("pathParameters") or {}]):
        return "path"
    for kind, field in (
        ("header", "headers"),
        ("header", "multiValueHeaders"),
        ("query", "queryStringParameters"),
        ("query", "multiValueQueryStringParameters"),
    ):
        for name, value in (event.get(field) or {}).items():
            if text_rules.has_invalid_text([name, value]):
                return f"{kind}.{text_rules.shown(str(name))}"
    return None


def _early_answer(event: dict[str, Any]) -> dict[str, Any] | None:
    """401 without a key, 413 over the body limit, 400 for text that is not valid Unicode outside the
    body (the body's own is refused by path where it is parsed), before any parsing."""
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
    elif (where := _invalid_text_outside_body(event)) is not None:
        # What API Gateway hands over outside the body (headers, query, path) is text too.
        status, code = 400, "invalid_request"
        message = f"invalid {where}: not valid Unicode (a lone UTF-16 surrogate)"
        details = [{"field": where, "message": "not valid Unicode", "type": "invalid_unicode"}]
    elif _content_type(event).startswith("multipart/"):
        # Powertools would try to split a multipart body and raise on a missing boundary (a 5xx);
        # no route takes form data, so answer like any other body that is not JSON.
        status, code = 400, "invalid_request"
        message, details = (
            "request body must be JSON (or YAML for workflows), not multipart",
            [{"field": "body"}],
        )
    else:
        return None
    body = {"error": {"code": code, "message": message, "details": details}}
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway REST proxy event -> response (or an operator's direct invocation -> its answer)."""
    if OPERATION_KEY in event:
        return operate(wiring.platform().trigger_dead_letters, event)
    event = _json_by_default(event)
    wiring.platform().begin(context)
    if event.get("path") == DOCS_PATH and not _docs.is_set():
        _enable_docs()
    try:
        # A caller's traceparent header: the tasks and runs this request creates link to its span.
        with wiring.platform().tracing.request(event.get("headers")):
            return _in_contract_shape(_early_answer(event) or app.resolve(event, context))
    finally:
        wiring.platform().telemetry.flush()  # EMF, and OTLP when on (metrics and spans)


def _in_contract_shape(response: dict[str, Any]) -> dict[str, Any]:
    """Powertools answers a body of an unsupported Content-Type (text/plain, XML) itself with a 415
    in its own shape; give it the contract's 400 and error shape like any body that is not JSON."""
    if response.get("statusCode") != 415:
        return response
    body = {
        "error": {
            "code": "invalid_request",
            "message": "unsupported Content-Type: send application/json (or YAML for workflows)",
            "details": [{"field": "Content-Type"}],
        }
    }
    return {"statusCode": 400, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


# Lambda's init phase (at a full vCPU on demand) builds the tracer and the platform; nothing else
# does at import (taskplane/init_phase.py says why this is the one exception to "never at import").
init_phase.warm_up()
