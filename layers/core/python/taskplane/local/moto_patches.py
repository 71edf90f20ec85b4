"""Patches that make moto behave like AWS where the platform depends on it, and run faster (local mode only).

1. **Atomic conditional writes.** moto checks a ConditionExpression and then writes, with nothing in
   between to stop another thread: two threads could both pass ``state = PENDING`` and both start the
   same attempt. DynamoDB never allows that, and the at-most-once start depends on it, so moto's
   DynamoDB writes run under one lock. So does every DynamoDB request as a whole: moto applies an
   UpdateItem to the stored item in place while another thread may be serializing that item for a
   read, which then sees half a write or crashes ("dictionary changed size during iteration", seen
   under load in test_backpressure.py). The lock was taken for whole requests by the workflow
   patches only (``local/workflows.py``); every moto user needs it.
2. **Cheaper queue scans.** moto answers every SQS call by scanning the whole queue and reads the
   clock twice per message while doing it (NOTES-AWS-LOCAL.md: a send+receive pair at depth 1,000
   ran ~1/s). The same scan with the clock read once per call gives the same answer, much faster.

7. **No message lost to a concurrent delete.** moto's ``Queue.delete_message`` rebuilds the queue's
   message list and assigns it back without the lock that ``add_message`` appends under, so a
   message appended by another thread in between is dropped. Deletes now hold the queue's own lock.
   (Found while chasing 31 of 10,000 tasks left PENDING with an empty queue in a ``taskplane dev``
   run; a stress test of sends racing deletes did not reproduce the loss without this patch.)

The rest make moto's per-request work cheaper without changing any answer. Issue 7: py-spy (GIL
holders only) on ``bench/local_throughput.py`` found ~78% of the process's Python time inside moto,
much of it re-doing work whose result depends only on an expression's text or a class. Together 3-6
took a task transition's UpdateItem from 5.7 to 4.4 ms of CPU (boto3 client side included):

3. **Update expressions parsed once.** moto parses an UpdateExpression twice per UpdateItem (the
   handler, then the backend; ~0.6 ms each; gain 0.7 ms per UpdateItem). The parse depends only on
   the text, so the tree is kept per text. Sharing it is safe: the handler only reads it
   (``find_clauses``), and the validator copies it before changing anything.
4. **A cheaper copy of that tree.** moto's validator ``deepcopy``s the tree (~0.35 ms for a task
   transition's: the generic copier, parent links and metaclass checks). The same copy, node by node
   with the parent links rebuilt, costs a fifth of that (gain 0.15 ms); anything else is still copied
   by ``deepcopy``.
5. **Condition expressions lexed once.** moto lexes a ConditionExpression twice per conditional write
   (~0.2 ms each, gain 0.3 ms) with a list of regular expressions. The tokens depend only on the
   text (immutable tuples); names and values are still resolved on every call, after lexing.
6. **A response class's action names listed once.** Every moto request lists its handler class's
   methods with ``inspect.getmembers`` to see whether the action exists. The list is kept per class,
   and listed again if the class gains or loses an attribute (a test patching a handler).

8. **State machine versions can be listed and deleted.** moto has neither ``ListStateMachineVersions``
   nor ``DeleteStateMachineVersion`` (the API prunes old versions: Step Functions keeps at most 1,000
   per machine). Both are added as AWS documents them: newest first; a version an alias routes to
   cannot be deleted (``ConflictException``); a deleted version starts no execution.

9. **A table Query reads its partition only.** moto answers a Query on a table (no index) by listing
   and sorting every item of the table, then keeping the partition's: a tick's reads of one wheel
   slot cost in proportion to the whole wheel (10,000 entries in flight made each read ~50 ms). The
   Query now sees only the partition's items (what it kept anyway, then sorted by range key as
   before); a Query on an index is unchanged.

10. **A receive does not crash on another thread's receive.** moto's ``ReceiveMessage`` starts by
    collecting the group ids of the queue's in-flight messages, iterating the set that every other
    receive and delete of the queue adds to and removes from: under concurrent receivers it raises
    "Set changed size during iteration" (seen in ``bench/cost.py``'s event-source-mapping loop). It now
    iterates a copy (one C-level copy under the GIL); the answer is the same.

All are applied by the local runtime and the tests (never by Lambda code); moto is imported here
lazily, never at import.
"""

from __future__ import annotations

import functools
import importlib
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")
#: Parsed expressions kept per text; a runaway set of distinct texts just stops being cached.
_CACHE_LIMIT = 4096
_applied = False


