"""Run Lambda functions in-process under moto, for the local runtime and tests.

moto runs Lambda code only in Docker. Its one clean seam is
``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)``:
every invoke goes through it (boto3 ``Invoke``, Step Functions Lambda tasks, SQS event source
mappings, EventBridge rules). :func:`install_local_lambdas` patches it so that functions named in a
dict run as plain Python callables; the rest keep moto's behaviour.

Typical use::

    functions = load_functions_file("examples/functions.py")
    uninstall = install_local_lambdas(functions)
    create_local_functions(boto3.client("lambda"), functions)
    ...
    uninstall()

moto is imported inside the functions here, never when this module is imported.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import io
import json
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LOCAL_ROLE_NAME",
    "LocalLambdaContext",
    "create_local_functions",
    "install_local_lambdas",
    "invoke_in_process",
    "load_functions_file",
]

LOCAL_ROLE_NAME = "taskplane-local"
_LOG_TAIL_CHARS = 4096  # Lambda's LogResult carries the last 4 KB of the log
#: moto's (and Lambda's) limit on a synchronous invoke's response payload
_MAX_RESPONSE_BYTES = 6_000_000

Handler = Callable[[Any, Any], Any]

_lock = threading.Lock()
_installs: list[tuple[object, dict[str, Handler]]] = []  # active installs, oldest first
_original_invoke: Callable[..., tuple[str, bool, str]] | None = None


class LocalLambdaContext:
    """The subset of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function: Any) -> None:
        self.function_name: str = function.function_name
        self.function_version: str = str(getattr(function, "version", "$LATEST"))
        self.invoked_function_arn: str = function.function_arn
        self.memory_limit_in_mb: int = int(function.memory_size)
        self.aws_request_id: str = str(uuid.uuid4())
        self.log_group_name: str = f"/aws/lambda/{self.function_name}"
        self.log_stream_name: str = f"local/{self.aws_request_id}"
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = time.monotonic() + float(function.timeout or 3)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout (not enforced in-process)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_functions_file(path: str) -> dict[str, Handler]:
    """Import a Python file and return the Lambda handlers it defines, by function name.

    The file's module-level ``FUNCTIONS = {"name": callable}`` wins when present; otherwise every
    public top-level function defined in the file that accepts ``(event, context)`` is taken under
    its own name. Each call imports the file afresh.

    Parameters
    ----------
    path
        The Python file.

    Returns
    -------
    dict[str, Callable]
        Function name -> handler.

    Raises
    ------
    FileNotFoundError
        No such file.
    TypeError
        ``FUNCTIONS`` is not a dict of non-empty names to callables.
    ValueError
        The file defines no handler.

    Examples
    --------
    >>> functions = load_functions_file("examples/functions.py")  # doctest: +SKIP
    >>> sorted(functions)  # doctest: +SKIP
    ['charge_card', 'send_email']
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no functions file at {file}")
    module_name = "taskplane_local_functions_" + hashlib.sha256(str(file).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {file} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered before running so dataclasses and pickling inside the file can find the module.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise

    declared = getattr(module, "FUNCTIONS", None)
    if declared is not None:
        if not isinstance(declared, dict) or not all(
            isinstance(name, str) and name and callable(fn) for name, fn in declared.items()
        ):
            raise TypeError(f"{file}: FUNCTIONS must be a dict of function names to callables")
        functions = dict(declared)
    else:
        functions = {
            name: obj
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and inspect.isfunction(obj)
            and obj.__module__ == module_name
            and _takes_event_and_context(obj)
        }
    if not functions:
        raise ValueError(f"{file} defines no handler: add FUNCTIONS or a function (event, context)")
    return functions


def install_local_lambdas(functions: dict[str, Handler]) -> Callable[[], None]:
    """Route moto Lambda invokes of the named functions to in-process callables.

    Each handler is called with the parsed event and a :class:`LocalLambdaContext`. Its return
    value is the JSON payload; an exception becomes ``{"errorType", "errorMessage"}`` with the
    function error flag set, as the Lambda runtime reports it. Installs stack: when two are active
    the later one wins for a name both define, and moto's own method is restored once every
    install has been undone.

    Parameters
    ----------
    functions
        Function name (``FunctionName`` in moto, not the ARN) -> handler.

    Returns
    -------
    Callable[[], None]
        ``uninstall()``; calling it again does nothing.

    Examples
    --------
    >>> uninstall = install_local_lambdas({"add": lambda event, context: event["a"] + event["b"]})
    >>> uninstall()
    """
    global _original_invoke
    from moto.awslambda.models import LambdaFunction

    token = object()
    with _lock:
        if _original_invoke is None:
            _original_invoke = LambdaFunction._invoke_lambda
            LambdaFunction._invoke_lambda = _make_invoke(_original_invoke)  # type: ignore[method-assign]
        _installs.append((token, dict(functions)))

    def uninstall() -> None:
        global _original_invoke
        with _lock:
            _installs[:] = [(t, fns) for t, fns in _installs if t is not token]
            if not _installs and _original_invoke is not None:
                LambdaFunction._invoke_lambda = _original_invoke  # type: ignore[method-assign]
                _original_invoke = None

    return uninstall


def create_local_functions(
    lambda_client: Any,
    names: Iterable[str],
    role_arn: str | None = None,
    *,
    iam_client: Any = None,
) -> None:
    """Create a placeholder moto Lambda function for each name, so Invoke reaches the seam.

    Each function gets runtime python3.12, handler ``index.handler`` and a tiny zip made in memory;
    what runs is the callable given to :func:`install_local_lambdas`. Names that already exist are
    left alone. moto checks that the role exists in IAM, so without ``role_arn`` a role named
    ``taskplane-local`` is made (or reused) with ``iam_client``, or with an IAM client for the
    Lambda client's region and endpoint.

    Parameters
    ----------
    lambda_client
        A boto3 Lambda client talking to moto (in-process ``mock_aws`` or a moto server).
    names
        Function names.
    role_arn
        An existing IAM role ARN for the functions.
    iam_client
        The IAM client to make the role with when ``role_arn`` is None.

    Examples
    --------
    >>> with mock_aws():  # doctest: +SKIP
    ...     create_local_functions(boto3.client("lambda", region_name="us-east-1"), ["charge_card"])
    """
    from botocore.exceptions import ClientError

    role = role_arn
    for name in names:
        try:
            lambda_client.get_function(FunctionName=name)
            continue
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
        if role is None:
            role = _ensure_local_role(iam_client or _iam_client_like(lambda_client))
        try:
            lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": _placeholder_zip()},
                Timeout=900,
                MemorySize=256,
                Description="taskplane local function (runs in-process)",
            )
        except ClientError as exc:
            if _code(exc) != "ResourceConflictException":  # made meanwhile by someone else
                raise


def invoke_in_process(
    function: str, payload: bytes | None, region: str, qualifier: str | None = None
) -> tuple[str, str | None] | None:
    """A synchronous invoke of a function installed with :func:`install_local_lambdas`, called
    straight from this process instead of through a boto3 client and moto's Lambda API.

    moto's Lambda resolves the function (name or ARN, with its qualifier) and runs it exactly as an
    ``Invoke`` would: the same event (the payload parsed, ``"{}"`` when empty), the same context and
    the same answer (payload, and ``FunctionError`` when it failed), with Lambda's 6 MB response limit. Only the request's
    serialization, signing and routing are skipped (about 1.4 ms of CPU per call).

    Parameters
    ----------
    function
        Function name or ARN.
    payload
        The request payload (JSON bytes), or None.
    region
        The region of the Lambda API the invoke would reach (an ARN's region wins).
    qualifier
        A version or alias.

    Returns
    -------
    tuple[str, str | None] | None
        ``(response payload, FunctionError)``: the error is None, ``"Handled"`` (the function
        raised) or ``"Unhandled"`` (its response was too large), as moto's Lambda answers; None when moto has no such function or it is
        not installed here (the caller then goes through the Lambda API, which answers as it does).
    """
    from moto.awslambda.models import lambda_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    account = DEFAULT_ACCOUNT_ID
    if function.startswith("arn:"):
        parts = function.split(":")
        if len(parts) < 7:
            return None
        region, account = parts[3], parts[4]
    try:
        found = lambda_backends[account][region].get_function(function, qualifier)
    except Exception:  # unknown function, account or region: the API's own error is the answer
        return None
    handler = _lookup(found.function_name)
    if handler is None:
        return None
    try:  # LambdaFunction.invoke: the body parsed when there is one, else the text "{}"
        event: Any = json.loads(payload) if payload else "{}"
    except ValueError:  # not JSON: the API's own error is the answer
        return None
    result, errored, _ = _run_in_process(found, handler, event)
    if len(result.encode("utf-8")) > _MAX_RESPONSE_BYTES:
        too_large = {
            "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            "errorType": "Function.ResponseSizeTooLarge",
        }
        return json.dumps(too_large), "Unhandled"
    return result, "Handled" if errored else None


# -- internals ---------------------------------------------------------------------------------


def _make_invoke(original: Callable[..., tuple[str, bool, str]]) -> Callable[..., tuple[str, bool, str]]:
    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        handler = _lookup(self.function_name)
        if handler is None:
            return original(self, event)
        return _run_in_process(self, handler, event)

    return _invoke_lambda


def _lookup(name: str) -> Handler | None:
    with _lock:
        for _, functions in reversed(_installs):
            if name in functions:
                return functions[name]
    return None


def _run_in_process(function: Any, handler: Handler, event: Any) -> tuple[str, bool, str]:
    context = LocalLambdaContext(function)
    started = time.monotonic()
    lines = [f"START RequestId: {context.aws_request_id} Version: {context.function_version}"]
    error: dict[str, str] | None = None
    try:
        result = handler(_parse_event(event), context)
    except Exception as exc:
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        lines.append(traceback.format_exc().rstrip())
    else:
        try:
            payload = json.dumps(result)
        except (TypeError, ValueError) as exc:
            error = {
                "errorType": "Runtime.MarshalError",
                "errorMessage": f"Unable to marshal response: {exc}",
            }
    if error is not None:
        payload = json.dumps(error)
        lines.append(f"[ERROR] {error['errorType']}: {error['errorMessage']}")
    elapsed_ms = (time.monotonic() - started) * 1000
    lines.append(f"END RequestId: {context.aws_request_id}")
    lines.append(f"REPORT RequestId: {context.aws_request_id}\tDuration: {elapsed_ms:.2f} ms")
    return payload, error is not None, "\n".join(lines)[-_LOG_TAIL_CHARS:]


def _parse_event(event: Any) -> Any:
    # moto 5.2 hands over the payload already parsed (the string "{}" when it was empty); older
    # and other callers pass raw JSON text, so text that parses is parsed.
    if event is None:
        return {}
    if isinstance(event, bytes | bytearray):
        event = event.decode("utf-8")
    if isinstance(event, str):
        try:
            return json.loads(event)
        except ValueError:
            return event
    return event


def _takes_event_and_context(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(object(), object())
    except (TypeError, ValueError):
        return False
    return True


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _iam_client_like(lambda_client: Any) -> Any:
    import boto3

    kwargs: dict[str, Any] = {"region_name": lambda_client.meta.region_name}
    endpoint = lambda_client.meta.endpoint_url
    host = urlsplit(endpoint).hostname or "" if endpoint else ""
    # A moto server serves every service on one endpoint; real AWS endpoints are per service.
    if endpoint and not host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        kwargs["endpoint_url"] = endpoint
    return boto3.client("iam", **kwargs)


def _ensure_local_role(iam_client: Any) -> str:
    from botocore.exceptions import ClientError

    try:
        return str(iam_client.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]["Arn"])
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        created = iam_client.create_role(RoleName=LOCAL_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
        return str(created["Role"]["Arn"])
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        return str(iam_client.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]["Arn"])


def _placeholder_zip() -> bytes:
    source = (
        "def handler(event, context):\n"
        "    raise RuntimeError('taskplane local function: call install_local_lambdas() first')\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()
