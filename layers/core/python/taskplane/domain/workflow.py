"""Workflow definitions: YAML or JSON -> pydantic model -> graph checks -> a validated DAG (pure).

A workflow is a set of nodes; each node runs one target once its ``needs`` have succeeded, may carry a
static ``payload``, a ``timeout_s``, a ``retry`` policy and a ``compensate`` target (its Saga undo).
:func:`parse_workflow` is the one entry point: it accepts the request body (YAML or JSON text, or an
already decoded mapping) and returns a :class:`Workflow` whose graph is known to be a DAG with unique
ids and no unknown ``needs``, or raises :class:`~taskplane.domain.errors.InvalidRequest` whose details
name the node and the problem (``duplicate_id``, ``unknown_need``, ``duplicate_need``, ``cycle`` with
the cycle's path, or a field error).

Everything else that is pure about workflows lives here too: version hashing, the canary split,
the compensation plan (reverse topological waves) and the run and node states.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taskplane.domain import text as text_rules
from taskplane.domain.adaptive import AutoTimeout, TimeoutSpec, auto_only
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.models import (
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    TARGET_TYPES,
    Target,
    payload_depth,
    payload_size,
)
from taskplane.domain.retry import RetryPolicy

if TYPE_CHECKING:
    # networkx and yaml are imported by the functions that parse definitions and walk graphs, not
    # with the module: the API and step handlers import it, and most of their calls need neither.
    import networkx as nx
    import yaml

#: Most nodes in one workflow (the compiled ASL of 1,000 nodes stays well under the 1 MB quota).
MAX_NODES = 1000
#: Most ``needs`` of one node.
MAX_NEEDS = 100
#: Longest workflow run (Step Functions Standard runs for up to a year).
MAX_WORKFLOW_TIMEOUT_S = 365 * 24 * 3600
#: Largest node output kept in the run ledger (a DynamoDB item holds 400 KB).
MAX_OUTPUT_BYTES = 128 * 1024
#: Largest run input (the same limit as a task payload).
MAX_INPUT_BYTES = MAX_PAYLOAD_BYTES
#: Largest YAML/JSON mapping, counted in expanded values (guards against YAML alias bombs).
MAX_DOCUMENT_VALUES = 200_000

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
#: Error names the step function raises; the compiled ASL retries the first and never the second.
RETRYABLE_ERROR = "NodeAttemptFailed"
FATAL_ERROR = "NodeFailed"

YAML_CONTENT_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})

_Id = Annotated[StrictStr, Field(pattern=NAME_PATTERN, description="letters, digits, - and _; 1-64")]


class RunState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    COMPENSATED = "COMPENSATED"
    CANCELLED = "CANCELLED"


RUN_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.COMPENSATED, RunState.CANCELLED})
#: A run in one of these states may be resumed (a compensated run's work was undone: start a new one).
RESUMABLE = frozenset({RunState.FAILED, RunState.CANCELLED})


class NodeState(StrEnum):
    PENDING = "PENDING"  # not started (yet)
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"  # an attempt failed; Step Functions will try again
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # never started: the run ended before its needs were done


class Phase(StrEnum):
    NODES = "nodes"  # nodes run
    SETTLING = "settling"  # a node failed: no node starts any more; waiting for running ones
    COMPENSATING = "compensating"
    DONE = "done"


# -- the definition model ----------------------------------------------------------------------


class NodeDefaults(BaseModel):
    """What a node gets when it does not say otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: TimeoutSpec = 60
    auto_timeout: AutoTimeout | None = Field(default=None, description='with timeout_s "auto"')
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @field_validator("auto_timeout")
    @classmethod
    def _auto_only(cls, value: AutoTimeout | None, info: ValidationInfo) -> AutoTimeout | None:
        return auto_only(value, info.data)