def apply() -> None:
    """Apply every patch (idempotent)."""
    global _applied
    if _applied:
        return
    _make_dynamodb_atomic()
    _make_queue_scans_cheap()
    _make_queue_deletes_atomic()
    _parse_update_expressions_once()
    _copy_parse_trees_cheaply()
    _lex_condition_expressions_once()
    _list_action_names_once()
    _state_machine_versions()
    _query_one_partition()
    _snapshot_pending_groups()
    _applied = True


def _make_dynamodb_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    handle = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _LOCK:
            return handle(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]

    for name in _WRITES:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))


def _make_queue_deletes_atomic() -> None:
    from moto.sqs.models import Queue

    original = Queue.delete_message

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:  # the Condition add_message appends under (an RLock inside)
            original(self, receipt_handle)

    Queue.delete_message = functools.wraps(original)(delete_message)  # type: ignore[method-assign]


def _snapshot_pending_groups() -> None:
    from moto.sqs.models import Queue

    def pending_message_groups(self: Any) -> set[str]:
        pending = self._pending_messages.copy()  # another thread's receive or delete may change it
        return {message.group_id for message in pending if message.group_id is not None}

    Queue.pending_message_groups = property(pending_message_groups)  # type: ignore[assignment,method-assign]


def _make_queue_scans_cheap() -> None:
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    def messages(self: Any) -> list[Any]:
        # moto's own rule (visible and not delayed), with one clock reading for the whole scan.
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now <= m.visible_at)

    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_not_visible = property(not_visible)  # type: ignore[method-assign,assignment]
    Queue.approximate_number_of_messages_delayed = property(delayed)  # type: ignore[method-assign,assignment]


def _parse_update_expressions_once() -> None:
    parser = _moto("moto.dynamodb.parsing.expressions", "UpdateExpressionParser")
    original = parser.make.__func__
    parsed: dict[str, Any] = {}

    def make(cls: Any, expression_str: str) -> Any:
        tree = parsed.get(expression_str)
        if tree is None:
            tree = original(cls, expression_str)  # an invalid expression raises, and is not kept
            if len(parsed) < _CACHE_LIMIT:
                parsed[expression_str] = tree
        return tree

    parser.make = classmethod(make)


_NODE_TYPES: dict[type, bool] = {}


def _moto(module: str, name: str) -> Any:
    """A name from one of moto's untyped modules (typed as Any here)."""
    return getattr(importlib.import_module(module), name)


def copy_tree(node: Any) -> Any:
    """``copy.deepcopy`` of a moto DynamoDB parse tree (root without a parent), node by node.

    Nodes are copied with their attributes; ``parent`` links point into the copy; children and
    attributes that are not nodes are shared when immutable (str, int, ...) and deep-copied otherwise.
    """
    import copy

    node_class = _moto("moto.dynamodb.parsing.ast_nodes", "Node")
    immutable = {str, int, float, bool, type(None)}
    is_node = _NODE_TYPES  # type -> subclass of Node? (isinstance on moto's ABCMeta Node is slow)

    def copy_value(value: Any, parent: Any) -> Any:
        kind = type(value)
        if kind in immutable:
            return value
        node = is_node.get(kind)
        if node is None:
            node = is_node[kind] = issubclass(kind, node_class)
        return copy_node(value, parent) if node else copy.deepcopy(value)

    def copy_node(source: Any, parent: Any) -> Any:
        target = object.__new__(type(source))
        attrs = target.__dict__
        for name, value in source.__dict__.items():
            if name == "parent":
                attrs[name] = parent
            elif name == "children" and type(value) is list:
                attrs[name] = [copy_value(c, target) for c in value]
            elif type(value) in immutable:
                attrs[name] = value
            elif isinstance(value, node_class):
                raise _NotATree  # a node held outside ``children``: leave it to deepcopy
            else:
                attrs[name] = copy.deepcopy(value)
        return target

    try:
        return copy_node(node, None)
    except _NotATree:
        return copy.deepcopy(node)


class _NotATree(Exception):
    pass


def _copy_parse_trees_cheaply() -> None:
    import copy

    validators: Any = importlib.import_module("moto.dynamodb.parsing.validators")
    node_class = _moto("moto.dynamodb.parsing.ast_nodes", "Node")

    def deepcopy(value: Any, memo: Any = None) -> Any:
        if isinstance(value, node_class) and value.parent is None and memo is None:
            return copy_tree(value)
        return copy.deepcopy(value, memo)

    validators.deepcopy = deepcopy  # the name validators.py copies with


