"""TaskFlow: workflows declared in Python, recorded into the very definition a YAML file gives.

>>> from taskplane.flow import flow, task
>>> @task(target="lambda:reserve-stock", compensate="lambda:release-stock", retry={"max_attempts": 3})
... def reserve(order): ...
>>> @task(target="lambda:charge", compensate="lambda:refund", timeout_s=30)
... def charge(order, reservation): ...
>>> @flow(name="order", on_failure="compensate")
... def order(order):
...     r = reserve(order)
...     charge(order, r)  # uses reserve's result: charge needs reserve
>>> [(n["id"], n.get("needs")) for n in order.definition().document["nodes"]]
[('reserve', None), ('charge', ['reserve'])]

How a flow is recorded
----------------------
:meth:`Flow.definition` calls the flow function once, in this process, with a stand-in for the run
input. Inside it, calling a ``@task`` runs nothing: the call is recorded as a node, and it answers a
stand-in for that node's output. A node *needs* every node whose output is among its arguments, as
they are or nested in lists, tuples, sets and dicts, or subscripted (``r["id"]``). Node ids are the
task's name (``@task(id=...)``, else the function's name); a task called again gets ``_2``, ``_3``...
in call order. The arguments only say what a node needs: at run time every node receives the same
envelope as in YAML, ``{"input": <run input>, "deps": {<need>: <its output>}, "payload": ...}``;
static data goes in ``payload`` (``@task(payload=...)`` or per call ``task.options(payload=...)``).

What is refused, with the file and line
---------------------------------------
- A call of anything that is not a task from the flow function (a helper, a class, ``time.sleep``,
  ``open``): while the flow function runs, a profile hook stops any function it calls that is not a
  task, a function nested in the flow (a comprehension, a lambda), or a builtin that only computes
  (``len``, ``range``, ``sorted``, methods of lists, dicts and strings). Task bodies never run.
- A use of an output (or of the run input) that cannot be recorded: branching on it, comparing,
  iterating, arithmetic, formatting, ``len()``, calling it: its value only exists when the flow runs.
- A constant passed as an argument (it would never reach the task: use ``payload``), a flow calling
  a flow, an output recorded by another flow, a bad target or field (checked with the API's own
  model, so what passes here passes ``PUT /v1/workflows``).
- A cycle cannot be written: a call can only use outputs of calls made before it.

This is definition-time recording, not a security sandbox: the file's top-level code runs as any
import does, and the hook only guards calls made by the flow function itself. The platform only ever
receives the ordinary definition; no Python runs there.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from taskplane.domain.shorthand import target_from_shorthand
from taskplane.domain.workflow import NAME_PATTERN

F = TypeVar("F", bound=Callable[..., Any])
_NAME_RE = re.compile(NAME_PATTERN)
_UNSET: Any = object()
#: Builtins a flow may call: they compute from their arguments and touch nothing outside.
_PURE_BUILTINS = frozenset(
    "abs all any bool callable chr dict divmod enumerate filter float format frozenset hash hex "  # noqa: SIM905
    "int isinstance issubclass iter len list map max min next oct ord pow range repr reversed "
    "round set slice sorted str sum tuple zip".split()
)
#: Types whose methods a flow may call (``names.append(...)``, ``", ".join(...)``).
_VALUE_TYPES = (list, dict, str, tuple, set, frozenset, int, float, bool, bytes, range)


class FlowError(Exception):
    """A flow that cannot be recorded; ``file`` and ``line`` point at the statement at fault."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(f"{file}:{line}: {message}" if file else message)
        self.message = message
        self.file = file
        self.line = line


# -- where things are ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _caller(depth: int = 2) -> Location:
    """The file and line of the frame ``depth`` levels up (2: whoever called the caller)."""
    frame = sys._getframe(depth)
    return Location(frame.f_code.co_filename, frame.f_lineno)


def _fail(message: str, where: Location | None) -> FlowError:
    return FlowError(message, where.file if where else None, where.line if where else None)


