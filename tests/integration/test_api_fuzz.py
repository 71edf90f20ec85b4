"""schemathesis over the served OpenAPI: no input, however malformed, gets a 5xx.

Two passes over every operation: schemathesis' own cases, and the same cases with their strings
(body keys and values, path and query parameters, headers) swapped for Unicode-heavy text that
schemathesis itself never sends: lone UTF-16 surrogates, astral and private-use characters,
noncharacters, bidi overrides, zero-width and combining marks, NUL, plus duplicated JSON keys.
Bounded (a few examples per operation) so that it fits in ``make test``; the figures it reaches are
printed at the end of the session (``-s``) for the hardening report.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from support import api_event  # noqa: E402

from taskplane.domain.text import has_invalid_text  # noqa: E402
from taskplane.local.handlers import load_handler  # noqa: E402

pytestmark = pytest.mark.integration

_app = load_handler("api").app
schema = schemathesis.openapi.from_dict(
    json.loads(_app.get_openapi_json_schema(title="taskplane", version="1"))
)

#: Answers seen per pass, by status class (read by the report; a 5xx fails the case at once).
SEEN: dict[str, dict[str, int]] = {"schemathesis": {}, "unicode-heavy": {}}

#: Unicode-heavy requests that carried at least one lone surrogate (raw or as a JSON escape).
SURROGATE_REQUESTS: list[int] = []

#: Text that breaks naive code: lone surrogates (high, low, reversed pair), an astral character, the
#: last code point, noncharacters, a BOM, bidi override, zero-width space, combining mark, NUL, NEL,
#: line separator, case-folding and compatibility oddities, and escapes that look like JSON's.
SPECIALS = [
    "\ud800", "\udfff", "\udc00\ud800", "a\ud83db", "\U0001f600", "\U0010ffff", "\uffff", "\ufdd0",
    "\ufeff", "\u202e", "\u200b", "e\u0301", "\x00", "\x85", "\u2028", "\ufb01", "\u0130", "\u00df",
    "\u65e5\u672c", "\\ud800", "%ED%A0%80", "../",
]  # fmt: skip
UNICODE_TEXT = st.one_of(
    st.text(st.characters(exclude_categories=[]), max_size=12),  # any code point, surrogates included
    st.sampled_from(SPECIALS),
    st.lists(st.sampled_from(SPECIALS), min_size=2, max_size=4).map("".join),
)

SETTINGS = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)


@pytest.fixture
def handler(aws: Any) -> Any:
    return load_handler("api").lambda_handler


def _body_text(body: Any) -> str | None:
    if type(body).__name__ == "NotSet" or body is None:
        return None
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body if isinstance(body, str) else json.dumps(body)


def _answer(handler: Any, case: Any, raw: str | None, seen: dict[str, int], headers: dict[str, str]) -> int:
    from taskplane.local.context import LocalContext

    headers.setdefault("Content-Type", "application/json")
    event = api_event(
        case.method.upper(),
        case.formatted_path,
        raw_body=raw,
        headers=headers,
        query={k: str(v) for k, v in (case.query or {}).items()} or None,
    )
    # When the API handler answers it
    response = handler(event, LocalContext(function_name="taskplane-api"))
    # Then it is never a 5xx, every error has the contract's shape, and the answer is valid text
    status = response["statusCode"]
    seen[f"{status // 100}xx"] = seen.get(f"{status // 100}xx", 0) + 1
    assert status < 500, (case.method, case.formatted_path, response.get("body"))
    body = response.get("body")
    if body and "json" in str((response.get("headers") or {}).get("Content-Type", "")):
        answer = json.loads(body)
        assert not has_invalid_text(answer), (case.method, case.formatted_path, body)
        if status >= 400:
            error = answer.get("error")
            assert error and {"code", "message", "details"} <= set(error)
    return status


@schema.parametrize()
@SETTINGS
def test_no_input_gets_a_5xx(case: Any, handler: Any) -> None:
    # Given any request the schema allows (and many it does not, through its bodies and parameters)
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    _answer(handler, case, _body_text(case.body), SEEN["schemathesis"], headers)


def _parsed(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _unicode_heavy(value: Any, data: Any, depth: int = 0) -> Any:
    """``value`` with some of its strings (keys included) swapped for Unicode-heavy text."""
    if isinstance(value, str):
        return data.draw(UNICODE_TEXT) if data.draw(st.booleans()) else value
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            _unicode_heavy(k, data, depth + 1): _unicode_heavy(v, data, depth + 1) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unicode_heavy(v, data, depth + 1) for v in value]
    return value


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    SETTINGS, max_examples=30, phases=[Phase.generate]
)  # generated cases only: the schema's examples take no data
def test_no_unicode_heavy_input_gets_a_5xx(case: Any, data: Any, handler: Any) -> None:
    # Given a schemathesis case whose strings are partly swapped for Unicode-heavy text: body keys and
    # values (sent escaped, as JSON clients do, or raw), path and query parameters, header values
    if case.path_parameters:
        case.path_parameters = {k: _unicode_heavy(v, data) for k, v in case.path_parameters.items()}
    if case.query:
        case.query = {k: _unicode_heavy(v, data) for k, v in case.query.items()}
    headers = {k: _unicode_heavy(str(v), data) for k, v in (case.headers or {}).items()}
    raw = _body_text(case.body)
    body = None if raw is None or type(case.body).__name__ == "NotSet" else case.body
    if isinstance(body, dict | list):
        mutated = _unicode_heavy(body, data)
        raw = json.dumps(mutated, ensure_ascii=data.draw(st.booleans()))
        if isinstance(mutated, dict) and mutated and data.draw(st.booleans()):
            # ... and sometimes its first key given twice
            key, value = next(iter(mutated.items()))
            raw = "{" + json.dumps(key) + ":" + json.dumps(value) + "," + raw[1:]
    # (A body counts where the operation reads one; a GET with a body is answered without reading it.)
    body_read = bool(case.operation.definition.raw.get("requestBody"))
    query = {k: str(v) for k, v in (case.query or {}).items()}  # as the event carries them
    body = [raw or "", _parsed(raw)] if body_read else []
    carries_surrogate = has_invalid_text([*body, case.formatted_path, query, headers])
    status = _answer(handler, case, raw, SEEN["unicode-heavy"], headers)
    if carries_surrogate:
        SURROGATE_REQUESTS.append(1)
        # ... and text that is not valid Unicode is never accepted, whichever part carries it
        assert 400 <= status < 500, (case.method, case.formatted_path, status)


def teardown_module() -> None:
    for name, seen in SEEN.items():
        print(f"\nschemathesis figures, {name} (answers by class):", dict(seen), "total", sum(seen.values()))
    print("unicode-heavy requests carrying a lone surrogate:", len(SURROGATE_REQUESTS))
