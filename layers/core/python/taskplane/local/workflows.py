"""Workflows on moto: its Step Functions executor, three fixes, and the step function in-process.

moto runs ASL when ``mock_aws(config=MOCK_CONFIG)`` asks it to. Five things it does unlike AWS,
each fixed here for the local runtime and the tests only (NOTES-AWS-LOCAL.md has the background):

1. **Versions cannot run.** ``StartExecution`` on a version ARN (``...:stateMachine:name:3``) fails,
   and an execution kept on a version would be invisible to ``DescribeExecution`` and
   ``SendTaskSuccess``. Here a version ARN runs that version's definition, and the execution is kept
   on its state machine, as in AWS.
2. **``States.*`` errors crash Parallel and Map.** A branch that fails with ``States.Timeout`` (a
   task or callback timeout) makes moto raise while naming the error, so the Parallel's Catch
   never sees it and the execution fails with ``States.Runtime``. Here such errors propagate with
   their names, so Catch and Retry match them as in AWS.
3. **Every Lambda task builds a new boto3 client** (~20 ms, most of a task's cost in moto). Here the
   client is made once per region and endpoint and shared (boto3 clients are thread-safe).
4. **A DynamoDB Query reads and sorts the whole table** to find one partition (26 ms per Query at
   2,000 items, and the run ledger grows with every run). Here a Query on a table's own key looks at
   its partition only; the answer is the same.
5. **A read can see half a write.** moto applies an UpdateItem to the stored item in place, one
   attribute at a time, while another thread may be serializing that item for a Query (seen as a
   node ``SUCCEEDED`` without its ``finished_at``, or a read that crashes with "dictionary changed
   size during iteration" under load). DynamoDB never shows a partial write; here every DynamoDB
   request runs under the lock of :mod:`taskplane.local.moto_patches` (which every moto user applies).

And two that make each hop between nodes cheaper (a hop's CPU is what a run loses to the runtime on
its critical path: ``bench/workflow_bench.py``), without changing what any state does:

6. **JSONPaths parsed once.** moto's executor parses a JSONPath (``"run.$": "$.run"``) every time it
   evaluates one, building a new parser and its tables each time (~0.4 ms; two per node task, three
   per gate). The parsed path depends only on its text and is only read while evaluating (``find``
   and ``update_or_create`` change the data, not the path), so it is kept per text.
7. **In-process functions are invoked directly.** A Lambda task reached the step function through a
   boto3 client, botocore's serialization and signing and moto's Lambda API (~1.4 ms of CPU per task,
   a third of a chained hop). For a function installed in this process
   (:func:`taskplane.local.lambdas.install_local_lambdas`) the executor now calls
   :func:`taskplane.local.lambdas.invoke_in_process`: moto's function, the same event and context,
   the same payload and ``FunctionError``. Any other function still goes through the Lambda API.
8. **A definition parsed once.** moto parses a state machine's definition (ANTLR, then its
   preprocessor into evaluation components) when the machine is made and again at the start of every
   execution: 0.1-0.3 s of CPU for a 20-node workflow, before its first node. The parse depends only
   on the text, and the components hold no execution's state (each execution evaluates them with its
   own environment: moto itself runs one item processor for every concurrent Map iteration), so the
   parse is kept per text (the 64 latest). The one lazily set attribute, each component's key into
   an execution's heap, is set once when the parse is kept.

And one for the local runtime's step function (:func:`release_gates_directly`, not applied to tests,
which record the AWS calls each function makes): a gate is released (``SendTaskSuccess``) by
calling moto's Step Functions in this process, not through botocore and moto's API (~1.5 ms of CPU
per gated node); the answer and the errors are the API's.

moto is imported lazily, never when this module is imported.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from taskplane.settings import PlatformSettings

#: ``mock_aws(config=...)`` that makes moto execute state machines.
MOCK_CONFIG = {"stepfunctions": {"execute_state_machine": True}}
STEP_FUNCTION = "taskplane-step"
ROLE_ARN = "arn:aws:iam::123456789012:role/taskplane-local-states"

_applied = False
_lock = threading.Lock()


def apply_moto_fixes() -> None:
    """Apply the eight fixes (idempotent) and quiet moto's per-failure error logging."""
    global _applied
    with _lock:
        if _applied:
            return
        _run_versions()
        _propagate_states_errors()
        _share_lambda_clients()
        _query_one_partition()
        _parse_json_paths_once()
        _invoke_local_functions_directly()
        _parse_definitions_once()
        from taskplane.local import moto_patches

        moto_patches.apply()  # every DynamoDB request under one lock (a read never sees half a write)
        # A failing node is an ordinary event in a workflow; moto logs each as an error with the
        # whole parsed state machine attached.
        logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
        _applied = True