# -- stand-ins for values that only exist when the flow runs -------------------------------------


class Value:
    """A stand-in for a node's output (or the run input) while a flow is recorded.

    It can be passed to tasks (as it is, nested in lists, tuples, sets and dicts, or subscripted);
    anything that needs its value (``if``, ``==``, ``for``, ``+``, ``str()``, ``len()``) raises
    :class:`FlowError`: the value only exists when the flow runs.
    """

    __slots__ = ("_node", "_path", "_recording")

    def __init__(self, recording: _Recording, node: str | None, path: str) -> None:
        object.__setattr__(self, "_recording", recording)
        object.__setattr__(self, "_node", node)  # None: the run input
        object.__setattr__(self, "_path", path)

    def __getitem__(self, key: Any) -> Value:
        if isinstance(key, Value) or not isinstance(key, str | int):
            raise _fail(f"{self._path}[...] needs a constant string or integer key", _caller())
        return Value(self._recording, self._node, f"{self._path}[{key!r}]")

    def __repr__(self) -> str:
        return f"<{self._path}: known when the flow runs>"

    def _refuse(self, what: str) -> FlowError:
        return _fail(
            f"{what} {self._path}: its value only exists when the flow runs, so it cannot be "
            "recorded; a flow can only pass it to tasks (as it is, in a list or dict, or subscripted). "
            "Decide inside a task instead, or use the workflow's on_failure and compensate",
            _caller(3),
        )

    def __bool__(self) -> bool:
        raise self._refuse("branching on (or testing the truth of)")

    def __eq__(self, other: object) -> bool:
        raise self._refuse("comparing")

    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__

    def __iter__(self) -> Iterator[Any]:
        raise self._refuse("iterating over")

    def __len__(self) -> int:
        raise self._refuse("taking len() of")

    def __contains__(self, item: object) -> bool:
        raise self._refuse("looking inside")

    def __str__(self) -> str:
        raise self._refuse("formatting")

    def __format__(self, spec: str) -> str:
        raise self._refuse("formatting")

    def __int__(self) -> int:
        raise self._refuse("converting")

    __float__ = __index__ = __int__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("calling")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # protocol probes (copy, pickle) see a plain object
        raise _fail(f"{self._path}.{name}: outputs are JSON; write {self._path}[{name!r}]", _caller())

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._refuse("changing")

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._refuse("changing")

    def _arith(self, other: Any) -> Any:
        raise self._refuse("computing with")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arith
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _arith
    __pow__ = __rpow__ = __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = _arith
    __neg__ = __pos__ = __abs__ = __invert__ = _arith


# -- tasks ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeOptions:
    """What a node of a task carries besides its needs (``None``: not set, the workflow's defaults)."""

    id: str | None = None
    target: dict[str, Any] | None = None
    compensate: dict[str, Any] | None = None
    payload: Any = _UNSET
    timeout_s: int | Literal["auto"] | None = None
    retry: dict[str, Any] | None = None
    auto_timeout: dict[str, Any] | None = None


def _target(value: Any, what: str, where: Location) -> dict[str, Any]:
    """A target from its shorthand (``lambda:charge``) or a mapping, checked with the API's model."""
    if isinstance(value, str):
        try:
            value = target_from_shorthand(value)
        except ValueError as exc:
            raise _fail(f"{what}: {exc}", where) from None
    if not isinstance(value, Mapping):
        raise _fail(f"{what} must be a shorthand such as 'lambda:charge' or a mapping, not {value!r}", where)
    from pydantic import TypeAdapter, ValidationError

    from taskplane.domain.models import Target

    try:
        TypeAdapter(Target).validate_python(dict(value))
    except ValidationError as exc:
        problem = exc.errors()[0]
        loc = ".".join(str(p) for p in problem["loc"][1:]) or "type"
        raise _fail(f"{what}: {loc}: {problem['msg']} (in {dict(value)!r})", where) from None
    try:
        return dict(json.loads(json.dumps(dict(value))))  # a copy, as written (the API fills in defaults)
    except (TypeError, ValueError) as exc:
        raise _fail(f"{what}: not JSON: {exc}", where) from None


