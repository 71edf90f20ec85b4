"""Large answers checked as JSON without building them (domain/results.py)."""

from __future__ import annotations

import json

import pytest

from taskplane.domain.models import MAX_PAYLOAD_DEPTH, payload_depth
from taskplane.domain.results import NotJson, RawJson, checked_json, valued
from taskplane.services.execute import keepable_result

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value",
    [
        [],
        {},
        7,
        "text",
        None,
        [{"a": [1, 2, {"b": [[]]}]}, {"c": {}}],
        {"k": [[[[{"d": 1.5e300}]]]], "e": [True, False, None]},
        [[[[[[[[[[1]]]]]]]]]],
    ],
)
def test_the_depth_is_payload_depth_and_the_text_is_kept_as_is(value):
    text = json.dumps(value, indent=1)
    checked = checked_json(text)
    assert checked == RawJson(text.encode(), depth=payload_depth(value))
    assert checked.value() == value


@pytest.mark.parametrize(
    "text",
    ["[1, NaN]", '{"a": Infinity}', "[-Infinity]", "[1e999]", '{"a": 1', "[1] [2]", "", "nope", "{'a': 1}"],
)
def test_what_is_not_json_the_platform_keeps_is_refused(text):
    with pytest.raises(NotJson):
        checked_json(text)


def test_surrogate_pairs_pass_and_a_lone_surrogate_goes_the_usual_way():
    assert checked_json(json.dumps(["\U0001f600 ok"])) is not None  # ensure_ascii: \\ud83d\\ude00
    assert checked_json('["\\ud800"]') is None
    assert checked_json('["\\udc00\\ud83d\\ude00"]') is None
    assert checked_json('["a \\\\ud800 b"]') is None  # an escaped backslash: parsed the usual way, safely


def test_nesting_past_what_the_parser_goes_is_too_deep_not_an_error():
    deep = "[" * 100_000 + "]" * 100_000
    checked = checked_json(deep)
    assert checked is not None and checked.depth > MAX_PAYLOAD_DEPTH


def test_keepable_result_keeps_a_raw_answer_or_says_why_not():
    ok = checked_json(json.dumps({"rows": [1, 2]}))
    assert keepable_result(ok, 10_000) == (ok, None)
    kept, note = keepable_result(ok, 5)
    assert kept["reason"] == "too large" and kept["size"] == ok.size and "not kept" in (note or "")
    deep = checked_json("[" * (MAX_PAYLOAD_DEPTH + 1) + "]" * (MAX_PAYLOAD_DEPTH + 1))
    kept, note = keepable_result(deep, 10_000)
    assert kept["reason"] == "too deep" and f"{MAX_PAYLOAD_DEPTH} levels" in (note or "")


def test_valued_builds_a_raw_answer_and_leaves_values_alone():
    assert valued(checked_json('{"a": [1]}')) == {"a": [1]}
    assert valued({"a": 1}) == {"a": 1}


class Answering:
    """Target runners answering ``answer`` to every call."""

    def __init__(self, answer: object) -> None:
        self.answer = answer

    def run(self, *args: object, **kwargs: object) -> object:
        return self.answer


def test_a_large_answer_to_a_fallback_is_over_its_limit_by_its_size():
    from concurrent.futures import ThreadPoolExecutor

    from taskplane.domain.allowlist import TargetPolicy
    from taskplane.services.fallback import FALLBACK_RESULT_BYTES, call_fallback

    answer = checked_json(json.dumps(["r" * 300_000]))
    with ThreadPoolExecutor(1) as pool:
        got = call_fallback(
            runners=Answering(answer),  # type: ignore[arg-type]
            pool=pool,
            targets=TargetPolicy.permissive(),
            tenant="acme",
            target={"type": "builtin", "name": "echo"},
            envelope={"task_id": "t"},
            timeout_s=5,
        )
    assert got["state"] == "SUCCEEDED" and got["result"] is None
    assert f"{answer.size} bytes is over the {FALLBACK_RESULT_BYTES}-byte limit" in got["note"]


class Gate:
    """A semaphore double recording when the check runs inside it."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __enter__(self) -> None:
        self.log.append("enter")

    def __exit__(self, *exc: object) -> None:
        self.log.append("exit")


def test_large_answers_are_checked_inside_the_gate_and_small_ones_never_wait(monkeypatch):
    from taskplane.adapters import targets

    gate = Gate()
    real = targets.checked_json

    def checking(text: str) -> object:
        gate.log.append("check")
        return real(text)

    monkeypatch.setattr(targets, "checked_json", checking)
    large = json.dumps(["r" * 300_000]).encode()
    assert isinstance(targets._answer(large, gate=gate), RawJson)  # type: ignore[arg-type]
    assert gate.log == ["enter", "check", "exit"]
    assert targets._answer(b'{"small": 1}', gate=gate) == {"small": 1}  # type: ignore[arg-type]
    assert targets._answer(b"[1, NaN" + b" " * 300_000 + b"]", gate=gate).startswith("[1, NaN")  # type: ignore[arg-type]
    assert gate.log == ["enter", "check", "exit", "enter", "check", "exit"]