def _run_versions() -> None:
    from moto.stepfunctions.models import StateMachineVersion
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    swap = threading.Lock()

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        target = self.describe_state_machine(state_machine_arn)
        if not isinstance(target, StateMachineVersion):
            return original(self, state_machine_arn, name, execution_input, trace_header)
        machine = self.describe_state_machine(target.source_arn)
        # The execution runs a snapshot of the machine's definition, taken while it starts.
        with swap:
            current = machine.definition
            machine.definition = target.definition
            try:
                execution = original(self, machine.arn, name, execution_input, trace_header)
            finally:
                machine.definition = current
        execution.taskplane_version_arn = target.arn  # type: ignore[attr-defined]
        return execution

    StepFunctionsParserBackend.start_execution = start_execution  # type: ignore[method-assign]

    original_list = StepFunctionsParserBackend.list_executions

    def list_executions(
        self: Any,
        state_machine_arn: str,
        status_filter: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> Any:
        # Step Functions lists a version's executions given its ARN (the API keeps versions that
        # still run); here they live on the machine, marked with the version they started on.
        target = self.describe_state_machine(state_machine_arn)
        if not isinstance(target, StateMachineVersion):
            return original_list(
                self,
                state_machine_arn,
                status_filter=status_filter,
                max_results=max_results,
                next_token=next_token,
            )
        machine = self.describe_state_machine(target.source_arn)
        found = [
            e
            for e in machine.executions
            if getattr(e, "taskplane_version_arn", None) == target.arn
            and (status_filter is None or e.status == status_filter)
        ]
        found.sort(key=lambda e: e.start_date, reverse=True)
        return found[: max_results or None], None

    StepFunctionsParserBackend.list_executions = list_executions  # type: ignore[method-assign,assignment]


def _propagate_states_errors() -> None:
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl

    def error_name(error_name: str | None = None) -> ErrorName:
        if error_name is not None and error_name.startswith("States."):
            try:
                return StatesErrorName.from_name(error_name)
            except Exception:  # a States.* name moto does not know: keep the name as it is
                named = CustomErrorName(None)
                named.error_name = error_name  # type: ignore[misc]
                return named
        return CustomErrorName(error_name)

    branches_decl.CustomErrorName = error_name  # type: ignore[misc,assignment]
    iteration_worker.CustomErrorName = error_name  # type: ignore[misc,assignment]


def _share_lambda_clients() -> None:
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for
    clients: dict[tuple[Any, ...], Any] = {}
    made = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        key = (region, service, botocore_stubber.enabled, moto_server_port())
        with made:
            client = clients.get(key)
            if client is None:
                client = clients[key] = original(region, service, state_credentials)
            return client

    lambda_eval_utils.boto_client_for = boto_client_for


#: Parsed JSONPaths kept per text; a runaway set of distinct texts just stops being cached.
_PATH_CACHE_LIMIT = 4096


def _parse_json_paths_once() -> None:
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    def keep(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        parsed: dict[str, Any] = {}

        def cached(path: str) -> Any:
            found = parsed.get(path)
            if found is None:
                found = parse(path)  # an invalid path raises, and is not kept
                if len(parsed) < _PATH_CACHE_LIMIT:
                    parsed[path] = found
            return found

        return cached

    json_path.parse = keep(json_path.parse)  # type: ignore[assignment]  # extract_json's (extended) parser
    result_path.parse = keep(result_path.parse)  # type: ignore[assignment]  # ResultPath's plain parser


def _invoke_local_functions_directly() -> None:
    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    from taskplane.local.lambdas import invoke_in_process

    original = lambda_eval_utils._invoke_lambda_function

    def invoke(parameters: dict[str, Any], region: str, state_credentials: Any) -> Any:
        direct = None
        # Only a plain synchronous invoke, and only when moto answers in this process.
        if botocore_stubber.enabled and set(parameters) <= {"FunctionName", "Payload", "Qualifier"}:
            direct = invoke_in_process(
                str(parameters["FunctionName"]),
                parameters.get("Payload"),
                region,
                parameters.get("Qualifier"),
            )
        if direct is None:
            return original(parameters, region, state_credentials)
        payload, function_error = direct
        try:  # what lambda_eval_utils._from_payload makes of the response body
            body: Any = json.loads(payload)
        except ValueError:
            body = payload
        response: dict[str, Any] = {"StatusCode": 200, "Payload": body}  # as moto answers (no version)
        if function_error is not None:
            response["FunctionError"] = function_error
        return response

    lambda_eval_utils._invoke_lambda_function = invoke


#: Parsed definitions kept (the latest used).
_DEFINITIONS_KEPT = 64


def _parse_definitions_once() -> None:
    from collections import OrderedDict

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original = AmazonStateLanguageParser.parse
    kept: OrderedDict[str, Any] = OrderedDict()
    guard = threading.Lock()

    def parse(definition: str) -> Any:
        with guard:
            found = kept.get(definition)
            if found is not None:
                kept.move_to_end(definition)
                return found
        parsed = original(definition)  # a definition that does not parse raises, and is not kept
        settle_heap_keys(parsed[0])
        with guard:
            found = kept.setdefault(definition, parsed)
            while len(kept) > _DEFINITIONS_KEPT:
                kept.popitem(last=False)
        return found

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]


class DirectCallbacks:
    """A Step Functions client whose ``send_task_success`` reaches moto's Step Functions in this
    process directly: what moto's API does with the request (its backend's ``send_task_success``),
    an empty answer, and moto's errors as the ``ClientError`` the API raises (``InvalidToken``,
    ``TaskDoesNotExist``, ``TaskTimedOut``). Any other call goes to the client it wraps."""

    def __init__(self, client: Any, account: str, region: str) -> None:
        self._client = client
        self._account = account
        self._region = region

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:  # boto3's names
        from botocore.exceptions import ClientError
        from moto.core.exceptions import ServiceException
        from moto.stepfunctions.responses import get_backend

        backend = get_backend(self._account, self._region)  # the one moto's API answers with
        try:
            backend.send_task_success(taskToken, output)
        except ServiceException as exc:
            raise ClientError(
                {"Error": {"Code": exc.code, "Message": exc.message or ""}}, "SendTaskSuccess"
            ) from None
        return {}


def release_gates_directly(platform: Any, region: str) -> None:
    """The local runtime's step function releases gates through :class:`DirectCallbacks`."""
    from moto.core import DEFAULT_ACCOUNT_ID

    sfn = platform.steps.sfn
    if not isinstance(sfn.client, DirectCallbacks):
        sfn._client = DirectCallbacks(sfn.client, DEFAULT_ACCOUNT_ID, region)


def settle_heap_keys(program: Any) -> int:
    """Give every evaluation component of a parsed definition its heap key now (moto makes each
    lazily, the first time an evaluation asks: two executions asking at once could each make one).
    Answers how many components it visited."""
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    todo = [program]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Component):
            if isinstance(item, EvalComponent):
                _ = item.heap_key
            todo.extend(vars(item).values())
        elif isinstance(item, list | tuple | set | frozenset):
            todo.extend(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
    return len(seen)


class _Partition:
    """A table that shows only one partition to ``all_items`` and is the table for the rest."""

    def __init__(self, table: Any, hash_key: Any) -> None:
        self._table = table
        self._hash_key = hash_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        found = self._table.items.get(self._hash_key)  # .get: items is a defaultdict
        if found is None:
            return []
        return list(found.values()) if self._table.range_key_attr else [found]


def _query_one_partition() -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name is not None or hash_key is None:
            return original(self, hash_key, *args, **kwargs)
        return original(_Partition(self, hash_key), hash_key, *args, **kwargs)  # type: ignore[arg-type]

    Table.query = query  # type: ignore[method-assign]


def install_step_function(
    session: Any, settings: PlatformSettings
) -> tuple[PlatformSettings, Callable[[], None]]:
    """Create the step function in moto and run ``functions/step`` in-process when it is invoked.

    Returns the settings pointing at it and an ``uninstall()``.
    """
    from taskplane.local.handlers import load_handler
    from taskplane.local.lambdas import create_local_functions, install_local_lambdas

    apply_moto_fixes()
    lambda_client = session.client("lambda")
    create_local_functions(lambda_client, [STEP_FUNCTION], iam_client=session.client("iam"))
    arn = lambda_client.get_function(FunctionName=STEP_FUNCTION)["Configuration"]["FunctionArn"]
    uninstall = install_local_lambdas({STEP_FUNCTION: load_handler("step").lambda_handler})
    return settings.model_copy(
        update={"step_function_arn": arn, "state_machine_role_arn": ROLE_ARN}
    ), uninstall


def stop_executions(session: Any) -> None:
    """Stop every running execution, so no executor thread outlives the mock."""
    sfn = session.client("stepfunctions")
    try:
        machines = sfn.list_state_machines().get("stateMachines", [])
        for machine in machines:
            running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING")
            for execution in running.get("executions", []):
                sfn.stop_execution(executionArn=execution["executionArn"], cause="the local runtime stopped")
    except Exception:  # shutting down: nothing left to save
        return