def _options(where: Location, what: str, **given: Any) -> NodeOptions:
    """Check the options given to ``@task`` or ``.options()``, so an error points at them."""
    from pydantic import ValidationError

    from taskplane.domain.workflow import NodeSpec

    fields: dict[str, Any] = {}
    for name, value in given.items():
        if value is None or value is _UNSET:
            continue
        if name in ("target", "compensate"):
            fields[name] = _target(value, f"{what} {name}", where)
        elif name == "id" and (not isinstance(value, str) or not _NAME_RE.fullmatch(value)):
            raise _fail(
                f"{what} id {value!r}: 1-64 letters, digits, - and _, starting with a letter or digit", where
            )
        elif name == "payload":
            fields[name] = _static_json(value, f"{what} payload", where)
        elif name == "retry" and not isinstance(value, Mapping):
            raise _fail(f"{what} retry must be a mapping as in YAML, such as {{'max_attempts': 3}}", where)
        elif name == "auto_timeout" and not isinstance(value, Mapping):
            raise _fail(f"{what} auto_timeout must be a mapping as in YAML, such as {{'k': 3}}", where)
        else:
            fields[name] = dict(value) if name in ("retry", "auto_timeout") else value
    # The values against the node model itself, so what passes here passes PUT /v1/workflows.
    probe = {k: fields[k] for k in ("payload", "timeout_s", "retry", "auto_timeout") if k in fields}
    if "auto_timeout" in probe and "timeout_s" not in probe:
        probe["timeout_s"] = "auto"  # checked with the node's own; the defaults' is checked at put
    if probe:
        try:
            NodeSpec.model_validate({"id": "probe", "target": {"type": "builtin", "name": "echo"}, **probe})
        except ValidationError as exc:
            problem = exc.errors()[0]
            loc = ".".join(str(p) for p in problem["loc"])
            raise _fail(f"{what} {loc}: {problem['msg']}", where) from None
    return NodeOptions(**fields)


def _static_json(value: Any, what: str, where: Location) -> Any:
    """``value`` if it is JSON known now; an output or run input in it is refused with the reason."""

    def find(item: Any) -> Value | None:
        if isinstance(item, Value):
            return item
        if isinstance(item, dict) and any(not isinstance(k, str) for k in item):
            key = next(k for k in item if not isinstance(k, str))
            raise _fail(f"{what} is not JSON: the key {key!r} is not a string", where)
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list | tuple) else ()
        return next((v for v in (find(c) for c in children) if v is not None), None)

    found = find(value)
    if found is not None:
        raise _fail(
            f"{what} holds {found._path}, known only when the flow runs: a payload is static JSON; "
            "pass the output as an argument instead (it arrives in the node's deps)",
            where,
        )
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise _fail(f"{what} is not JSON: {exc}", where) from None


