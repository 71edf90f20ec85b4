"""A small client for the taskplane HTTP API, built on the standard library only.

It is what the CLI uses, and it is safe to import anywhere: no boto3, no moto, no rich.
"""

from __future__ import annotations

import builtins
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from taskplane import __version__

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "TASKPLANE_URL"
API_KEY_ENV = "TASKPLANE_API_KEY"
#: States after which a task never changes again.
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
#: Largest batch the API accepts in one ``POST /v1/tasks/batch``.
MAX_BATCH = 500
#: Statuses that mean "come back later": the request was not accepted, so sending it again is safe.
RETRY_STATUSES = frozenset({429, 503})
#: Longest single wait between retries, whatever ``Retry-After`` asks for.
MAX_RETRY_WAIT_S = 30.0

Json = dict[str, Any]


class TaskplaneError(Exception):
    """An error answer from the API, or no answer at all.

    Parameters
    ----------
    status : int
        The HTTP status; 0 when the server could not be reached or did not answer.
    code : str
        The API's ``error.code`` (``invalid_request``, ``not_found``, ...); ``http_<status>`` when the
        body was not the API's error shape; ``connection_error`` or ``timeout`` when there was no answer.
    message : str
        Human-readable explanation.
    details : list, optional
        The API's ``error.details`` (for validation errors: which field and what is wrong with it).
    """

    def __init__(
        self, status: int, code: str, message: str, details: builtins.list[Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.status = status
        self.code = code
        self.message = message
        self.details: builtins.list[Any] = list(details or [])

    @classmethod
    def from_response(cls, status: int, body: Any, reason: str = "") -> TaskplaneError:
        """Build the error from a decoded response body, whatever its shape."""
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                details = error.get("details")
                return cls(
                    status,
                    str(error.get("code") or f"http_{status}"),
                    str(error.get("message") or reason or "request failed"),
                    details if isinstance(details, builtins.list) else [details] if details else [],
                )
            # API Gateway's own answers (missing key, throttled by the usage plan) look like {"message": ...}.
            if isinstance(body.get("message"), str):
                return cls(status, f"http_{status}", body["message"])
        if isinstance(body, str) and body.strip():
            text = " ".join(body.split())
            return cls(status, f"http_{status}", text[:300] + ("..." if len(text) > 300 else ""))
        return cls(status, f"http_{status}", reason or "request failed")


class WaitTimeoutError(TimeoutError):
    """:meth:`Client.wait` gave up; ``task`` is the last version of the task it saw."""

    def __init__(self, message: str, task: Json) -> None:
        super().__init__(message)
        self.task = task


def quote_segment(value: object) -> str:
    """Quote one path segment so ids with ``/``, ``?``, ``#`` or spaces stay one segment."""
    return urllib.parse.quote(str(value), safe="")


#: Payloads larger than this (as JSON) are uploaded instead of sent in the request (domain/blobs.py).
REQUEST_PAYLOAD_BYTES = 5 * 1024 * 1024


class Client:
    """Client for the taskplane HTTP API.

    Parameters
    ----------
    url : str, optional
        Base URL of the API (without ``/v1``). Defaults to env ``TASKPLANE_URL``, then
        ``http://127.0.0.1:8080`` (what ``taskplane dev`` serves).
    api_key : str, optional
        Sent as the ``x-api-key`` header. Defaults to env ``TASKPLANE_API_KEY``.
    timeout_s : float
        Socket timeout of one HTTP request.
    max_retries : int
        How many times a ``429`` or ``503`` answer is retried before it is raised.
    sleep : callable
        Used to wait between retries and polls; inject a fake in tests.
    monotonic : callable
        Clock used by :meth:`wait` for its deadline; inject a fake together with ``sleep``.

    Examples
    --------
    With ``taskplane dev`` running:

    >>> client = Client("http://127.0.0.1:8080", api_key="dev-key")  # doctest: +SKIP
    >>> task = client.submit({"target": {"type": "builtin", "name": "echo"}, "payload": {"hi": 1}})  # doctest: +SKIP
    >>> client.wait(task["task_id"])["state"]  # doctest: +SKIP
    'SUCCEEDED'
    >>> sum(1 for _ in client.iter_tasks(state="FAILED"))  # doctest: +SKIP
    0
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30,
        max_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        base = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        # People paste the URL with the version on it; every path below already starts with /v1.
        self.url = base[: -len("/v1")] if base.endswith("/v1") else base
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._sleep = sleep
        self._monotonic = monotonic

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # -- transport -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> tuple[int, Json | builtins.list[Any] | str | None]:
        """Send one API request, retrying ``429`` / ``503`` answers, and decode the answer.

        Parameters
        ----------
        method : str
            HTTP method.
        path : str
            Path under the base URL, e.g. ``"/v1/tasks"``. Quote ids with :func:`quote_segment`.
        body : optional
            ``str`` or ``bytes`` are sent as they are (set ``Content-Type`` in ``headers``, e.g.
            ``application/yaml``); anything else is sent as JSON. ``None`` sends no body.
        headers : mapping, optional
            Extra headers.
        query : mapping, optional
            Query parameters; ``None`` values are left out.

        Returns
        -------
        tuple
            ``(status, decoded body)``: a JSON value, text when the body is not JSON, ``None`` when empty.

        Raises
        ------
        TaskplaneError
            For any status >= 400 (after the retries), and with status 0 when the server cannot be reached.
        """
        url = self.url + (path if path.startswith("/") else "/" + path)
        if query:
            pairs = {k: v for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        send_headers = {"Accept": "application/json", "User-Agent": f"taskplane-client/{__version__}"}
        data: bytes | None = None
        if body is not None:
            if isinstance(body, bytes | str):
                data = body.encode() if isinstance(body, str) else body
                send_headers["Content-Type"] = "application/octet-stream"
            else:
                data = json.dumps(body, separators=(",", ":")).encode()
                send_headers["Content-Type"] = "application/json"
        if self.api_key:
            send_headers["x-api-key"] = self.api_key
        # Caller headers win, compared case-insensitively so "content-type" replaces "Content-Type".
        for name, value in (headers or {}).items():
            for existing in [k for k in send_headers if k.lower() == name.lower()]:
                del send_headers[existing]
            send_headers[name] = value

        attempt = 0
        while True:
            status, reply_headers, decoded, reason = self._send(method.upper(), url, data, send_headers)
            if status < 400:
                return status, decoded
            if status in RETRY_STATUSES and attempt < self.max_retries:
                self._sleep(_retry_wait_s(reply_headers.get("retry-after"), attempt))
                attempt += 1
                continue
            raise TaskplaneError.from_response(status, decoded, reason)

    def _send(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], Any, str]:
        """One HTTP exchange; answers (status, lower-cased headers, decoded body, reason)."""
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                reply = {k.lower(): v for k, v in resp.headers.items()}
                return resp.status, reply, _decode(resp.read(), reply), resp.reason or ""
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            reply = {k.lower(): v for k, v in (exc.headers or {}).items()}
            return exc.code, reply, _decode(raw, reply), str(exc.reason or "")
        except urllib.error.URLError as exc:
            raise self._no_answer(url, exc.reason) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise self._no_answer(url, exc) from exc

    def _no_answer(self, url: str, reason: object) -> TaskplaneError:
        if isinstance(reason, TimeoutError):
            return TaskplaneError(
                0, "timeout", f"no answer from {url} within {self.timeout_s:g}s; is the server overloaded?"
            )
        return TaskplaneError(
            0,
            "connection_error",
            f"could not reach {url} ({reason or 'no answer'}); check that `taskplane dev` is running, "
            f"or set --url / {URL_ENV} to the API's address",
        )

    def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        status, body = self.request(method, path, **kwargs)
        if not isinstance(body, dict):
            raise TaskplaneError(
                status, "bad_response", f"{method} {path} answered {type(body).__name__}, not a JSON object"
            )
        return body

    # -- tasks -----------------------------------------------------------------------------------

    def health(self) -> Json:
        """``GET /v1/health``; needs no API key."""
        return self._json("GET", "/v1/health")

    def submit(self, task: Mapping[str, Any], idempotency_key: str | None = None) -> Json:
        """Submit one task body; answers the task resource.

        With ``idempotency_key``, sending the same body again answers the same task instead of a new one.
        A payload too large for one request (over 5 MiB as JSON) is uploaded first and named by
        ``payload_ref`` (``POST /v1/uploads``), so any payload up to 100 MiB just works.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = dict(task)
        if "payload" in body:
            data = json.dumps(body["payload"], separators=(",", ":"), ensure_ascii=False).encode()
            if len(data) > REQUEST_PAYLOAD_BYTES:
                body["payload_ref"] = self.upload(data)
                del body["payload"]
        return self._json("POST", "/v1/tasks", body=body, headers=headers)

    def upload(self, data: bytes) -> str:
        """Upload a JSON payload to a presigned URL (``POST /v1/uploads``); answers its ``upload_id``."""
        slot = self._json("POST", "/v1/uploads")
        if len(data) > int(slot.get("max_bytes", len(data))):
            raise TaskplaneError(
                413, "payload_too_large", f"payload is {len(data)} bytes; uploads take {slot['max_bytes']}"
            )
        status, _, decoded, reason = self._send(
            str(slot.get("method", "PUT")), str(slot["upload_url"]), data, dict(slot.get("headers") or {})
        )
        if status >= 400:
            raise TaskplaneError.from_response(status, decoded, f"upload failed: {reason}")
        return str(slot["upload_id"])

    def result(self, task: Mapping[str, Any]) -> Any:
        """A finished task's result, read from its ``result_url`` when it was too large to keep inline."""
        url = task.get("result_url")
        if not url:
            return task.get("result")
        status, _, decoded, reason = self._send("GET", str(url), None, {})
        if status >= 400:
            raise TaskplaneError.from_response(status, decoded, f"reading the result failed: {reason}")
        return decoded

    def submit_batch(self, tasks: Iterable[Mapping[str, Any]]) -> Json:
        """Submit up to 500 task bodies in one call; answers ``{"results": [{"index", "task_id" | "error"}]}``.

        Some tasks may be accepted while others are rejected: check every result.
        """
        items = [dict(t) for t in tasks]
        if len(items) > MAX_BATCH:
            raise ValueError(f"a batch holds at most {MAX_BATCH} tasks, got {len(items)}; use submit_many")
        return self._json("POST", "/v1/tasks/batch", body={"tasks": items})

    def submit_many(
        self,
        tasks: Iterable[Mapping[str, Any]],
        chunk: int = 100,
        on_progress: Callable[[int, int], None] | None = None,
        on_retry: Callable[[int, float], None] | None = None,
    ) -> builtins.list[Json]:
        """Submit any number of task bodies as consecutive batches, retrying throttled items.

        Parameters
        ----------
        tasks : iterable of dict
            Task bodies.
        chunk : int
            Tasks per batch call (1 to 500).
        on_progress : callable, optional
            Called as ``on_progress(done, total)`` after every batch.
        on_retry : callable, optional
            Called as ``on_retry(count, wait_s)`` before ``count`` items of a batch are sent again.

        Returns
        -------
        list of dict
            One result per task, in input order, with ``index`` counted over all tasks:
            ``{"index", "task_id"}`` or ``{"index", "error": {"code", "message", ...}}``.
            An item the API did not accept but asks to send again (``throttled``: its lane was full,
            with ``retry_after_s``; ``unavailable``: a dependency failed) is sent again after that
            delay (else an exponential backoff), at most ``max_retries`` times and
            ``MAX_RETRY_WAIT_S`` per wait; one still refused then keeps its last error. A batch
            refused as a whole (e.g. 413, or 429 after the retries) marks each of its tasks with that
            error and the next batches still go; an error that would repeat for every batch (no
            connection, bad key) is raised.
        """
        if not 1 <= chunk <= MAX_BATCH:
            raise ValueError(f"chunk must be between 1 and {MAX_BATCH}, got {chunk}")
        items = builtins.list(tasks)
        total = len(items)
        results: builtins.list[Json] = []
        for start in range(0, total, chunk):
            part = items[start : start + chunk]
            results.extend({**r, "index": start + i} for i, r in enumerate(self._submit_part(part, on_retry)))
            if on_progress is not None:
                on_progress(len(results), total)
        return results

    def _submit_part(
        self, part: builtins.list[Mapping[str, Any]], on_retry: Callable[[int, float], None] | None
    ) -> builtins.list[Json]:
        """One batch's results in order, its retryable items sent again until settled (bounded)."""
        final: dict[int, Json] = {}
        pending = builtins.list(range(len(part)))
        attempt = 0
        while pending:
            try:
                answer = self.submit_batch([part[i] for i in pending])
            except TaskplaneError as exc:
                if exc.status in (0, 401, 403):
                    raise
                error = {"code": exc.code, "message": exc.message, "details": exc.details}
                final.update((i, {"error": error}) for i in pending)
                break
            by_index: dict[int, Json] = {}
            for result in answer.get("results") or []:
                if isinstance(result, dict) and isinstance(result.get("index"), int):
                    by_index[result["index"]] = result
            again: builtins.list[int] = []
            hints: builtins.list[str | None] = []
            for sent, i in enumerate(pending):
                result = by_index.get(sent) or {
                    "error": {
                        "code": "missing_result",
                        "message": "the batch answer has no result for this task",
                    }
                }
                if attempt < self.max_retries and _worth_retrying(result):
                    again.append(i)
                    hint = result.get("retry_after_s")
                    hints.append(None if hint is None else str(hint))
                else:
                    final[i] = {k: v for k, v in result.items() if k != "index"}
            if again:
                wait = max(_retry_wait_s(hint, attempt) for hint in hints)
                if on_retry is not None:
                    on_retry(len(again), wait)
                self._sleep(wait)
                attempt += 1
            pending = again
        return [final[i] for i in range(len(part))]

    def get(self, task_id: str) -> Json:
        """``GET /v1/tasks/{task_id}``: the task, with its history."""
        return self._json("GET", f"/v1/tasks/{quote_segment(task_id)}")

    def cancel(self, task_id: str) -> Json:
        """Cancel a task that has not started; the API answers 409 when it is running or finished."""
        return self._json("POST", f"/v1/tasks/{quote_segment(task_id)}/cancel")

    def wait(self, task_id: str, timeout_s: float = 60, poll_s: float = 0.1) -> Json:
        """Poll a task until it is ``SUCCEEDED``, ``FAILED`` or ``CANCELLED`` and answer it.

        Raises
        ------
        WaitTimeoutError
            A ``TimeoutError`` naming the last state seen, when ``timeout_s`` passes first.
        """
        deadline = self._monotonic() + timeout_s
        while True:
            task = self.get(task_id)
            if task.get("state") in TERMINAL_STATES:
                return task
            if self._monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"task {task_id} is still {task.get('state')} after {timeout_s:g}s", task=task
                )
            self._sleep(poll_s)

    def iter_tasks(self, state: str | None = None, page_size: int = 100) -> Iterator[Json]:
        """Every task of this tenant, newest first, following ``next_cursor`` page by page."""
        cursor: str | None = None
        while True:
            page = self.list(state=state, limit=page_size, cursor=cursor)
            yield from page.get("items") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- workflows -------------------------------------------------------------------------------

    def put_flow(self, flow: Any) -> Json:
        """Publish a Python flow (``@flow`` of :mod:`taskplane.flow`) as a workflow definition.

        The flow is recorded here (its function runs once with its tasks replaced by recorders) and
        its definition is sent as the YAML ``taskplane workflow put FILE.py --dry-run`` prints;
        answers the API's reply (``name``, ``version``, ``published``, ``nodes``, ``edges``).

        Raises
        ------
        taskplane.flow.FlowError
            The flow cannot be recorded (with the file and line at fault); nothing is sent.
        TaskplaneError
            The API refused the definition (e.g. a target off the tenant's allow-list).
        """
        from taskplane.flow import as_flow

        definition = as_flow(flow).definition()
        return self._json(
            "PUT",
            f"/v1/workflows/{quote_segment(definition.name)}",
            body=definition.yaml(),
            headers={"Content-Type": "application/yaml"},
        )

    # Last, so that ``list`` in the annotations above still means the builtin to type checkers.
    def list(self, state: str | None = None, limit: int | None = None, cursor: str | None = None) -> Json:
        """One page of tasks, newest first: ``{"items": [...], "next_cursor": str | None}``."""
        return self._json("GET", "/v1/tasks", query={"state": state, "limit": limit, "cursor": cursor})


def _decode(raw: bytes, headers: Mapping[str, str]) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    content_type = headers.get("content-type", "")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


#: Codes of batch items the API did not accept and asks to send again.
RETRY_ITEM_CODES = frozenset({"throttled", "unavailable"})


def _worth_retrying(result: Json) -> bool:
    error = result.get("error")
    return isinstance(error, dict) and error.get("code") in RETRY_ITEM_CODES


def _retry_wait_s(retry_after: str | None, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``Retry-After`` if usable, else backoff."""
    try:
        wait = float(retry_after) if retry_after is not None else None
    except ValueError:
        wait = None  # an HTTP date; the API sends seconds, so back off instead of parsing dates
    if wait is None or not math.isfinite(wait) or wait < 0:
        wait = 0.5 * 2**attempt
    return min(wait, MAX_RETRY_WAIT_S)


__all__ = [
    "DEFAULT_URL",
    "MAX_BATCH",
    "TERMINAL_STATES",
    "Client",
    "TaskplaneError",
    "WaitTimeoutError",
    "quote_segment",
]
