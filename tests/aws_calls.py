"""Record every boto3 call the tests make, and which platform function made it (a pytest plugin).

On when ``TASKPLANE_RECORD_AWS_CALLS`` names a folder (``make test`` sets it); each pytest process
writes ``calls-<worker>.json`` there when its session ends, and ``tests/iam`` checks the calls
against the synthesized roles (REVIEW-METHODS.md, method 4: moto enforces no IAM).

A call is heard through botocore's ``before-parameter-build`` event of every client (the call's own
parameters: ``before-call`` sees them already serialized for the wire). It belongs to the function
whose code made it: the outermost ``functions/<name>/handler.py`` frame on the stack or, for tests
that call a use case directly, the outermost service frame (the tick's ``Ticker`` is the tick, the
worker's ``Executor`` the worker, ``StepService`` the step function, the API's use cases the api).
Work handed to a thread (a thread pool's, or a heartbeat's) carries the function that handed it.
Calls no function made (a fixture creating tables, a test reading a queue) are counted, not checked.
A DynamoDB call also keeps the partition keys it names (:func:`leading_keys`: what AWS evaluates as
``dynamodb:LeadingKeys``), so the check sees which item kinds each function reaches.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "TASKPLANE_RECORD_AWS_CALLS"

_HANDLER = re.compile(r"functions[/\\](api|worker|tick|step)[/\\]handler\.py$")
#: (file suffix, qualified-name prefix or "", function), the outermost match wins.
_SERVICES = [
    (("services", "tick.py"), "", "tick"),
    (("services", "execute.py"), "", "worker"),
    (("services", "holds.py"), "", "worker"),
    (("services", "breakers.py"), "", "worker"),
    (("services", "workflows.py"), "StepService", "step"),
    (("services", "workflows.py"), "WorkflowService", "api"),
    (("services", "tasks.py"), "", "api"),
    (("services", "schedules.py"), "", "api"),
    (("services", "dead_letters.py"), "", "api"),
    (("services", "admission.py"), "", "api"),
    (("services", "stats.py"), "", "api"),
    (("services", "triggers.py"), "", "api"),
    (("services", "trigger_dead_letters.py"), "", "api"),
]
_TARGETS = ("adapters", "targets.py")
#: The function a piece of work handed to another thread belongs to.
_carried: contextvars.ContextVar[tuple[str | None, bool]] = contextvars.ContextVar(
    "carried", default=(None, False)
)

#: Request parameters that name what a call acts on (the resource of its IAM action).
RESOURCE_PARAMS = (
    "TableName",
    "RequestItems",
    "TransactItems",
    "QueueUrl",
    "FunctionName",
    "Qualifier",
    "stateMachineArn",
    "stateMachineVersionArn",
    "stateMachineAliasArn",
    "executionArn",
    "roleArn",
    "routingConfiguration",
    "Name",
    "name",
    "Rule",
    "EventBusName",
    "Entries",
    "Bucket",
    "Key",
    "CopySource",
)


#: The names the tables' partition keys have (infra/capabilities/storage.py TABLES; tests/iam checks
#: that every table's partition key is one of them).
PARTITION_KEYS = ("pk", "id")
_KEY_EQUALS = re.compile(r"(#?[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(:[A-Za-z0-9_]+)")


def _partition(item: dict[str, Any]) -> str | None:
    """The partition key value of a ``Key`` or ``Item`` (a string key: every table's is one)."""
    for name in PARTITION_KEYS:
        if name in item:
            value = item[name]
            return str(value.get("S", value)) if isinstance(value, dict) else str(value)
    return None


def _query_partition(params: dict[str, Any]) -> str | None:
    """The partition key value a Query's key condition names (``pk = :p``)."""
    names = params.get("ExpressionAttributeNames") or {}
    values = params.get("ExpressionAttributeValues") or {}
    for name, placeholder in _KEY_EQUALS.findall(params.get("KeyConditionExpression", "")):
        if names.get(name, name) in PARTITION_KEYS and placeholder in values:
            return _partition({"pk": values[placeholder]})
    return None


def _written(request: dict[str, Any]) -> dict[str, Any]:
    """The item or key of one BatchWriteItem request."""
    put, delete = request.get("PutRequest") or {}, request.get("DeleteRequest") or {}
    return put.get("Item") or delete.get("Key") or {}


def leading_keys(operation: str, params: dict[str, Any]) -> Any:
    """The values AWS puts in ``dynamodb:LeadingKeys`` for a DynamoDB call (None: no item named).

    A single-item call or a Query: the sorted partition keys it names; a batch: per table; a
    transaction: per item, in order (each item is authorized on its own).
    """
    if operation in ("GetItem", "DeleteItem", "UpdateItem"):
        found = _partition(params.get("Key") or {})
        return None if found is None else [found]
    if operation == "PutItem":
        found = _partition(params.get("Item") or {})
        return None if found is None else [found]
    if operation == "Query":
        found = _query_partition(params)
        return None if found is None else [found]
    if operation == "BatchWriteItem":
        return {
            table: sorted({str(_partition(_written(r))) for r in requests})
            for table, requests in params.get("RequestItems", {}).items()
        }
    if operation == "BatchGetItem":
        return {
            table: sorted({str(_partition(k)) for k in body.get("Keys", [])})
            for table, body in params.get("RequestItems", {}).items()
        }
    if operation == "TransactWriteItems":
        return [
            str(_partition(body.get("Key") or body.get("Item") or {}))
            for item in params.get("TransactItems", [])
            for body in item.values()
        ]
    return None


def _ends(filename: str, parts: tuple[str, str]) -> bool:
    return filename.replace("\\", "/").endswith("/".join(parts))


_TESTS = re.compile(r"[/\\]tests[/\\]")
_MOTO = re.compile(r"[/\\]moto[/\\]")


def attribute(frame: Any) -> tuple[str | None, bool]:
    """(the function whose code is running, whether a task target's runner made the call).

    The stack is read from the call outwards up to the first frame of test code: a test's callback
    that the tick's simulated clock runs (a submission, a drain) is the test's, not the tick's.
    """
    function, target = None, False
    while frame is not None:
        code = frame.f_code
        if _TESTS.search(code.co_filename) and not _HANDLER.search(code.co_filename):
            break
        match = _HANDLER.search(code.co_filename)
        if match:
            function = match.group(1)
        else:
            for parts, qualname, name in _SERVICES:
                if _ends(code.co_filename, parts) and code.co_qualname.startswith(qualname):
                    function = name
                    break
        if _ends(code.co_filename, _TARGETS):
            target = True
        frame = frame.f_back
    if function is None:
        carried, carried_target = _carried.get()
        return carried, target or carried_target
    return function, target


def _resource_params(params: dict[str, Any], operation: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in RESOURCE_PARAMS:
        if key not in params:
            continue
        value = params[key]
        if key == "RequestItems":
            value = sorted(value)
        elif key == "TransactItems":  # in order: leading_keys answers one partition key per item
            value = [(kind, body["TableName"]) for item in value for kind, body in item.items()]
        elif key == "routingConfiguration":
            value = sorted(r["stateMachineVersionArn"] for r in value)
        elif key == "Entries":
            if not any(isinstance(e, dict) and "DetailType" in e for e in value):
                continue  # SQS batch entries name no resource
            value = sorted({str(e.get("EventBusName", "default")) for e in value if isinstance(e, dict)})
        found[key] = value
    if params.get("Tagging"):
        found["Tagging"] = True
    if "loggingConfiguration" in params:
        found["logging"] = True
    if params.get("tags"):
        found["tags"] = True
    if params.get("publish"):
        found["publish"] = True
    if "TableName" in params or "RequestItems" in params or "TransactItems" in params:
        keys = leading_keys(operation, params)
        if keys is not None:
            found["LeadingKeys"] = keys
    return found


class Recorder:
    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def heard(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        function, target = attribute(sys._getframe(1))
        call = {
            "function": function,
            "target": target,
            "service": model.service_model.service_name,
            "signing": model.service_model.signing_name,
            "operation": model.name,
            "params": _resource_params(params, model.name),
        }
        key = json.dumps(call, sort_keys=True, default=str)
        with self.lock:
            # (the first test that made it, to find it again)
            test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
            entry = self.calls.setdefault(key, {**call, "count": 0, "test": test})
            entry["count"] += 1

    def dump(self, folder: Path, worker: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with self.lock:
            calls = list(self.calls.values())
        (folder / f"calls-{worker}.json").write_text(json.dumps(calls, default=str))


def install(recorder: Recorder) -> Callable[[], None]:
    """Hear every client's calls, and carry attributions into threads. Answers the undo."""
    import concurrent.futures

    from botocore.client import BaseClient

    original_init = BaseClient.__init__
    original_submit = concurrent.futures.ThreadPoolExecutor.submit
    original_start = threading.Thread.start

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.meta.events.register("before-parameter-build.*.*", recorder.heard)

    def carried_from(frame: Any) -> tuple[str | None, bool]:
        # Threads moto starts (its Step Functions executor) act for AWS, not for the caller.
        return (None, False) if _MOTO.search(frame.f_code.co_filename) else attribute(frame)

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        carried = carried_from(sys._getframe(1))
        context = contextvars.copy_context()

        def run() -> Any:
            _carried.set(carried)
            return fn(*args, **kwargs)

        return original_submit(self, context.run, run)

    def start(self: Any) -> None:
        carried = carried_from(sys._getframe(1))
        run = self.run

        def carrying() -> None:
            _carried.set(carried)
            run()

        self.run = carrying
        original_start(self)

    BaseClient.__init__ = init  # type: ignore[method-assign]
    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
    threading.Thread.start = start  # type: ignore[method-assign]

    def undo() -> None:
        BaseClient.__init__ = original_init  # type: ignore[method-assign]
        concurrent.futures.ThreadPoolExecutor.submit = original_submit  # type: ignore[method-assign]
        threading.Thread.start = original_start  # type: ignore[method-assign]

    return undo


_state: dict[str, Any] = {}


def pytest_configure(config: Any) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    recorder = Recorder()
    _state.update(recorder=recorder, undo=install(recorder), folder=Path(folder))


def pytest_sessionfinish(session: Any) -> None:
    if "recorder" not in _state:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _state["recorder"].dump(_state["folder"], worker)
    _state["undo"]()