class Task(Generic[F]):
    """A target wrapped as a Python function; calling it inside a ``@flow`` records a node."""

    def __init__(self, fn: F, options: NodeOptions, where: Location, call_id: str | None = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.node = options
        self.where = where
        #: The node id one call asked for with ``.options(id=...)``: used as it is, never suffixed.
        self.call_id = call_id
        self.signature = inspect.signature(fn)
        self.name = options.id or fn.__name__
        if not _NAME_RE.fullmatch(self.name):
            raise _fail(
                f"task name {self.name!r} is not a valid node id (1-64 letters, digits, - and _, starting "
                "with a letter or digit): give one with @task(id=...)",
                where,
            )

    def __repr__(self) -> str:
        return f"<task {self.name} -> {self.node.target}>"

    def options(
        self,
        *,
        id: str | None = None,
        payload: Any = _UNSET,
        timeout_s: int | Literal["auto"] | None = None,
        retry: dict[str, Any] | None = None,
        compensate: Any = None,
        target: Any = None,
        auto_timeout: dict[str, Any] | None = None,
    ) -> Task[F]:
        """This task with other node options for one call: ``warm.options(payload={"shard": 3})(region)``.

        ``id`` names that call's node exactly (no ``_2`` suffix; a second node with it is an error).
        """
        where = _caller()
        given = _options(
            where,
            f"{self.name}.options():",
            id=id,
            payload=payload,
            timeout_s=timeout_s,
            retry=retry,
            compensate=compensate,
            target=target,
            auto_timeout=auto_timeout,
        )
        kept = {
            name: getattr(self.node, name) if getattr(given, name) in (None, _UNSET) else getattr(given, name)
            for name in ("target", "compensate", "payload", "timeout_s", "retry", "auto_timeout")
        }
        return Task(self.fn, NodeOptions(id=self.node.id, **kept), self.where, call_id=id or self.call_id)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        where = _caller()
        recording = _current.get()
        if recording is None:
            raise _fail(
                f"{self.name}() runs on the platform as a node of a workflow: call it inside a @flow "
                "function, and publish the flow (taskplane workflow put FILE.py)",
                where,
            )
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise _fail(f"{self.name}(): {exc}", where) from None
        return recording.record(self, bound.arguments, where)


def task(
    target: Any,
    *,
    compensate: Any = None,
    payload: Any = _UNSET,
    timeout_s: int | Literal["auto"] | None = None,
    retry: dict[str, Any] | None = None,
    id: str | None = None,
    auto_timeout: dict[str, Any] | None = None,
) -> Callable[[F], Task[F]]:
    """Declare a task: a function whose calls inside a ``@flow`` become workflow nodes.

    Parameters
    ----------
    target
        What the node runs: a shorthand (``"lambda:charge"``, ``"builtin:echo"``, ``"http:https://..."``,
        ``"sqs:QUEUE_URL"``, ``"eventbridge:BUS"``) or a target mapping as in YAML.
    compensate
        The Saga undo, a target like ``target``.
    payload
        Static JSON the node receives as ``payload`` (per call: ``.options(payload=...)``).
    timeout_s, retry, auto_timeout
        As a node's ``timeout_s`` (seconds or ``"auto"``), ``retry`` (with ``critical``,
        ``min_remaining_ms``, ``fallback``, ``breaker``) and ``auto_timeout`` in YAML; unset ones take
        the workflow's ``defaults``.
    id
        The node id (default: the function's name).

    The body never runs (it documents the task and gives its signature, which calls are checked
    against).
    """
    where = _caller()
    options = _options(
        where,
        "@task",
        id=id,
        target=target,
        compensate=compensate,
        payload=payload,
        timeout_s=timeout_s,
        retry=retry,
        auto_timeout=auto_timeout,
    )

    def wrap(fn: F) -> Task[F]:
        if isinstance(fn, Task | Flow) or not callable(fn):
            raise _fail(f"@task decorates a function, not {fn!r}", where)
        return Task(fn, options, where)

    return wrap


# -- recording -----------------------------------------------------------------------------------


@dataclass
class Node:
    """A recorded node and where its call is."""

    id: str
    task: Task[Any]
    needs: list[str]
    where: Location

    def document(self) -> dict[str, Any]:
        """The node as in YAML: only the fields that are set, in the README's order."""
        options = self.task.node
        out: dict[str, Any] = {"id": self.id}
        if self.needs:
            out["needs"] = list(self.needs)
        out["target"] = options.target
        if options.payload is not _UNSET:
            out["payload"] = options.payload
        if options.timeout_s is not None:
            out["timeout_s"] = options.timeout_s
        if options.auto_timeout is not None:
            out["auto_timeout"] = options.auto_timeout
        if options.retry is not None:
            out["retry"] = options.retry
        if options.compensate is not None:
            out["compensate"] = options.compensate
        return out


@dataclass
class _Recording:
    flow: Flow
    nodes: list[Node] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)
    #: The first call the guard refused, kept in case the flow function swallows the exception.
    refused: FlowError | None = None

    def record(self, task: Task[Any], arguments: Mapping[str, Any], where: Location) -> Value:
        needs: list[str] = []
        for name, value in arguments.items():
            self._collect(value, f"argument {name!r} of {task.name}()", needs, where)
        node_id = self._id(task, where)
        self.ids.add(node_id)
        self.nodes.append(Node(node_id, task, needs, where))
        return Value(self, node_id, f"the output of {node_id}")

    def _id(self, task: Task[Any], where: Location) -> str:
        if task.call_id:
            if task.call_id in self.ids:
                raise _fail(f"node id {task.call_id!r} is used twice in flow {self.flow.name!r}", where)
            return task.call_id
        count = self.calls.get(task.name, 0)
        while True:
            count += 1
            node_id = task.name if count == 1 else f"{task.name}_{count}"
            if node_id not in self.ids:
                break
        self.calls[task.name] = count
        if not _NAME_RE.fullmatch(node_id):
            raise _fail(
                f"node id {node_id!r} is longer than 64 characters: give the task a shorter id", where
            )
        return node_id

    def _collect(self, value: Any, what: str, needs: list[str], where: Location) -> None:
        if isinstance(value, Value):
            if value._recording is not self:
                raise _fail(
                    f"{what} is {value._path}, recorded by another flow (or another definition)", where
                )
            if value._node is not None and value._node not in needs:
                needs.append(value._node)
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                self._collect(item, what, needs, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, Value):
                    raise _fail(f"{what} uses {key._path} as a dict key; outputs can only be values", where)
                self._collect(item, what, needs, where)
        elif isinstance(value, Task | Flow):
            raise _fail(f"{what} is the task {value.name} itself, not its output: call it", where)
        else:
            raise _fail(
                f"{what} is the constant {value!r}: arguments only say which outputs a node needs, and "
                "every node receives the run input and its needs' outputs; give static data as "
                "payload (@task(payload=...) or .options(payload=...))",
                where,
            )