class NodeSpec(BaseModel):
    """One node of the DAG."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Id
    target: Target
    needs: list[_Id] = Field(default_factory=list, max_length=MAX_NEEDS)
    payload: Any = Field(default=None, description="static JSON this node's target receives as payload")
    timeout_s: TimeoutSpec | None = None
    auto_timeout: AutoTimeout | None = Field(
        default=None, description='with timeout_s "auto" (here or in defaults): how it is derived'
    )
    retry: RetryPolicy | None = None
    compensate: Target | None = Field(
        default=None, description="target that undoes this node when a later node fails"
    )

    @field_validator("auto_timeout")
    @classmethod
    def _auto_only(cls, value: AutoTimeout | None, info: ValidationInfo) -> AutoTimeout | None:
        # timeout_s unset here: the defaults' decides (checked when the workflow is built)
        if value is not None and info.data.get("timeout_s") not in (None, "auto"):
            raise ValueError('only with timeout_s "auto"')
        return value

    @field_validator("payload")
    @classmethod
    def _payload_limits(cls, value: Any) -> Any:
        if payload_depth(value) > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"must not nest arrays and objects more than {MAX_PAYLOAD_DEPTH} levels deep")
        size = payload_size(value)
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"is {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes")
        return value


class WorkflowSpec(BaseModel):
    """The body of ``PUT /v1/workflows/{name}`` (YAML or the same as JSON)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "hello",
                    "nodes": [
                        {"id": "a", "target": {"type": "builtin", "name": "echo"}, "payload": {"hi": 1}},
                        {"id": "b", "needs": ["a"], "target": {"type": "builtin", "name": "echo"}},
                    ],
                }
            ]
        },
    )

    name: _Id | None = Field(default=None, description="optional; must equal the name in the path")
    description: Annotated[StrictStr, Field(max_length=1024)] | None = None
    timeout_s: StrictInt = Field(default=3600, ge=1, le=MAX_WORKFLOW_TIMEOUT_S)
    defaults: NodeDefaults = Field(default_factory=NodeDefaults)
    on_failure: Literal["compensate", "stop"] | None = Field(
        default=None,
        description="compensate (default when any node has a compensate target) or stop",
    )
    nodes: list[NodeSpec] = Field(min_length=1, max_length=MAX_NODES)

    @model_validator(mode="after")
    def _resolve_on_failure(self) -> WorkflowSpec:
        if self.on_failure is None:
            wanted = "compensate" if any(n.compensate for n in self.nodes) else "stop"
            object.__setattr__(self, "on_failure", wanted)
        return self


# -- the validated workflow --------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A node with its defaults applied."""

    id: str
    target: dict[str, Any]
    needs: tuple[str, ...]
    payload: Any
    #: the most an attempt may run (with ``auto_timeout``: its ceiling)
    timeout_s: int
    retry: RetryPolicy
    compensate: dict[str, Any] | None
    #: ``timeout_s: "auto"``: each attempt's hard timeout follows the target's durations
    auto_timeout: AutoTimeout | None = None


