"""The served OpenAPI states the API's boundary exactly: the API-key scheme on every operation but the
public ones, and the headers operations read, declared as parameters; and what it states is enforced."""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.integration

#: The only operation of the spec anyone may call without a key.
PUBLIC_OPERATIONS = {("get", "/v1/health")}


@pytest.fixture
def spec(api: Any) -> dict[str, Any]:
    reply = api("GET", "/v1/openapi.json", tenant=None)
    assert reply.status == 200, reply.body
    return reply.body


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def needs_key(spec: dict[str, Any], op: dict[str, Any]) -> bool:
    """Whether the operation's effective security requires the API key (and allows nothing else)."""
    requirements = op.get("security", spec.get("security", []))
    return bool(requirements) and all("apiKey" in r for r in requirements)


def test_the_spec_declares_the_api_key_scheme(spec):
    # Given the served spec / Then it has one security scheme: an API key in the x-api-key header
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"apiKey": {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "x-api-key"}}


def test_every_operation_but_the_public_ones_needs_the_key(spec):
    # Given every operation of the served spec
    public = {(m, p) for m, p, op in operations(spec) if not needs_key(spec, op)}
    # Then exactly the public ones may be called without it, and they say so (anonymous access)
    assert public == PUBLIC_OPERATIONS
    for method, path in PUBLIC_OPERATIONS:
        assert spec["paths"][path][method]["security"] == [{}]


def test_what_the_spec_states_is_what_the_api_enforces(api, spec):
    # Given each operation of the spec, called without a key (ids filled in, no body)
    for method, path, op in operations(spec):
        url = re.sub(r"\{[^}]+\}", "01ARZ3NDEKTSV4RRFFQ69G5FAV", path)
        reply = api(method.upper(), url, tenant=None)
        # Then it is a 401 exactly when the spec says the key is needed (checked before anything else)
        assert (reply.status == 401) == needs_key(spec, op), (method, path, reply.status, reply.body)


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("post", "/v1/tasks", {"idempotency-key": 128, "x-env": 256}),
        ("post", "/v1/workflows/{name}/runs", {"idempotency-key": 128}),
    ],
)
def test_the_headers_an_operation_reads_are_declared(spec, method, path, headers):
    # Given an operation that reads request headers
    params = spec["paths"][path][method].get("parameters", [])
    declared = {p["name"]: p for p in params if p["in"] == "header"}
    # Then each is a declared, optional header parameter with its length limit
    assert set(declared) == set(headers)
    for name, limit in headers.items():
        schema = declared[name]["schema"]
        limits = schema.get("anyOf", [schema])[0]
        assert declared[name].get("required") is not True
        assert (limits.get("minLength"), limits.get("maxLength")) == (1, limit), declared[name]


def test_a_declared_header_out_of_its_limits_is_a_400_naming_it(api):
    # Given an x-env header longer than declared
    body = {"target": {"type": "builtin", "name": "echo"}}
    reply = api("POST", "/v1/tasks", body, headers={"x-env": "e" * 257})
    # Then it is a 400 naming the header as clients write it
    assert reply.status == 400, reply.body
    assert [d["field"] for d in reply.body["error"]["details"]] == ["header.x-env"]


def test_swagger_ui_offers_the_key(api):
    # Given the Swagger UI page / Then its spec carries the scheme, so "Authorize" can send the key
    reply = api("GET", "/v1/docs", tenant=None)
    assert reply.status == 200
    assert '"securitySchemes"' in reply.body and '"x-api-key"' in reply.body