_current: ContextVar[_Recording | None] = ContextVar("taskplane_flow_recording", default=None)


def _nested_codes(code: types.CodeType) -> set[types.CodeType]:
    """``code`` and every code object defined inside it (comprehensions, lambdas, inner functions)."""
    found = {code}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _nested_codes(const)
    return found


@contextmanager
def _guard(recording: _Recording, fn: Callable[..., Any]) -> Iterator[None]:
    """While the flow function runs, refuse any call it makes to something that is not a task."""
    allowed = _nested_codes(fn.__code__)
    here = __name__

    def profile(frame: types.FrameType, event: str, arg: Any) -> None:
        caller = frame if event.startswith("c_") else frame.f_back
        if caller is None or caller.f_code not in allowed or event in ("return", "c_return", "c_exception"):
            return
        if event == "call":
            if frame.f_code in allowed or frame.f_globals.get("__name__") == here:
                return
            name = frame.f_code.co_qualname
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, _VALUE_TYPES) or (
                getattr(owner, "__name__", None) == "builtins" and arg.__name__ in _PURE_BUILTINS
            ):
                return
            module = getattr(owner, "__name__", None) or type(owner).__name__
            name = f"{module}.{arg.__name__}" if module != "builtins" else arg.__name__
        else:
            return
        refused = FlowError(
            f"flow {recording.flow.name!r} calls {name}(), which is not a @task: a flow only calls "
            "tasks (the call was stopped before it ran; compute inside a task instead)",
            caller.f_code.co_filename,
            caller.f_lineno,
        )
        recording.refused = recording.refused or refused
        raise refused

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