@dataclass(frozen=True)
class Workflow:
    """A definition that passed every check: a DAG with unique ids and known ``needs``."""

    name: str
    spec: WorkflowSpec
    nodes: tuple[Node, ...]
    graph: nx.DiGraph = field(compare=False, repr=False)

    @cached_property
    def by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def order(self) -> tuple[str, ...]:
        """Node ids in a topological order that keeps the definition's order where it may."""
        import networkx as nx

        position = {n.id: i for i, n in enumerate(self.nodes)}
        return tuple(nx.lexicographical_topological_sort(self.graph, key=position.__getitem__))

    @cached_property
    def dependants(self) -> dict[str, tuple[str, ...]]:
        """Node id -> the ids of the nodes that need it, in definition order."""
        found: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for need in n.needs:
                found[need].append(n.id)
        return {k: tuple(v) for k, v in found.items()}

    @cached_property
    def sinks(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.nodes if not self.dependants[n.id])

    @cached_property
    def edges(self) -> list[tuple[str, str]]:
        return [(need, n.id) for n in self.nodes for need in n.needs]

    @property
    def on_failure(self) -> str:
        return str(self.spec.on_failure)

    @property
    def timeout_s(self) -> int:
        return self.spec.timeout_s

    def canonical(self) -> dict[str, Any]:
        """The definition as stored: JSON-ready, defaults resolved at the workflow level, name set."""
        data = self.spec.model_dump(mode="json", exclude_none=True)
        data["name"] = self.name
        return data

    def digest(self) -> str:
        """A hash of the definition; an unchanged PUT publishes no new version."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_workflow(
    body: str | bytes | Mapping[str, Any], *, name: str, content_type: str | None = None
) -> Workflow:
    """Parse and check a workflow definition.

    Parameters
    ----------
    body
        YAML or JSON text (parsed as JSON when ``content_type`` says so, else as YAML), or an
        already decoded mapping.
    name
        The workflow name from the request path; the body's ``name``, when given, must equal it.
    content_type
        The request's ``Content-Type`` (only used to choose the parser and word the errors).

    Returns
    -------
    Workflow

    Raises
    ------
    InvalidRequest
        Malformed YAML or JSON, a field error (details name the node), or a graph problem:
        ``duplicate_id``, ``unknown_need``, ``duplicate_need`` or ``cycle`` (with the cycle's path).

    Examples
    --------
    >>> wf = parse_workflow("nodes: [{id: a, target: {type: builtin, name: echo}}]", name="demo")
    >>> wf.order
    ('a',)
    """
    if not _NAME_RE.fullmatch(name or ""):
        raise InvalidRequest(
            "workflow name must be 1-64 letters, digits, - or _, starting with a letter or digit",
            [{"field": "name", "problem": "invalid_name", "value": str(name)[:80]}],
        )
    raw = body if isinstance(body, Mapping) else load_document(body, content_type)
    spec = _validate_model(raw)
    if spec.name is not None and spec.name != name:
        raise InvalidRequest(
            f"the definition's name {spec.name!r} differs from {name!r} in the path",
            [{"field": "name", "problem": "name_mismatch", "message": f"expected {name!r}"}],
        )
    graph = check_graph(spec.nodes)
    nodes = tuple(_node(i, n, spec.defaults) for i, n in enumerate(spec.nodes))
    return Workflow(name=name, spec=spec, nodes=nodes, graph=graph)


def workflow_from_canonical(data: Mapping[str, Any]) -> Workflow:
    """Rebuild a stored (already validated) definition."""
    return parse_workflow(data, name=str(data["name"]))


# -- text -> document --------------------------------------------------------------------------


@cache
def _loader() -> type[yaml.SafeLoader]:
    """Safe YAML that keeps timestamps as strings and refuses duplicate keys (made on first use)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.1 would turn 2026-01-01 into a date, which is not JSON.
    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return Loader


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    import yaml

    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in result
        except TypeError:  # an unhashable key (a list): reported by the JSON check below
            duplicate = False
            key = repr(key)
        if duplicate:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1}, column {mark.column + 1})", mark
            )
        result[key] = loader.construct_object(value_node, deep=deep)
    return result


