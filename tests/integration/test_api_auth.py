"""The key is checked before anything else in the request."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "raw_body"),
    [
        ("POST", "/v1/tasks", '{"target":'),
        ("POST", "/v1/tasks/batch", "[]"),
        ("GET", "/v1/tasks", None),
        ("GET", "/v1/nope", None),
    ],
)
def test_no_key_is_401_even_with_a_bad_body(api, method, path, raw_body):
    # Given a request without an API key and a body that would be a 400
    reply = api(method, path, tenant=None, raw_body=raw_body)
    # Then the answer is 401 in the error shape
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"


def test_health_needs_no_key(api):
    assert api("GET", "/v1/health", tenant=None).status == 200


def test_curl_default_form_content_type_is_read_as_json(api):
    # Given the README's quick-start curl, which sends -d without a Content-Type header
    # (curl then says application/x-www-form-urlencoded)
    reply = api(
        "POST",
        "/v1/tasks",
        raw_body='{"target":{"type":"builtin","name":"echo"},"payload":{"hello":"world"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    # Then the task is accepted as if it were sent as JSON
    assert reply.status == 201, reply.body
    assert reply.body["payload"] == {"hello": "world"}
