"""TaskFlow (taskplane.flow): recording a Python flow into the ordinary definition, and its errors.

Rules with a space of inputs are property-tested: random DAGs written as flows give the graph and
the ASL of the same DAG written as YAML; any JSON payload survives the YAML a flow is sent as.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_workflow_definition import dags

from taskplane.domain.asl import compile_asl
from taskplane.domain.workflow import load_document, parse_workflow
from taskplane.flow import Flow, FlowError, as_flow, flow, flows_in, task

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FN = "arn:aws:lambda:us-east-1:123456789012:function:taskplane-step"
PROPERTY = settings(max_examples=100, deadline=None)
HERE = __file__
#: What task bodies did when they ran (they never should).
RAN: list[str] = []


def line_of(marker: str) -> int:
    """The line of this file that ends with ``# <marker>``."""
    for number, line in enumerate(Path(HERE).read_text().splitlines(), start=1):
        if line.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"no line marked {marker!r}")


def nodes_of(f: Flow) -> list[tuple[str, list[str]]]:
    return [(n["id"], n.get("needs", [])) for n in f.definition().document["nodes"]]


def compiled(document: dict[str, Any] | str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(canonical definition, ASL) as the API would store and compile it."""
    wf = parse_workflow(load_document(document) if isinstance(document, str) else document, name=name)
    return wf.canonical(), compile_asl(wf, FN)


@task(target="lambda:reserve-stock", compensate="lambda:release-stock", retry={"max_attempts": 3})
def reserve(order):
    RAN.append("reserve")


@task(target="lambda:charge", compensate="lambda:refund", timeout_s=30)
def charge(order, reservation):
    RAN.append("charge")


@task(target="builtin:echo")
def audit(order):
    RAN.append("audit")


@task(target="http:https://ship.example/ship")
def ship(order, charged, audited):
    RAN.append("ship")


@task(target="builtin:echo")
def gather(*outputs, **named):
    RAN.append("gather")


def helper(value):
    RAN.append("helper")
    return value


# -- recording -------------------------------------------------------------------------------------


def test_the_issue_example_records_nodes_and_needs_from_the_data_passed():
    # Given the issue's order flow
    @flow(name="order", on_failure="compensate")
    def order(order):
        r = reserve(order)
        c = charge(order, r)  # data dependency -> edge reserve -> charge
        ship(order, c, audit(order))

    RAN.clear()
    # When it is recorded
    definition = order.definition()
    # Then each call is a node that needs the nodes whose outputs it was given, in call order
    assert nodes_of(order) == [
        ("reserve", []),
        ("charge", ["reserve"]),
        ("audit", []),
        ("ship", ["charge", "audit"]),
    ]
    # And the node fields are the tasks' (shorthand targets expanded), and no task body ran
    assert definition.document["nodes"][1] == {
        "id": "charge",
        "needs": ["reserve"],
        "target": {"type": "lambda", "function": "charge"},
        "timeout_s": 30,
        "compensate": {"type": "lambda", "function": "refund"},
    }
    assert definition.document["on_failure"] == "compensate"
    assert RAN == []


def test_outputs_nested_in_arguments_and_subscripted_are_needs_in_order_of_first_mention():
    @flow
    def nested(order):
        a, b, c, d = reserve(order), audit(order), audit(order), audit(order)
        gather([a, (b,)], {"x": {c["id"], a[0]}}, extra={"deep": [[d["k"]["j"]]]}, again=a)

    assert nodes_of(nested)[-1] == ("gather", ["reserve", "audit", "audit_2", "audit_3"])


def test_the_run_input_makes_no_need_and_may_be_subscripted():
    @flow
    def from_input(order):
        gather(order, order["items"], [order["address"]["city"]])

    assert nodes_of(from_input) == [("gather", [])]


def test_repeated_calls_get_stable_suffixes_and_options_give_exact_ids():
    @flow
    def repeated(order):
        first = audit(order)
        audit(order)
        audit.options(id="audit-final")(first)
        audit(order)

    # The second and later calls of a task are suffixed in call order; an explicit id is kept as it is
    assert [n for n, _ in nodes_of(repeated)] == ["audit", "audit_2", "audit-final", "audit_3"]
    # And recording again gives the same ids (the names are stable)
    assert [n for n, _ in nodes_of(repeated)] == ["audit", "audit_2", "audit-final", "audit_3"]


def test_a_suffix_skips_an_id_given_explicitly():
    @flow
    def taken(order):
        audit.options(id="audit_2")(order)
        audit(order)
        audit(order)

    assert [n for n, _ in nodes_of(taken)] == ["audit_2", "audit", "audit_3"]


def test_options_change_one_call_only():
    @flow
    def shards(order):
        for i in range(3):
            audit.options(payload={"shard": i}, timeout_s=5, retry={"max_attempts": 1})(order)
        audit(order)

    nodes = shards.definition().document["nodes"]
    assert [n.get("payload") for n in nodes] == [{"shard": 0}, {"shard": 1}, {"shard": 2}, None]
    assert [n.get("timeout_s") for n in nodes] == [5, 5, 5, None]


def test_a_flow_with_builtins_comprehensions_and_value_methods_records():
    # Given a flow that computes its structure with what only computes: range, len, sorted, dict and
    # str methods, comprehensions, a lambda of its own
    regions = {"eu": 2, "us": 1}

    @flow
    def fan_out(order):
        keys = sorted(regions.keys())
        key = lambda region: region.upper()  # noqa: E731
        warmed = [audit.options(id=f"warm-{key(r)}-{i}")(order) for r in keys for i in range(regions[r])]
        names = []
        names.append(",".join(keys))
        gather(*warmed[: len(warmed)])

    assert [n for n, _ in nodes_of(fan_out)] == ["warm-EU-0", "warm-EU-1", "warm-US-0", "gather"]


def test_the_docstring_is_the_description_and_fields_map_to_the_document():
    @flow(name="documented", timeout_s=90, defaults={"timeout_s": 7})
    def documented(order):
        """First paragraph,
        over two lines.

        Not this one."""
        audit(order)

    document = documented.definition().document
    assert {k: v for k, v in document.items() if k != "nodes"} == {
        "name": "documented",
        "description": "First paragraph, over two lines.",
        "timeout_s": 90,
        "defaults": {"timeout_s": 7},
    }


def test_the_guard_leaves_the_profile_function_as_it_found_it():
    # Given a profiler of the developer's (e.g. a coverage or profiling tool) installed
    calls: list[str] = []

    def mine(frame: Any, event: str, arg: Any) -> None:
        calls.append(event)

    @flow
    def plain(order):
        audit(order)

    sys.setprofile(mine)
    try:
        plain.definition()
        after = sys.getprofile()
    finally:
        sys.setprofile(None)
    # Then it is back after the recording
    assert after is mine


# -- twins: a flow and its YAML give the same definition and the same ASL ----------------------------


def test_the_examples_are_the_twins_of_their_yaml_files():
    # Given examples/flows.py and the YAML examples
    flows = {f.name: f for f in flows_in(str(ROOT / "examples" / "flows.py"))}
    assert list(flows) == ["order-fulfillment", "preheat"]
    for name, yaml_file in (("order-fulfillment", "order-fulfillment.yaml"), ("preheat", "preheat.yaml")):
        # When each flow is recorded, sent as YAML and compiled
        from_flow = compiled(flows[name].definition().yaml(), name)
        from_yaml = compiled((ROOT / "examples" / yaml_file).read_text(), name)
        # Then the stored definition and the state machine are the same
        assert from_flow == from_yaml, name


EVERY_FIELD_YAML = """
name: every-field
description: Every field of a definition.
timeout_s: 600
defaults: {timeout_s: 20, retry: {max_attempts: 4, base_delay_ms: 100, max_delay_ms: 900, jitter: none}}
on_failure: stop
nodes:
  - id: fetch
    target: {type: http, url: "https://api.example/fetch", method: GET, headers: {x-token: abc}}
    payload: {page: 1, when: "2026-01-01", tags: [a, b], none: null, ratio: 0.5}
    timeout_s: 9
    retry: {max_attempts: 2}
  - id: store
    needs: [fetch]
    target: {type: sqs, queue_url: "https://sqs.us-east-1.amazonaws.com/123/q"}
    compensate: {type: lambda, function: unstore}
  - id: announce
    needs: [store, fetch]
    target: {type: eventbridge, bus: orders, source: shop, detail_type: Stored}
    payload: "plain text"
"""


def test_every_definition_field_maps_to_its_yaml_twin():
    # Given a flow that sets every field, on the workflow and on nodes, with every target type
    @task(
        target={
            "type": "http",
            "url": "https://api.example/fetch",
            "method": "GET",
            "headers": {"x-token": "abc"},
        },
        payload={"page": 1, "when": "2026-01-01", "tags": ["a", "b"], "none": None, "ratio": 0.5},
        timeout_s=9,
        retry={"max_attempts": 2},
    )
    def fetch(run_input): ...

    @task(target="sqs:https://sqs.us-east-1.amazonaws.com/123/q", compensate="lambda:unstore")
    def store(page): ...

    @task(target={"type": "eventbridge", "bus": "orders", "source": "shop", "detail_type": "Stored"})
    def announce(stored, page): ...

    @flow(
        name="every-field",
        description="Every field of a definition.",
        timeout_s=600,
        defaults={
            "timeout_s": 20,
            "retry": {"max_attempts": 4, "base_delay_ms": 100, "max_delay_ms": 900, "jitter": "none"},
        },
        on_failure="stop",
    )
    def every_field(run_input):
        page = fetch(run_input)
        announce.options(payload="plain text")(store(page), page)

    # When it is recorded and sent as YAML, Then the API stores and compiles what the YAML gives
    assert compiled(every_field.definition().yaml(), "every-field") == compiled(
        EVERY_FIELD_YAML, "every-field"
    )


def _accepts_anything(*outputs: Any) -> None:
    """A task body whose signature takes any outputs."""


def flow_of(nodes: list[dict[str, Any]], recipe: dict[str, list[tuple[str, str]]] | None = None) -> Flow:
    """A DAG written as a flow: each node is called with the outputs of its needs, in order, or as
    ``recipe`` says: (need, how) pairs, ``how`` being plain, list, dict or sub (subscripted)."""
    tasks = {n["id"]: task(target="builtin:echo", id=n["id"])(_accepts_anything) for n in nodes}
    plan = [(n["id"], (recipe or {}).get(n["id"]) or [(need, "plain") for need in n["needs"]]) for n in nodes]

    @flow(name="random")
    def random_dag():
        out: dict[str, Any] = {}
        for node_id, passed in plan:
            args = []
            for need, how in passed:
                value = out[need]
                args.append(
                    {"plain": value, "list": [value], "dict": {"k": (value,)}, "sub": value["sub"]}[how]
                )
            out[node_id] = tasks[node_id](*args)

    return random_dag


@PROPERTY
@given(dags())
def test_random_dags_written_as_flows_compile_to_the_same_machine(nodes):
    # Given any DAG, as YAML would list it and as a flow calling its tasks in the same order
    # When both are recorded, stored and compiled
    from_flow = compiled(flow_of(nodes).definition().yaml(), "random")
    from_yaml = compiled({"name": "random", "nodes": nodes}, "random")
    # Then the definitions and the state machines are identical
    assert from_flow == from_yaml


@PROPERTY
@given(dags(), st.randoms(use_true_random=False))
def test_needs_come_from_outputs_however_they_are_passed(nodes, rnd):
    # Given any DAG whose calls pass their needs' outputs shuffled, some twice, nested or subscripted
    recipe = {}
    for n in nodes:
        passed = list(n["needs"]) + rnd.sample(list(n["needs"]), k=min(len(n["needs"]), 2))
        rnd.shuffle(passed)
        recipe[n["id"]] = [(need, rnd.choice(["plain", "list", "dict", "sub"])) for need in passed]
    # When it is recorded
    recorded = parse_workflow(load_document(flow_of(nodes, recipe).definition().yaml()), name="random")
    # Then every node needs exactly the nodes whose outputs it got, once each, in order of first mention
    assert [(n.id, list(n.needs)) for n in recorded.nodes] == [
        (n["id"], list(dict.fromkeys(need for need, _ in recipe[n["id"]]))) for n in nodes
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(JSON)
def test_any_json_payload_survives_the_yaml_a_flow_is_sent_as(payload):
    # Given a node with any JSON payload (keys and strings YAML would read as something else included)
    @task(target="builtin:echo", payload=payload)
    def node(): ...

    @flow(name="payload")
    def with_payload():
        node()

    # When the flow's YAML is read by the API's loader, Then the payload is what was given
    document = load_document(with_payload.definition().yaml())
    assert document["nodes"][0].get("payload") == payload  # null and no payload are the same


# -- what cannot be recorded, and where it is -------------------------------------------------------


def raises_at(f: Flow, marker: str, *words: str) -> FlowError:
    with pytest.raises(FlowError) as caught:
        f.definition()
    error = caught.value
    assert (error.file, error.line) == (HERE, line_of(marker)), str(error)
    assert str(error).startswith(f"{HERE}:{line_of(marker)}: ")
    for word in words:
        assert word in error.message, error.message
    return error


def test_branching_on_an_output_is_refused_where_it_happens():
    @flow
    def branching(order):
        r = reserve(order)
        if r["ok"]:  # branch
            charge(order, r)

    raises_at(
        branching, "branch", "branching on", "the output of reserve['ok']", "only exists when the flow runs"
    )


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("compare", "comparing"),
        ("iterate", "iterating over"),
        ("arith", "computing with"),
        ("format", "formatting"),
        ("length", "taking len() of"),
        ("call-output", "calling"),
        ("contains", "looking inside"),
        ("input-branch", "the run input"),
    ],
)
def test_every_use_of_an_output_that_needs_its_value_is_refused(marker, words):
    @flow
    def uses(order):
        r = reserve(order)
        if marker == "compare":
            charge(order, r == "ok")  # compare
        if marker == "iterate":
            [audit(x) for x in r]  # iterate
        if marker == "arith":
            charge(order, r + 1)  # arith
        if marker == "format":
            charge(order, f"id-{r}")  # format
        if marker == "length":
            charge(order, len(r))  # length
        if marker == "call-output":
            r()  # call-output
        if marker == "contains":
            charge(order, "x" in r)  # contains
        if marker == "input-branch" and order:  # input-branch
            charge(order, r)

    raises_at(uses, marker, words)


def test_calling_a_function_that_is_not_a_task_is_stopped_before_it_runs():
    @flow
    def calls_helper(order):
        value = helper(order)  # helper-call
        reserve(value)

    RAN.clear()
    raises_at(calls_helper, "helper-call", "calls helper(), which is not a @task", "stopped before it ran")
    assert RAN == []


def test_calling_a_c_function_with_effects_is_stopped():
    @flow
    def sleeps(order):
        time.sleep(5)  # sleep-call
        reserve(order)

    started = time.monotonic()
    raises_at(sleeps, "sleep-call", "calls time.sleep(), which is not a @task")
    assert time.monotonic() - started < 4


def test_a_flow_that_swallows_the_refusal_still_fails():
    @flow
    def swallows(order):
        try:  # noqa: SIM105 - contextlib.suppress would be refused first
            helper(order)  # swallowed
        except Exception:
            pass
        reserve(order)

    RAN.clear()
    raises_at(swallows, "swallowed", "calls helper()")
    assert RAN == []


def test_a_constant_argument_is_refused_pointing_at_payload():
    @flow
    def constant(order):
        reserve(5)  # constant

    raises_at(constant, "constant", "argument 'order' of reserve() is the constant 5", "payload")


def test_a_task_itself_instead_of_its_output_is_refused():
    @flow
    def uncalled(order):
        charge(order, reserve)  # uncalled

    raises_at(uncalled, "uncalled", "is the task reserve itself, not its output")


def test_an_output_recorded_by_another_flow_is_refused():
    kept: list[Any] = []

    @flow
    def first(order):
        kept.append(reserve(order))

    @flow
    def second(order):
        charge(order, kept[0])  # foreign

    first.definition()
    raises_at(second, "foreign", "recorded by another flow (or another definition)")


def test_a_call_that_does_not_fit_the_task_signature_is_refused():
    @flow
    def arity(order):
        charge(order)  # arity

    raises_at(arity, "arity", "charge(): missing a required argument: 'reservation'")


def test_a_flow_calling_a_flow_is_refused():
    @flow
    def inner(order):
        audit(order)

    @flow
    def outer(order):
        inner(order)  # flow-in-flow

    raises_at(outer, "flow-in-flow", "flow 'inner' is a workflow definition, not something to call")


def test_an_explicit_id_used_twice_is_refused():
    @flow
    def twice(order):
        audit.options(id="same")(order)
        audit.options(id="same")(order)  # twice

    raises_at(twice, "twice", "node id 'same' is used twice")


def test_an_exception_in_the_flow_is_reported_at_its_line():
    @flow
    def broken(order):
        values: dict[str, Any] = {}
        audit(values["missing"])  # key-error

    raises_at(broken, "key-error", "flow 'broken' raised KeyError")


def test_a_task_called_outside_a_flow_says_how_it_runs():
    with pytest.raises(FlowError) as caught:
        reserve({"order_id": 1})  # outside
    assert caught.value.line == line_of("outside")
    assert "runs on the platform as a node of a workflow" in caught.value.message


def test_a_flow_that_calls_no_task_is_refused_at_its_decorator():
    @flow  # empty-flow
    def empty(order):
        pass

    raises_at(empty, "empty-flow", "calls no task")


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("unknown-type", "unknown target type 'ftp'"),
        ("unknown-builtin", "target: name: Input should be 'echo', 'sleep' or 'fail'"),
        ("bad-compensate", "compensate: expected builtin:NAME"),
        ("bad-retry", "retry.max_attempts: Input should be greater than or equal to 1"),
        ("bad-timeout", 'timeout_s: must be a whole number of seconds from 1 to 900, or "auto"'),
        ("bad-id", "id 'has space'"),
        ("bad-payload", "payload: Value error, must not nest"),
        ("bad-breaker", "retry.breaker.error_rate: Input should be less than 1"),
        ("bad-auto", "auto_timeout: Value error, auto_timeout.floor_s must be <= auto_timeout.ceiling_s"),
        ("auto-without-auto", 'auto_timeout: Value error, only with timeout_s "auto"'),
    ],
)
def test_a_bad_task_declaration_is_refused_at_its_decorator(marker, words):
    inverted = {"floor_s": 9, "ceiling_s": 3}
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(FlowError) as caught:
        if marker == "unknown-type":
            task(target="ftp:files")  # unknown-type
        if marker == "unknown-builtin":
            task(target="builtin:nope")  # unknown-builtin
        if marker == "bad-compensate":
            task(target="builtin:echo", compensate="undo")  # bad-compensate
        if marker == "bad-retry":
            task(target="builtin:echo", retry={"max_attempts": 0})  # bad-retry
        if marker == "bad-timeout":
            task(target="builtin:echo", timeout_s=901)  # bad-timeout
        if marker == "bad-id":
            task(target="builtin:echo", id="has space")  # bad-id
        if marker == "bad-payload":
            task(target="builtin:echo", payload=deep)  # bad-payload
        if marker == "bad-breaker":
            task(target="builtin:echo", retry={"breaker": {"error_rate": 2}})  # bad-breaker
        if marker == "bad-auto":
            task(target="builtin:echo", timeout_s="auto", auto_timeout=inverted)  # bad-auto
        if marker == "auto-without-auto":
            task(target="builtin:echo", timeout_s=30, auto_timeout={"k": 3})  # auto-without-auto
    assert (caught.value.file, caught.value.line) == (HERE, line_of(marker))
    assert words in caught.value.message, caught.value.message


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("payload-output", "payload holds the output of audit, known only when the flow runs"),
        ("payload-input", "payload holds the run input['id'], known only when the flow runs"),
        ("payload-object", "payload is not JSON: Object of type object is not JSON serializable"),
        ("payload-key", "payload is not JSON: the key 1 is not a string"),
    ],
)
def test_a_payload_must_be_json_known_when_the_flow_is_published(marker, words):
    @flow
    def payloads(order):
        first = audit(order)
        if marker == "payload-output":
            audit.options(payload={"x": [first]})(order)  # payload-output
        if marker == "payload-input":
            audit.options(payload=(order["id"],))(order)  # payload-input
        if marker == "payload-object":
            audit.options(payload={"x": object()})(order)  # payload-object
        if marker == "payload-key":
            audit.options(payload={1: "one"})(order)  # payload-key

    raises_at(payloads, marker, words)


def test_bad_options_are_refused_at_the_call():
    @flow
    def bad_options(order):
        audit.options(timeout_s=0)(order)  # bad-option

    raises_at(
        bad_options,
        "bad-option",
        "audit.options(): timeout_s: must be a whole number of seconds from 1 to 900",
    )


@pytest.mark.parametrize(
    ("marker", "words"),
    [
        ("bad-on-failure", "@flow on_failure: Input should be 'compensate' or 'stop'"),
        ("bad-name", "workflow name 'no spaces please'"),
        ("two-inputs", "takes one argument, the run input (or none)"),
        ("async-flow", "a flow is a plain def"),
    ],
)
def test_a_bad_flow_declaration_is_refused_at_its_decorator(marker, words):
    with pytest.raises(FlowError) as caught:
        if marker == "bad-on-failure":

            @flow(on_failure="retry")  # bad-on-failure
            def a(order): ...

        if marker == "bad-name":

            @flow(name="no spaces please")  # bad-name
            def b(order): ...

        if marker == "two-inputs":

            @flow  # two-inputs
            def c(order, customer): ...

        if marker == "async-flow":

            @flow  # async-flow
            async def d(order): ...

    assert (caught.value.file, caught.value.line) == (HERE, line_of(marker))
    assert words in caught.value.message, caught.value.message


def test_as_flow_names_what_it_got():
    with pytest.raises(TypeError, match="expected a @flow"):
        as_flow(reserve)


# -- files -----------------------------------------------------------------------------------------


def test_a_file_gives_every_flow_it_defines_and_only_those(tmp_path: Path):
    # Given a file with two flows, one flow imported from a neighbour, and tasks in the neighbour
    (tmp_path / "shared_tasks.py").write_text(
        "from taskplane.flow import flow, task\n"
        "@task(target='builtin:echo')\n"
        "def step(x): ...\n"
        "@flow\n"
        "def imported(x):\n"
        "    step(x)\n"
    )
    (tmp_path / "two.py").write_text(
        "from shared_tasks import imported, step\n"
        "from taskplane.flow import flow\n"
        "@flow\n"
        "def beta(x):\n"
        "    step(x)\n"
        "@flow\n"
        "def alpha(x):\n"
        "    step(step(x))\n"
    )
    # When the file's flows are asked for, Then both of its own come, in file order
    assert [f.name for f in flows_in(str(tmp_path / "two.py"))] == ["beta", "alpha"]
    assert str(tmp_path) not in sys.path


def test_a_file_that_cannot_be_imported_says_where(tmp_path: Path):
    broken = tmp_path / "broken.py"
    broken.write_text("from taskplane.flow import flow\n\nraise RuntimeError('no')\n")
    with pytest.raises(FlowError) as caught:
        flows_in(str(broken))
    assert (caught.value.line, "importing the file raised RuntimeError: no") == (3, caught.value.message)
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(FlowError) as caught:
        flows_in(str(syntax))
    assert caught.value.line == 1
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(FlowError, match="defines no @flow"):
        flows_in(str(empty))


def test_the_readme_example_records_what_the_readme_says(tmp_path: Path):
    # Given the Python block of the README's TaskFlow section, as a file
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Workflows in Python (TaskFlow).**") :]
    block = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    (tmp_path / "readme_flow.py").write_text(block)
    # When it is recorded, Then it has the nodes and needs its comments state
    [orders] = flows_in(str(tmp_path / "readme_flow.py"))
    assert nodes_of(orders) == [
        ("validate_order", []),
        ("reserve_stock", ["validate_order"]),
        ("charge_card", ["validate_order"]),
        ("create_shipment", ["reserve_stock", "charge_card"]),
    ]
    assert orders.definition().document["description"] == "Reserve and charge in parallel, then ship."


def test_a_flow_carries_the_retry_hub_options_as_its_yaml_twin_does():
    # Given a task with a fallback, a breaker, context and an auto timeout
    @task(
        target="lambda:quote",
        timeout_s="auto",
        auto_timeout={"k": 3, "ceiling_s": 60},
        retry={
            "critical": False,
            "min_remaining_ms": 500,
            "fallback": {"type": "lambda", "function": "cached"},
            "breaker": {"min_calls": 5},
        },
    )
    def quote(order):
        pass

    @flow(name="quoting")
    def quoting(order):
        quote(order)

    # When it is compiled / Then it is the definition its YAML twin compiles to
    yaml_twin = """
name: quoting
nodes:
  - id: quote
    target: {type: lambda, function: quote}
    timeout_s: auto
    auto_timeout: {k: 3, ceiling_s: 60}
    retry: {critical: false, min_remaining_ms: 500, fallback: {type: lambda, function: cached}, breaker: {min_calls: 5}}
"""
    assert compiled(quoting.definition().document, "quoting") == compiled(yaml_twin, "quoting")
    node = parse_workflow(quoting.definition().document, name="quoting").nodes[0]
    assert node.timeout_s == 60 and node.auto_timeout is not None and node.auto_timeout.k == 3
    assert node.retry.fallback is not None and node.retry.breaker is not None