def _lex_condition_expressions_once() -> None:
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = ConditionExpressionParser._lex_condition_expression
    lexed: dict[str, tuple[Any, ...]] = {}

    def lex(self: Any) -> Any:
        text = self.condition_expression
        tokens = lexed.get(text)
        if tokens is None:
            tokens = tuple(original(self))  # a lexing error raises, and is not kept
            if len(lexed) < _CACHE_LIMIT:
                lexed[text] = tokens
        return deque(tokens)  # the parser consumes its deque; the tokens are immutable namedtuples

    ConditionExpressionParser._lex_condition_expression = lex  # type: ignore[method-assign]


def _list_action_names_once() -> None:
    responses: Any = importlib.import_module("moto.core.responses")
    original = responses.method_names_from_class
    listed: dict[type, tuple[tuple[int, ...], list[str]]] = {}

    def method_names_from_class(clazz: Any) -> list[str]:
        shape = tuple(len(c.__dict__) for c in clazz.__mro__)
        known = listed.get(clazz)
        if known is None or known[0] != shape:
            known = listed[clazz] = (shape, original(clazz))
        return known[1]

    responses.method_names_from_class = method_names_from_class


def _query_one_partition() -> None:
    table_module: Any = importlib.import_module("moto.dynamodb.models.table")
    table_class = table_module.Table
    original = table_class.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or not self.range_key_attr or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        partition = list(self.items.get(hash_key, {}).values())
        # (every DynamoDB request runs under _LOCK: patch 1; the instance attribute shadows the method
        # for this call only)
        with _LOCK:
            self.all_items = lambda: partition
            try:
                return original(self, hash_key, *args, **kwargs)
            finally:
                del self.all_items

    table_class.query = query


def queue_waiter(queue_url: str, region: str = "us-east-1") -> Any:
    """A function that blocks until moto's queue may hold a visible message, or a timeout passes.

    The local poller's stand-in for long polling: moto's own long poll returns only when its full
    wait is over, even with messages in hand; its queue's condition variable wakes at once on a send.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[DEFAULT_ACCOUNT_ID][region].get_queue(queue_url.rsplit("/", 1)[-1])

    def wait(timeout_s: float) -> None:
        queue.wait_for_messages(timeout_s)  # type: ignore[arg-type]  # a float works: Condition.wait_for

    return wait


def _state_machine_versions() -> None:
    models: Any = importlib.import_module("moto.stepfunctions.models")
    responses: Any = importlib.import_module("moto.stepfunctions.responses")
    exceptions: Any = importlib.import_module("moto.stepfunctions.exceptions")
    backend_class = models.StepFunctionBackend

    def machine(backend: Any, arn: str) -> Any:
        found = next((m for m in backend.state_machines if m.arn == arn), None)
        if found is None:
            raise exceptions.StateMachineDoesNotExist(f"State Machine Does Not Exist: '{arn}'")
        return found

    def list_state_machine_versions(self: Any, arn: str) -> list[Any]:
        return sorted(machine(self, arn).versions.values(), key=lambda v: v.version, reverse=True)

    def delete_state_machine_version(self: Any, version_arn: str) -> None:
        source_arn, _, number = version_arn.rpartition(":")
        if not number.isdigit():
            raise exceptions.ValidationException(f"not a version ARN: '{version_arn}'")
        found = next((m for m in self.state_machines if m.arn == source_arn), None)
        if found is None or int(number) not in found.versions:
            return  # AWS answers 200 for a version that is already gone
        for alias in found.aliases.values():
            if any(r["stateMachineVersionArn"] == version_arn for r in alias.routing_configuration):
                raise exceptions.ConflictException(
                    f"Version to be deleted must not be referenced by an alias. Current list of aliases "
                    f"referencing this version: [{alias.arn}]"
                )
        del found.versions[int(number)]

    def list_versions_response(self: Any) -> Any:
        versions = self.stepfunction_backend.list_state_machine_versions(self._get_param("stateMachineArn"))
        limit = self._get_int_param("maxResults") or 1000
        start = int(self._get_param("nextToken") or 0)
        page = versions[start : start + limit]
        body: dict[str, Any] = {
            "stateMachineVersions": [
                {"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in page
            ]
        }
        if start + limit < len(versions):
            body["nextToken"] = str(start + limit)
        return responses.ActionResult(body)

    def delete_version_response(self: Any) -> Any:
        self.stepfunction_backend.delete_state_machine_version(self._get_param("stateMachineVersionArn"))
        return responses.EmptyResult()

    if not hasattr(exceptions, "ConflictException"):

        class ConflictException(exceptions.StepFunctionsException):
            code = "ConflictException"

        exceptions.ConflictException = ConflictException
    backend_class.list_state_machine_versions = list_state_machine_versions
    backend_class.delete_state_machine_version = delete_state_machine_version
    responses.StepFunctionResponse.list_state_machine_versions = list_versions_response
    responses.StepFunctionResponse.delete_state_machine_version = delete_version_response