def load_document(body: str | bytes, content_type: str | None = None) -> dict[str, Any]:
    """YAML or JSON text -> a JSON-compatible mapping, or InvalidRequest saying where it is broken."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the definition is not UTF-8 text", [{"field": "body"}]) from None
    media = (content_type or "").split(";", 1)[0].strip().lower()
    # JSON when the request says so; otherwise YAML (which reads most JSON too).
    as_json = media == "application/json" or media.endswith("+json")
    if not body.strip():
        raise InvalidRequest("the definition is empty: send YAML or JSON", [{"field": "body"}])
    if as_json:
        try:
            value = text_rules.loads(body)  # also refuses duplicate keys and invalid text, by path
        except (ValueError, RecursionError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            where = {"line": exc.lineno, "column": exc.colno} if isinstance(exc, json.JSONDecodeError) else {}
            raise InvalidRequest(
                f"the definition is not valid JSON: {message}",
                [{"field": "body", "problem": "malformed", "message": message, **where}],
            ) from None
    else:
        import yaml

        try:
            value = yaml.load(body, Loader=_loader())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            where = {"line": mark.line + 1, "column": mark.column + 1} if mark is not None else {}
            at = f" at line {where['line']}, column {where['column']}" if where else ""
            raise InvalidRequest(
                f"the definition is not valid YAML{at}: {problem}",
                [{"field": "body", "problem": "malformed", "message": str(problem), **where}],
            ) from None
        except RecursionError:
            raise InvalidRequest(
                "the definition is nested too deeply", [{"field": "body", "problem": "malformed"}]
            ) from None
    if not isinstance(value, dict):
        kind = "empty" if value is None else type(value).__name__
        raise InvalidRequest(
            f"the definition must be a mapping with nodes, not {kind}",
            [{"field": "body", "problem": "not_a_mapping"}],
        )
    _check_json_compatible(value)
    # After the size check: YAML aliases could make a walk over the expanded document explode.
    text_rules.check_text(value)
    return value


def _check_json_compatible(document: Any) -> None:
    """Keys are strings, numbers finite, values JSON types, and the expanded size is bounded.

    YAML aliases make shared sub-trees; sizes are memoized per object so an alias bomb is measured,
    not expanded.
    """
    sizes: dict[int, int] = {}

    def visit(value: Any, path: str, depth: int) -> int:
        if id(value) in sizes:
            return sizes[id(value)]
        if depth > 200:
            raise InvalidRequest(
                "the definition is nested too deeply", [{"field": path, "problem": "too_deep"}]
            )
        if isinstance(value, dict):
            total = 1
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidRequest(
                        f"{path or 'the definition'}: key {key!r} is not a string (quote it in YAML)",
                        [{"field": path or "body", "problem": "non_string_key", "key": repr(key)[:80]}],
                    )
                total += visit(item, f"{path}.{key}" if path else key, depth + 1)
        elif isinstance(value, list):
            total = 1 + sum(visit(item, f"{path}.{i}", depth + 1) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(
                f"{path}: {value} is not a JSON number", [{"field": path, "problem": "not_json"}]
            )
        elif value is None or isinstance(value, str | int | float | bool):
            total = 1
        else:
            raise InvalidRequest(
                f"{path}: a {type(value).__name__} is not a JSON value",
                [{"field": path, "problem": "not_json"}],
            )
        if total > MAX_DOCUMENT_VALUES:
            raise InvalidRequest(
                f"the definition expands to more than {MAX_DOCUMENT_VALUES} values",
                [{"field": "body", "problem": "too_large", "limit": MAX_DOCUMENT_VALUES}],
            )
        sizes[id(value)] = total
        return total

    visit(document, "", 0)


# -- model and graph checks --------------------------------------------------------------------


def _validate_model(raw: Mapping[str, Any]) -> WorkflowSpec:
    try:
        return WorkflowSpec.model_validate(raw)
    except ValidationError as exc:
        raw_nodes = raw.get("nodes") if isinstance(raw, Mapping) else None
        details = []
        for err in exc.errors():
            loc = list(err.get("loc", ()))
            # Drop the discriminator's tag from paths like nodes.0.target.http.url.
            parts = [
                str(p)
                for i, p in enumerate(loc)
                if not (i and loc[i - 1] in ("target", "compensate", "fallback") and p in TARGET_TYPES)
            ]
            detail: dict[str, Any] = {
                "field": ".".join(parts) or "body",
                "problem": err.get("type", "invalid"),
                "message": err.get("msg", "invalid"),
            }
            if (
                len(loc) >= 2
                and loc[0] == "nodes"
                and isinstance(loc[1], int)
                and isinstance(raw_nodes, list)
            ):
                item = raw_nodes[loc[1]] if loc[1] < len(raw_nodes) else None
                node_id = item.get("id") if isinstance(item, Mapping) else None
                detail["node"] = node_id if isinstance(node_id, str) else f"#{loc[1]}"
            details.append(detail)
        first = details[0]
        who = f"node {first['node']!r}: " if "node" in first else ""
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise InvalidRequest(
            f"invalid workflow: {who}{first['field']}: {first['message']}{more}", details
        ) from exc


def check_graph(nodes: Sequence[NodeSpec | Node]) -> nx.DiGraph:
    """The DAG of ``nodes`` (edge need -> node), or InvalidRequest naming every problem found.

    Duplicate ids, duplicate and unknown ``needs`` are all reported; a cycle is reported with its path
    (``a -> b -> a``), one cycle at a time.
    """
    details: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n in nodes:
        if n.id in seen:
            details.append(
                {
                    "node": n.id,
                    "problem": "duplicate_id",
                    "message": f"node id {n.id!r} is used more than once",
                }
            )
        seen.add(n.id)
    for n in nodes:
        counted: set[str] = set()
        for need in n.needs:
            if need in counted:
                details.append(
                    {
                        "node": n.id,
                        "problem": "duplicate_need",
                        "need": need,
                        "message": f"node {n.id!r} lists {need!r} twice in needs",
                    }
                )
            counted.add(need)
            if need not in seen:
                details.append(
                    {
                        "node": n.id,
                        "problem": "unknown_need",
                        "need": need,
                        "message": f"node {n.id!r} needs {need!r}, which is not a node",
                    }
                )
    if details:
        raise InvalidRequest(f"invalid workflow: {details[0]['message']}" + _more(details), details)
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(n.id for n in nodes)
    graph.add_edges_from((need, n.id) for n in nodes for need in n.needs)
    if nx.is_directed_acyclic_graph(graph):  # linear; find_cycle alone can be quadratic
        return graph
    position = {n.id: i for i, n in enumerate(nodes)}
    loops = [
        c
        for c in nx.strongly_connected_components(graph)
        if len(c) > 1 or any(graph.has_edge(v, v) for v in c)  # a node that needs itself
    ]
    looped = min(loops, key=lambda c: min(position[v] for v in c))
    first = min(looped, key=position.__getitem__)
    # Walked along needs (node -> what it needs), the way the definition reads.
    cycle = nx.find_cycle(graph.reverse(copy=False).subgraph(looped), source=first)
    path = [cycle[0][0], *(v for _, v in cycle)]
    text = " -> ".join(path)
    raise InvalidRequest(
        f"invalid workflow: the needs form a cycle: {text} (each node needs the next)",
        [{"node": path[0], "problem": "cycle", "cycle": path, "message": f"cycle: {text}"}],
    )


def _more(details: list[Any]) -> str:
    return f" (and {len(details) - 1} more)" if len(details) > 1 else ""


# -- runs: canary split and compensation plan ---------------------------------------------------


def check_weights(weights: Mapping[str, Any], versions: Iterable[int]) -> dict[int, int]:
    """Validate a routing split ``{"3": 90, "4": 10}`` -> ``{3: 90, 4: 10}``.

    At most two versions (what a Step Functions alias can route), integer weights 0-100 that sum to
    100, every version published. An empty mapping clears the split (runs use the latest version).
    """
    known = set(versions)
    result: dict[int, int] = {}
    for key, weight in weights.items():
        text = str(key)
        if not text.isdigit() or int(text) < 1:
            raise InvalidRequest(
                f"weights: {key!r} is not a version number",
                [{"field": f"weights.{key}", "problem": "not_a_version"}],
            )
        if int(text) not in known:
            raise InvalidRequest(
                f"weights: version {text} does not exist",
                [{"field": f"weights.{key}", "problem": "unknown_version"}],
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidRequest(
                f"weights.{key} must be an integer 0-100",
                [{"field": f"weights.{key}", "problem": "bad_weight"}],
            )
        result[int(text)] = weight
    if len(result) > 2:
        raise InvalidRequest(
            "weights may split runs between at most two versions (as a Step Functions alias can)",
            [{"field": "weights", "problem": "too_many_versions", "limit": 2}],
        )
    if result and sum(result.values()) != 100:
        raise InvalidRequest(
            f"weights must add up to 100, not {sum(result.values())}",
            [{"field": "weights", "problem": "bad_total", "total": sum(result.values())}],
        )
    return dict(sorted(result.items()))


def choose_version(weights: Mapping[int, int], latest: int, draw: float) -> int:
    """The version a new run uses: by ``weights`` when set, else the latest.

    ``draw`` is uniform in [0, 1); version ``v`` gets the share ``weights[v] / 100``.

    Examples
    --------
    >>> choose_version({3: 90, 4: 10}, latest=4, draw=0.95)
    4
    >>> choose_version({}, latest=4, draw=0.95)
    4
    """
    live = [(v, w) for v, w in sorted(weights.items()) if w > 0]
    if not live:
        return latest
    point = draw * 100
    for version, weight in live:
        if point < weight:
            return version
        point -= weight
    return live[-1][0]


def compensation_waves(workflow: Workflow, completed: Iterable[str]) -> list[list[str]]:
    """Which compensations run, in what order: waves in reverse topological order.

    A node's compensation runs only after the compensations of every completed node that
    (transitively) needed it; nodes of one wave are independent and may run in parallel. Nodes
    without a ``compensate`` target are not in any wave, but still order the others (if ``c``
    needs ``b`` needs ``a``, ``a`` is undone after ``c`` even when ``b`` has nothing to undo).

    Examples
    --------
    >>> wf = parse_workflow(
    ...     "nodes: [{id: a, target: {type: builtin, name: echo}, compensate: {type: builtin, name: echo}},"
    ...     " {id: b, needs: [a], target: {type: builtin, name: echo}, compensate: {type: builtin, name: echo}}]",
    ...     name="x",
    ... )
    >>> compensation_waves(wf, ["a", "b"])
    [['b'], ['a']]
    """
    done = set(completed)
    depth: dict[str, int] = {}
    for node_id in reversed(workflow.order):
        if node_id not in done:
            continue
        later = [depth[d] for d in workflow.dependants[node_id] if d in depth]
        depth[node_id] = 1 + max(later) if later else 0
    waves: dict[int, list[str]] = {}
    for node_id in workflow.order:
        if node_id in depth and workflow.by_id[node_id].compensate is not None:
            waves.setdefault(depth[node_id], []).append(node_id)
    return [waves[d] for d in sorted(waves)]


# -- request bodies ----------------------------------------------------------------------------


def _node(i: int, n: NodeSpec, defaults: NodeDefaults) -> Node:
    timeout = n.timeout_s if n.timeout_s is not None else defaults.timeout_s
    if n.auto_timeout is not None and timeout != "auto":
        raise InvalidRequest(
            f'node {n.id!r}: auto_timeout is only for timeout_s "auto"',
            [
                {
                    "node": n.id,
                    "field": f"nodes.{i}.auto_timeout",
                    "problem": "invalid",
                    "message": 'only with timeout_s "auto"',
                }
            ],
        )
    auto = (n.auto_timeout or defaults.auto_timeout or AutoTimeout()) if timeout == "auto" else None
    return Node(
        id=n.id,
        target=n.target.model_dump(mode="json"),
        needs=tuple(n.needs),
        payload=n.payload,
        timeout_s=auto.ceiling_s if auto is not None else int(timeout),
        retry=n.retry or defaults.retry,
        compensate=n.compensate.model_dump(mode="json") if n.compensate else None,
        auto_timeout=auto,
    )


class RunStart(BaseModel):
    """The body of ``POST /v1/workflows/{name}/runs``."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"input": {"order_id": "A-1001"}}]}
    )

    input: Any = Field(default=None, description="the run input every node receives as input")
    version: StrictInt | None = Field(
        default=None, ge=1, description="a published version; default: the routing"
    )
    idempotency_key: Annotated[StrictStr, Field(min_length=1, max_length=128)] | None = None

    @field_validator("input")
    @classmethod
    def _not_too_deep(cls, value: Any) -> Any:
        if payload_depth(value) > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"must not nest arrays and objects more than {MAX_PAYLOAD_DEPTH} levels deep")
        return value


class Routing(BaseModel):
    """The body of ``PUT /v1/workflows/{name}/routing``: version -> percent of new runs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"weights": {"3": 90, "4": 10}}]}
    )

    weights: dict[Annotated[StrictStr, Field(max_length=12)], Any] = Field(max_length=10)
