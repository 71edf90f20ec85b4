"""Target runners: deliver one attempt of a task (or a workflow node) to its target.

``TargetRunners.run(target, envelope, timeout_s, cancel)`` returns the target's result (JSON-able)
or raises :class:`TargetFailure`. ``retryable`` on the failure tells the caller whether another
attempt may succeed; the task's retry policy decides whether one is made. ``error_type`` is what
users see as ``error.type`` (and what workflow retry and catch rules match on).

Which failures are retryable
============================

=============  ==============================================  ===============================================
target         retryable                                       not retryable
=============  ==============================================  ===============================================
any            ``Cancelled`` (cancelled before it started);    ``UnknownTarget`` (unknown ``type``);
               ``Timeout`` (no time left on the clock)         ``InvalidTarget`` (a required field missing);
                                                               ``InvalidPayload`` (envelope is not JSON)
lambda         the function raised: ``error_type`` is its      ``ResourceNotFoundException`` (no such
               ``errorType`` (``FunctionError`` if it has      function), ``InvalidParameterValueException``,
               none); throttling                               ``RequestTooLargeException`` (payload over
               (``TooManyRequestsException``,                  6 MB), ``AccessDenied*``, validation errors,
               ``Throttling*``); ``ServiceException`` and      ``KMS*`` errors, and any other 4xx
               any other 5xx; ``EC2*`` and ``ENI*``
               networking errors; ``ResourceNotReady`` /
               ``ResourceConflict`` (function being
               updated); ``Timeout`` (no answer within
               ``timeout_s``); ``ConnectionError``
http           ``HttpError`` for 408, 429 and 5xx;             ``HttpError`` for any other 4xx and for every
               ``ConnectionError`` (refused, reset, DNS        3xx (redirects are never followed; the message
               failure); ``Timeout`` (no complete answer       names the ``Location``); ``TlsError``
               within ``timeout_s``)                           (certificate rejected); ``InvalidTarget``
                                                               (not an http(s) URL); ``ForbiddenTarget``
                                                               (private address while those are disallowed)
sqs            throttling, 5xx, ``Timeout``,                   ``AWS.SimpleQueueService.NonExistentQueue`` /
               ``ConnectionError``                             ``QueueDoesNotExist``, ``AccessDenied*``,
                                                               ``InvalidMessageContents``, ``KMS*`` errors,
                                                               any other 4xx
eventbridge    an entry rejected by PutEvents                  ``ResourceNotFoundException`` (no such bus),
               (``FailedEntryCount`` > 0; ``error_type`` is    ``AccessDenied*``, validation errors, any other
               the entry's ``ErrorCode``); throttling, 5xx,    4xx
               ``Timeout``, ``ConnectionError``
builtin        ``fail``: ``BuiltinFailure`` while attempt <=   ``InvalidPayload`` (bad ``ms`` / ``times``);
               ``payload.times``; ``sleep``: ``Cancelled``     ``UnknownTarget`` (unknown builtin name)
               (cancelled while sleeping), ``Timeout``
               (``ms`` longer than ``timeout_s``)
=============  ==============================================  ===============================================

For AWS targets, ``error_type`` of a rejected call is the AWS error code itself (for example
``ThrottlingException``); a code not named above is retryable when its HTTP status is 429 or 5xx.
Client-side botocore errors are retryable too, except ``ParamValidationError`` and
``NoCredentialsError``. A successful HTTP answer's result is its JSON, else its text (cut to
64 KiB), or None when it has no body. What a target receives is ``json.dumps(envelope)``: the Lambda payload,
the HTTP body (none for GET, HEAD and DELETE), the SQS message body, or the EventBridge ``Detail``.
Only the builtin ``sleep`` can be interrupted by ``cancel``; other targets check it before they
start.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import math
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeGuard

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from taskplane.domain.events import PLATFORM_BUS, stamp
from taskplane.domain.results import LARGE_RESULT_BYTES, NotJson, checked_json
from taskplane.domain.secrets import scrub, secret_values
from taskplane.domain.text import valid_text
from taskplane.tracing import NULL_TRACING, Tracing

if TYPE_CHECKING:
    import boto3.session

__all__ = ["TargetFailure", "TargetRunners", "is_retryable_aws_error"]

MAX_TEXT_RESULT_BYTES = 64 * 1024
"""A non-JSON HTTP answer is kept up to this many bytes."""

MAX_HTTP_BODY_BYTES = 6 * 1024 * 1024
"""At most this much of an HTTP answer is read (what a Lambda target may answer); a longer one is cut
(and then is not valid JSON)."""

MAX_SLEEP_MS = 900_000

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "DELETE"})
_USER_AGENT = "taskplane-target/1"

# Error codes are matched exactly first, then by prefix, then by HTTP status (5xx and 429 retry).
_NOT_RETRYABLE_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "InvalidParameterValueException",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "MissingParameter",
        "RequestTooLargeException",
        "RequestEntityTooLarge",
        "ValidationException",
        "ValidationError",
        "InvalidRequestContentException",
        "UnsupportedMediaTypeException",
        "InvalidRuntimeException",
        "InvalidZipFileException",
        "InvalidSecurityGroupIDException",
        "InvalidSubnetIDException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "InvalidMessageContents",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "UnsupportedOperation",
        "InvalidAddress",
        "InvalidSecurity",
    }
)
_NOT_RETRYABLE_PREFIXES = ("AccessDenied", "KMS")
_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestThrottled",
        "AWS.SimpleQueueService.RequestThrottled",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "ServiceException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "InternalException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ResourceNotReadyException",
        "ResourceConflictException",
        "SubnetIPAddressLimitReachedException",
        "EFSIOException",
        "EFSMountConnectivityException",
        "EFSMountFailureException",
        "EFSMountTimeoutException",
        "SnapStartNotReadyException",
        "SnapStartTimeoutException",
        "KMS.ThrottlingException",
        "KmsThrottled",
    }
)
_RETRYABLE_PREFIXES = ("EC2", "ENI", "Throttl")


class TargetFailure(Exception):
    """One attempt at a target failed.

    Parameters
    ----------
    error_type
        A short machine-readable name (``HttpError``, ``Timeout``, an AWS error code, the
        ``errorType`` a Lambda function raised).
    message
        What happened, for people.
    retryable
        Whether another attempt may succeed.

    Examples
    --------
    >>> failure = TargetFailure("HttpError", "HTTP 503 from POST https://example.com/", retryable=True)
    >>> failure.error_type, failure.retryable
    ('HttpError', True)
    """

    def __init__(self, error_type: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.retryable = retryable

    def told_safely(self, secrets: list[str]) -> TargetFailure:
        """This failure with none of ``secrets`` (nor anything that looks like one) in its text, and
        valid Unicode only: its message becomes the task's error, history, dead letter and log lines.
        """
        error_type = scrub(valid_text(self.error_type), secrets)[:256]
        message = scrub(valid_text(self.message), secrets)
        if (error_type, message) == (self.error_type, self.message):
            return self
        return TargetFailure(error_type, message, retryable=self.retryable)


Runner = Callable[[dict[str, Any], dict[str, Any], float, "threading.Event | None"], Any]


class TargetRunners:
    """Runs targets of every type; AWS clients are injected or made lazily from ``session``.

    Parameters
    ----------
    session
        A ``boto3.session.Session`` to make clients from when none is injected; a default session
        is made on first use when this is None too. No client is made before it is needed.
    lambda_client, sqs_client, events_client
        Injected boto3 clients (tests, or a worker that shares them). An injected Lambda client
        keeps its own read timeout; one made here times out after ``timeout_s`` and never retries
        on its own (the task's retry policy does, so a slow function is not invoked twice).
    allow_private_http
        When False, HTTP targets whose host resolves to a loopback, private, link-local or
        otherwise non-global address fail with ``ForbiddenTarget``. The check resolves the name
        before connecting, so it does not stop DNS rebinding; pair it with network controls.
    tracing
        With tracing on, an HTTP target's request carries the W3C ``traceparent`` of the attempt's
        span (unless the target's own headers set one).
    large_answers_at_once
        How many answers over ``LARGE_RESULT_BYTES`` are checked at the same time (the worker sizes
        it from its memory: ``services/payload_budget.py``); None: no limit (taskplane dev, tests).

    Examples
    --------
    >>> runners = TargetRunners()
    >>> runners.run({"type": "builtin", "name": "echo"}, {"task_id": "t1", "attempt": 1, "payload": 7}, 5)
    7
    """

    def __init__(
        self,
        *,
        session: boto3.session.Session | None = None,
        lambda_client: Any = None,
        sqs_client: Any = None,
        events_client: Any = None,
        allow_private_http: bool = True,
        platform_bus: str = "taskplane-events",
        tracing: Tracing = NULL_TRACING,
        large_answers_at_once: int | None = None,
    ) -> None:
        self._session: Any = session
        self._lambda_client = lambda_client
        self._sqs_client = sqs_client
        self._events_client = events_client
        self._allow_private_http = allow_private_http
        #: the real name of the bus tenants call "taskplane"
        self._platform_bus = platform_bus
        #: an HTTP target gets the attempt's ``traceparent``, so a traced service joins the task's trace
        self.tracing = tracing
        #: how many large answers are checked at once (see _answer; None: no limit)
        self._gate = threading.Semaphore(large_answers_at_once) if large_answers_at_once else None
        self._lock = threading.Lock()
        self._lambda_clients_by_timeout: dict[int, Any] = {}
        self._opener = urllib.request.build_opener(_NoRedirects())
        self._runners: dict[str, Runner] = {
            "lambda": self._run_lambda,
            "http": self._run_http,
            "sqs": self._run_sqs,
            "eventbridge": self._run_eventbridge,
            "builtin": _run_builtin,
        }

    def run(
        self,
        target: dict[str, Any],
        envelope: dict[str, Any],
        timeout_s: float,
        cancel: threading.Event | None = None,
        *,
        tenant: str | None = None,
    ) -> Any:
        """Deliver ``envelope`` to ``target`` once and return the result.

        Parameters
        ----------
        target
            A validated target, for example ``{"type": "sqs", "queue_url": "https://..."}``.
        envelope
            What the target receives, for a task ``{"task_id", "attempt", "payload"}``.
        timeout_s
            How long the attempt may take.
        cancel
            Set it to interrupt a builtin ``sleep``; any target refuses to start once it is set.
        tenant
            Whose work this is: an ``eventbridge`` target's event carries it in ``detail``, written
            by the platform (``domain/events.py``), so the event reaches only that tenant's triggers.

        Returns
        -------
        Any
            The JSON-able result; an HTTP or Lambda answer over ``LARGE_RESULT_BYTES`` as
            :class:`~taskplane.domain.results.RawJson` (checked, not built: a caller that only
            stores it never builds it; ``valued`` builds it for one that reads it).

        Raises
        ------
        TargetFailure
            The attempt failed; see the module docstring for which failures are retryable.
        """
        kind = target.get("type") if isinstance(target, dict) else None
        runner = self._runners.get(kind) if isinstance(kind, str) else None
        if runner is None:
            raise TargetFailure("UnknownTarget", f"unknown target type {kind!r}", retryable=False)
        if cancel is not None and cancel.is_set():
            raise TargetFailure("Cancelled", "cancelled before the target was called", retryable=True)
        if not timeout_s > 0:
            raise TargetFailure("Timeout", "no time left for the attempt", retryable=True)
        try:
            # A target's answer comes from outside: keep it valid text (domain/text.py).
            if kind == "eventbridge":  # the one target that carries the tenant: events are stamped
                return valid_text(self._run_eventbridge(target, envelope, timeout_s, cancel, tenant=tenant))
            return valid_text(runner(target, envelope, timeout_s, cancel))
        except TargetFailure as failure:
            raise failure.told_safely(secret_values(target, envelope)) from None
        except Exception as exc:  # a runner bug: the callers retry it like any failure, told safely too
            raise TargetFailure(type(exc).__name__, str(exc) or repr(exc), retryable=True).told_safely(
                secret_values(target, envelope)
            ) from None

    # -- clients -------------------------------------------------------------------------------

    def _make_client(self, service: str, config: Config) -> Any:
        # Callers hold self._lock: boto3 sessions are not thread-safe.
        if self._session is None:
            import boto3.session

            self._session = boto3.session.Session()
        return self._session.client(service, config=config)

    def _lambda(self, timeout_s: float) -> Any:
        if self._lambda_client is not None:
            return self._lambda_client
        # The read timeout is fixed per client, so keep one client per whole second of timeout.
        seconds = max(1, math.ceil(timeout_s))
        with self._lock:
            client = self._lambda_clients_by_timeout.get(seconds)
            if client is None:
                config = Config(
                    read_timeout=seconds,
                    connect_timeout=min(10, seconds),
                    retries={"mode": "standard", "total_max_attempts": 1},
                )
                client = self._make_client("lambda", config)
                self._lambda_clients_by_timeout[seconds] = client
            return client

    def _sqs(self) -> Any:
        with self._lock:
            if self._sqs_client is None:
                self._sqs_client = self._make_client(
                    "sqs", Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})
                )
            return self._sqs_client

    def _events(self) -> Any:
        with self._lock:
            if self._events_client is None:
                self._events_client = self._make_client(
                    "events", Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard"})
                )
            return self._events_client

    # -- AWS targets ---------------------------------------------------------------------------

    def _run_lambda(
        self, target: dict[str, Any], envelope: dict[str, Any], timeout_s: float, cancel: Any
    ) -> Any:
        function = _required_str(target, "function")
        body = _dumps(envelope)
        client = self._lambda(timeout_s)
        with _aws_errors():
            response = client.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=body)
            raw = response["Payload"].read()
        if not isinstance(raw, bytes):
            raw = str(raw).encode("utf-8", "surrogatepass")
        result = _answer(raw, gate=self._gate)
        if response.get("FunctionError"):
            text = raw.decode("utf-8", errors="replace")
            error_type, message = "FunctionError", _truncate(text, 4096)
            if isinstance(result, dict):
                error_type = str(result.get("errorType") or "FunctionError")
                message = str(result.get("errorMessage") or message)
            raise TargetFailure(error_type, message, retryable=True)
        return result

    def _run_sqs(
        self, target: dict[str, Any], envelope: dict[str, Any], timeout_s: float, cancel: Any
    ) -> Any:
        queue_url = _required_str(target, "queue_url")
        body = _dumps(envelope)
        client = self._sqs()
        with _aws_errors():
            response = client.send_message(QueueUrl=queue_url, MessageBody=body)
        return {"message_id": response["MessageId"]}

    def _run_eventbridge(
        self,
        target: dict[str, Any],
        envelope: dict[str, Any],
        timeout_s: float,
        cancel: Any,
        tenant: str | None = None,
    ) -> Any:
        bus = str(target.get("bus") or PLATFORM_BUS)
        entry = {
            "EventBusName": self._platform_bus if bus == PLATFORM_BUS else bus,
            "Source": _required_str(target, "source"),
            "DetailType": _required_str(target, "detail_type"),
            # Stamped on every bus: an event from the platform always says whose it is.
            "Detail": _dumps(stamp(envelope, tenant) if tenant else envelope),
        }
        client = self._events()
        with _aws_errors():
            response = client.put_events(Entries=[entry])
        entries = response.get("Entries") or [{}]
        if response.get("FailedEntryCount", 0) > 0 or "EventId" not in entries[0]:
            code = entries[0].get("ErrorCode") or "PutEventsFailed"
            detail = entries[0].get("ErrorMessage") or "the event was not accepted"
            raise TargetFailure(code, f"PutEvents rejected the event: {code}: {detail}", retryable=True)
        return {"event_id": entries[0]["EventId"]}

    # -- HTTP ----------------------------------------------------------------------------------

    def _run_http(
        self, target: dict[str, Any], envelope: dict[str, Any], timeout_s: float, cancel: Any
    ) -> Any:
        url = _required_str(target, "url")
        method = str(target.get("method") or "POST").upper()
        try:
            parts = urllib.parse.urlsplit(url)
            shown = _shown_url(parts)
        except ValueError as exc:
            raise TargetFailure("InvalidTarget", f"bad URL: {exc}", retryable=False) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetFailure("InvalidTarget", "an http target needs an http(s) URL", retryable=False)
        if "@" in parts.netloc:
            # Refused when the target is made; a record older than that rule never reaches urllib,
            # whose own messages would quote the password (InvalidURL: nonnumeric port: 'pw@host').
            raise TargetFailure(
                "InvalidTarget", "the URL carries user info: send credentials in a header", retryable=False
            )
        if not self._allow_private_http:
            _refuse_private_host(parts)

        headers = {"user-agent": _USER_AGENT}
        data: bytes | None = None
        if method not in _NO_BODY_METHODS:
            data = _dumps(envelope).encode("utf-8")
            headers["content-type"] = "application/json"
        traceparent = self.tracing.traceparent()
        if traceparent is not None:
            headers["traceparent"] = traceparent  # the target's own headers below may replace it
        for name, value in (target.get("headers") or {}).items():
            headers[str(name).lower()] = str(value)
        # Set last so the receiver can trust them for deduplication.
        if envelope.get("task_id") is not None:
            headers["x-taskplane-task-id"] = str(envelope["task_id"])
        if envelope.get("attempt") is not None:
            headers["x-taskplane-attempt"] = str(envelope["attempt"])

        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        deadline = time.monotonic() + timeout_s
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                status = response.status
                raw = _read_until(response, MAX_HTTP_BODY_BYTES, deadline)
                charset = response.headers.get_content_charset() or "utf-8"
        except urllib.error.HTTPError as exc:
            raise _http_status_failure(exc, method, shown) from None
        except urllib.error.URLError as exc:
            raise _network_failure(exc.reason, method, shown) from None
        except http.client.InvalidURL as exc:
            raise TargetFailure("InvalidTarget", f"{method} {shown}: {exc}", retryable=False) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _network_failure(exc, method, shown) from None
        except ValueError as exc:
            raise TargetFailure("InvalidTarget", f"{method} {shown}: {exc}", retryable=False) from None
        if not 200 <= status < 300:  # pragma: no cover - urllib raises HTTPError for these
            raise TargetFailure("HttpError", f"HTTP {status} from {method} {shown}", retryable=False)
        if not raw:
            return None
        return _answer(raw, charset, self._gate)


# -- builtin targets ---------------------------------------------------------------------------


def _run_builtin(
    target: dict[str, Any], envelope: dict[str, Any], timeout_s: float, cancel: threading.Event | None
) -> Any:
    name = target.get("name")
    payload = envelope.get("payload")
    if name == "echo":
        return payload
    if name == "sleep":
        return _builtin_sleep(payload, timeout_s, cancel)
    if name == "fail":
        return _builtin_fail(payload, envelope.get("attempt", 1))
    raise TargetFailure("UnknownTarget", f"unknown builtin target {name!r}", retryable=False)


def _builtin_sleep(payload: Any, timeout_s: float, cancel: threading.Event | None) -> dict[str, int]:
    ms = payload.get("ms") if isinstance(payload, dict) else None
    if not _is_int(ms) or not 0 <= ms <= MAX_SLEEP_MS:
        raise TargetFailure(
            "InvalidPayload", f"sleep needs payload.ms, an integer 0..{MAX_SLEEP_MS}", retryable=False
        )
    waiter = cancel if cancel is not None else threading.Event()
    wait_s = min(ms / 1000, timeout_s)
    if waiter.wait(wait_s):
        raise TargetFailure("Cancelled", "cancelled while sleeping", retryable=True)
    if ms / 1000 > timeout_s:
        raise TargetFailure(
            "Timeout", f"sleep of {ms} ms outlasts the {timeout_s:g} s timeout", retryable=True
        )
    return {"slept_ms": ms}


def _builtin_fail(payload: Any, attempt: Any) -> dict[str, int]:
    if payload is None or (isinstance(payload, dict) and "times" not in payload):
        times = 1
    elif isinstance(payload, dict) and _is_int(payload["times"]) and payload["times"] >= 0:
        times = payload["times"]
    else:
        raise TargetFailure(
            "InvalidPayload", "fail needs payload.times, an integer >= 0 (default 1)", retryable=False
        )
    if not _is_int(attempt) or attempt < 1:
        raise TargetFailure(
            "InvalidPayload", f"attempt must be a positive integer, not {attempt!r}", retryable=False
        )
    if attempt <= times:
        raise TargetFailure("BuiltinFailure", f"failing attempt {attempt} of {times}", retryable=True)
    return {"attempt": attempt, "failed_before": times}


# -- helpers -----------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: a 3xx surfaces as an HTTPError naming the Location."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        return None


@contextlib.contextmanager
def _aws_errors() -> Iterator[None]:
    """Turn botocore errors raised inside the block into TargetFailure."""
    try:
        yield
    except ClientError as exc:
        raise _client_error_failure(exc) from None
    except (ReadTimeoutError, ConnectTimeoutError) as exc:
        raise TargetFailure("Timeout", str(exc), retryable=True) from None
    except (EndpointConnectionError, ConnectionClosedError) as exc:
        raise TargetFailure("ConnectionError", str(exc), retryable=True) from None
    except (ParamValidationError, NoCredentialsError) as exc:
        raise TargetFailure(type(exc).__name__, str(exc), retryable=False) from None
    except BotoCoreError as exc:
        raise TargetFailure(type(exc).__name__, str(exc), retryable=True) from None


def _client_error_failure(exc: ClientError) -> TargetFailure:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "ClientError")
    message = str(error.get("Message") or exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return TargetFailure(code, message, retryable=is_retryable_aws_error(code, status))


def is_retryable_aws_error(code: str, status: int | None = None) -> bool:
    """Whether an AWS error code (with its HTTP status) is worth another attempt.

    Examples
    --------
    >>> is_retryable_aws_error("TooManyRequestsException", 429)
    True
    >>> is_retryable_aws_error("ResourceNotFoundException", 404)
    False
    """
    if code in _NOT_RETRYABLE_CODES or code.startswith(_NOT_RETRYABLE_PREFIXES):
        return code in _RETRYABLE_CODES  # e.g. KMS.ThrottlingException
    if code in _RETRYABLE_CODES or code.startswith(_RETRYABLE_PREFIXES):
        return True
    return isinstance(status, int) and (status >= 500 or status == 429)


def _http_status_failure(exc: urllib.error.HTTPError, method: str, shown: str) -> TargetFailure:
    code = exc.code
    try:
        snippet = exc.read(512).decode("utf-8", errors="replace").strip()
    except Exception:  # the body is only decoration for the message
        snippet = ""
    finally:
        exc.close()
    message = f"HTTP {code} {exc.reason} from {method} {shown}"
    if 300 <= code < 400:
        message += f"; redirects are not followed (Location: {exc.headers.get('Location') or 'none'})"
    elif snippet:
        message += f": {snippet[:256]}"
    return TargetFailure("HttpError", message, retryable=code in (408, 429) or code >= 500)


def _network_failure(reason: Any, method: str, shown: str) -> TargetFailure:
    if isinstance(reason, TimeoutError):
        return TargetFailure("Timeout", f"{method} {shown} did not answer in time", retryable=True)
    if isinstance(reason, ssl.SSLCertVerificationError):
        return TargetFailure("TlsError", f"{method} {shown}: {reason}", retryable=False)
    return TargetFailure("ConnectionError", f"{method} {shown}: {reason}", retryable=True)


def _refuse_private_host(parts: urllib.parse.SplitResult) -> None:
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetFailure("ConnectionError", f"cannot resolve {host}: {exc}", retryable=True) from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise TargetFailure(
                "ForbiddenTarget", f"{host} resolves to the non-public address {ip}", retryable=False
            )


def _read_until(response: http.client.HTTPResponse, limit: int, deadline: float) -> bytes:
    # read1 returns what has arrived, so a server dripping bytes cannot hold us far past deadline.
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not arrive in time")
        chunk = response.read1(min(65536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _shown_url(parts: urllib.parse.SplitResult) -> str:
    # Query strings and user info often carry secrets; keep them out of error messages.
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path or '/'}"


def _required_str(target: dict[str, Any], key: str) -> str:
    value = target.get(key)
    if not isinstance(value, str) or not value:
        raise TargetFailure(
            "InvalidTarget", f"a {target.get('type')} target needs a non-empty {key!r}", retryable=False
        )
    return value


def _dumps(envelope: Any) -> str:
    try:
        return json.dumps(envelope, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TargetFailure("InvalidPayload", f"the envelope is not JSON: {exc}", retryable=False) from None


def _answer(raw: bytes, charset: str = "utf-8", gate: threading.Semaphore | None = None) -> Any:
    """A target's answer: JSON as its value, a large JSON answer as :class:`RawJson` (checked, not
    built: domain/results.py), any other text cut to MAX_TEXT_RESULT_BYTES. Large answers are checked
    one ``gate`` place at a time (the worker sizes it from its memory), so a batch of them arriving at
    once never holds more memory than the worker has; a check waits for nothing else, so never for
    itself."""
    if len(raw) <= LARGE_RESULT_BYTES:
        return _parse_json_or_text(_decoded(raw, charset))
    with gate if gate is not None else contextlib.nullcontext():
        text = _decoded(raw, charset)
        try:
            large = checked_json(text)
        except NotJson:
            return _truncate(text, MAX_TEXT_RESULT_BYTES)
        return large if large is not None else _parse_json_or_text(text)


def _decoded(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _parse_json_or_text(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return _truncate(text, MAX_TEXT_RESULT_BYTES)


def _truncate(text: str, max_bytes: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
