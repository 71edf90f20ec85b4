"""schemathesis over the served OpenAPI: no input, however malformed, gets a 5xx.

Bounded (a few examples per operation) so that it fits in ``make test``; the figures it reaches are
printed at the end of the session (``-s``) for the hardening report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from conftest import api_event  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from taskplane.local.handlers import load_handler  # noqa: E402

pytestmark = pytest.mark.integration

_app = load_handler("api").app
schema = schemathesis.openapi.from_dict(
    json.loads(_app.get_openapi_json_schema(title="taskplane", version="1"))
)

#: Answers seen, by status class (read by the report; a 5xx fails the case at once).
SEEN: dict[str, int] = {}


@pytest.fixture
def handler(aws: Any) -> Any:
    return load_handler("api").lambda_handler


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)
def test_no_input_gets_a_5xx(case: Any, handler: Any) -> None:
    # Given any request the schema allows (and many it does not, through its bodies and parameters)
    from taskplane.local.context import LocalContext

    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    headers.setdefault("Content-Type", "application/json")
    body = None if type(case.body).__name__ == "NotSet" else case.body
    raw = None
    if body is not None and not isinstance(body, dict | list):
        raw = (
            body
            if isinstance(body, str)
            else json.dumps(body)
            if not isinstance(body, bytes)
            else body.decode("utf-8", "replace")
        )
    event = api_event(
        case.method.upper(),
        case.formatted_path,
        body if raw is None else None,
        raw_body=raw,
        headers=headers,
        query={k: str(v) for k, v in (case.query or {}).items()} or None,
    )
    # When the API handler answers it
    response = handler(event, LocalContext(function_name="taskplane-api"))
    # Then it is never a 5xx, and every error has the contract's shape
    status = response["statusCode"]
    SEEN[f"{status // 100}xx"] = SEEN.get(f"{status // 100}xx", 0) + 1
    assert status < 500, (case.method, case.formatted_path, response.get("body"))
    if status >= 400 and response.get("body"):
        error = json.loads(response["body"]).get("error")
        assert error and {"code", "message", "details"} <= set(error)


def teardown_module() -> None:
    print("\nschemathesis figures (answers by class):", dict(SEEN))