# -- flows ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """A recorded flow: the workflow document as YAML gives it, and where each node was called."""

    name: str
    document: dict[str, Any]
    locations: dict[str, Location]

    def yaml(self) -> str:
        """The definition as the YAML that ``taskplane workflow put`` sends."""
        import yaml

        class Dumper(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True  # a target shared by several nodes is written out at each

        def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
            # PyYAML writes NEL and the Unicode line and paragraph separators unquoted, and reads them
            # back as spaces: quote (and so escape) a string that holds one.
            style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, text)
        return yaml.dump(self.document, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=100)

    def where(self, node: str | None) -> Location | None:
        return self.locations.get(node) if node else None


class Flow:
    """A function whose task calls describe a workflow; see the module notes."""

    def __init__(self, fn: Callable[..., Any], name: str, fields: dict[str, Any], where: Location) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self.fields = fields
        self.where = where

    def __repr__(self) -> str:
        return f"<flow {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _fail(
            f"flow {self.name!r} is a workflow definition, not something to call: publish it "
            "(taskplane workflow put FILE.py, or client.put_flow(...)) and start runs of it",
            _caller(),
        )

    def definition(self) -> Definition:
        """Record the flow (see the module notes) and check it as ``PUT /v1/workflows`` would.

        Raises
        ------
        FlowError
            With the file and line of the statement at fault.
        """
        if _current.get() is not None:
            raise _fail(
                f"flow {self.name!r} is called inside another flow; a flow only calls tasks", _caller()
            )
        recording = _Recording(self)
        token = _current.set(recording)
        try:
            with _guard(recording, self.fn):
                arguments = [Value(recording, None, "the run input")] if self._takes_input() else []
                try:
                    self.fn(*arguments)
                except FlowError:
                    raise
                except Exception as exc:
                    raise recording.refused or _fail(
                        f"flow {self.name!r} raised {type(exc).__name__}: {exc}",
                        _traceback_line(exc, self.fn),
                    ) from exc
        finally:
            _current.reset(token)
        if recording.refused:
            raise recording.refused  # refused, then swallowed by the flow function's own try/except
        if not recording.nodes:
            raise _fail(f"flow {self.name!r} calls no task: a workflow needs at least one node", self.where)
        document = {**self._header(), "nodes": [n.document() for n in recording.nodes]}
        definition = Definition(self.name, document, {n.id: n.where for n in recording.nodes})
        _check(definition, self.where)
        return definition

    def _takes_input(self) -> bool:
        params = list(inspect.signature(self.fn).parameters.values())
        return bool(params)

    def _header(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("description", "timeout_s", "defaults", "on_failure"):
            if self.fields.get(key) is not None:
                out[key] = self.fields[key]
        return out


def _traceback_line(exc: BaseException, fn: Callable[..., Any]) -> Location | None:
    """The innermost line of the flow function in ``exc``'s traceback."""
    codes = _nested_codes(fn.__code__)
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            found = Location(tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _check(definition: Definition, where: Location) -> None:
    """The API's own checks, with the node's call as the place to look."""
    from taskplane.domain.errors import InvalidRequest
    from taskplane.domain.workflow import parse_workflow

    try:
        parse_workflow(definition.document, name=definition.name)
    except InvalidRequest as exc:
        detail = exc.details[0] if exc.details else {}
        raise _fail(exc.message, definition.where(detail.get("node")) or where) from None


def flow(
    name: str | None = None,
    *,
    description: str | None = None,
    timeout_s: int | None = None,
    defaults: dict[str, Any] | None = None,
    on_failure: str | None = None,
) -> Callable[[Callable[..., Any]], Flow]:
    """Declare a workflow by calling tasks; ``taskplane workflow put FILE.py`` publishes it.

    Parameters
    ----------
    name
        The workflow's name (default: the function's name).
    description
        Default: the first paragraph of the function's docstring.
    timeout_s, defaults, on_failure
        As in the workflow YAML (``defaults``: ``{"timeout_s": ..., "retry": {...}}``; ``on_failure``:
        ``"compensate"`` or ``"stop"``).

    The function takes the run input as its one argument (or none) and is called once, when the
    flow is published, with tasks replaced by recorders (see the module notes).
    """
    where = _caller()
    if callable(name):  # @flow without parentheses
        return _decorate(name, None, {}, where)
    fields = {
        "description": description,
        "timeout_s": timeout_s,
        "defaults": defaults,
        "on_failure": on_failure,
    }
    return lambda fn: _decorate(fn, name, fields, where)


def _decorate(fn: Any, name: str | None, fields: dict[str, Any], where: Location) -> Flow:
    if isinstance(fn, Task | Flow) or not inspect.isfunction(fn):
        raise _fail(f"@flow decorates a function, not {fn!r}", where)
    if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
        raise _fail("a flow is a plain def: it is called once to record its task calls", where)
    params = [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
    if len(params) > 1 or any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
        raise _fail(f"flow {fn.__name__!r} takes one argument, the run input (or none)", where)
    flow_name = name or fn.__name__
    if not isinstance(flow_name, str) or not _NAME_RE.fullmatch(flow_name):
        raise _fail(
            f"workflow name {flow_name!r}: 1-64 letters, digits, - and _, starting with a letter or digit; "
            "give one with @flow(name=...)",
            where,
        )
    fields = dict(fields)
    if fields.get("description") is None:
        fields["description"] = _first_paragraph(inspect.getdoc(fn))
    _check_header(flow_name, fields, where)
    return Flow(fn, flow_name, fields, where)


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _check_header(name: str, fields: dict[str, Any], where: Location) -> None:
    """The workflow-level fields against the API's model, so an error points at ``@flow``."""
    from pydantic import ValidationError

    from taskplane.domain.workflow import WorkflowSpec

    document = {k: v for k, v in fields.items() if v is not None}
    try:
        WorkflowSpec.model_validate(
            {"name": name, **document, "nodes": [{"id": "x", "target": {"type": "builtin", "name": "echo"}}]}
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        loc = ".".join(str(p) for p in problem["loc"])
        raise _fail(f"@flow {loc}: {problem['msg']}", where) from None


# -- files -----------------------------------------------------------------------------------------


def flows_in(path: str) -> list[Flow]:
    """Every ``@flow`` defined in a Python file, in the order the file defines them.

    The file is imported (its top-level code runs, as with any import) under a private module name,
    with its folder on ``sys.path`` for the time of the import so that it can import its neighbours.

    Raises
    ------
    FlowError
        The file cannot be imported (with the line of the error), or defines no flow.
    """
    import importlib.util
    from pathlib import Path

    file = Path(path).resolve()
    module_name = f"taskplane_flows_{abs(hash(str(file)))}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise FlowError(f"cannot load {path} as Python", path, 1)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except FlowError:
        raise
    except SyntaxError as exc:
        raise FlowError(f"{exc.msg}", exc.filename or path, exc.lineno or 1) from None
    except Exception as exc:
        line = _import_line(exc, str(file))
        raise FlowError(f"importing the file raised {type(exc).__name__}: {exc}", path, line) from exc
    finally:
        sys.path.remove(str(file.parent))
        sys.modules.pop(module_name, None)
    found = [v for v in vars(module).values() if isinstance(v, Flow) and _defined_in(v, file)]
    if not found:
        raise FlowError("the file defines no @flow", path, 1)
    return sorted(found, key=lambda f: f.where.line)


def _defined_in(item: Flow, file: Any) -> bool:
    from pathlib import Path

    return Path(item.fn.__code__.co_filename).resolve() == file


def _import_line(exc: BaseException, file: str) -> int:
    line = 1
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == file:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def as_flow(value: Any) -> Flow:
    """``value`` if it is a ``@flow``, else TypeError saying what it is."""
    if not isinstance(value, Flow):
        raise TypeError(f"expected a @flow (taskplane.flow.flow), got {value!r}")
    return value


__all__ = ["Definition", "Flow", "FlowError", "Task", "Value", "as_flow", "flow", "flows_in", "task"]
