"""A small HTTP server that turns requests into API Gateway REST proxy events for the api handler.

Like API Gateway with API keys, it resolves the ``x-api-key`` header to the key's id and puts it in
``requestContext.identity.apiKeyId``; the handler takes the tenant from there. An unknown key is
passed on without an id, and the handler answers 401.

It speaks the API's contract at the HTTP level too: whatever arrives, the answer is the JSON error
shape ``{"error": {"code", "message", "details"}}`` and the connection is either ready for the next
request or closed, never left holding unread bytes or waiting on a client forever:

====================================================  ======  =====================================
request                                               status  then
====================================================  ======  =====================================
a method the API has no use for (TRACE, CONNECT, ...)   405   ``Allow`` lists the methods served
a malformed request line or HTTP version, a bad or      400   the connection is closed (the body's
negative ``Content-Length``, two that disagree,               end is unknown)
``Transfer-Encoding`` other than chunked or together
with ``Content-Length``, a malformed chunked body
a body announced (``Content-Type``) with no length      411   closed
a body over 10 MiB (declared, or as chunks arrive)      413   closed after the answer (a client
                                                              sending 100-continue is answered
                                                              before it sends the body)
a request line over 10,240 bytes                        414   closed
request line and headers over 10,240 bytes, a header    431   closed
line too long or more than 100 headers
a request or body that stops arriving for 30 s          408   closed
the handler raising                                     502   logged with its traceback
====================================================  ======  =====================================

Chunked bodies (``Transfer-Encoding: chunked``, which API Gateway accepts) are read whole, trailers
included, and handed to the handler like any other body.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from taskplane.local.context import LocalContext
from taskplane.observability import logger

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
#: Requests larger than this are refused before reaching the handler (API Gateway's limit is 10 MB).
GATEWAY_MAX_BODY = 10 * 1024 * 1024
#: Longest request line (method, URI, version): API Gateway's URL limit for a regional REST API.
MAX_REQUEST_LINE = 10_240
#: Longest request line and headers together (API Gateway's quota on their combined size).
MAX_HEAD_BYTES = 10_240
#: Methods passed to the handler; any other is a 405 naming these.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Methods whose request may carry a body that must then say how long it is.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Seconds a connection may stay silent mid-request (or idle between requests) before it is closed.
READ_TIMEOUT_S = 30.0
#: After an answer that closes the connection early, how long unread request bytes are drained so the
#: client reads the answer instead of a reset.
LINGER_S = 1.0
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")


class _Refusal(Exception):
    """A request answered by the gateway itself, in the API's error shape."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def header_text(value: str) -> str:
    """A header value as API Gateway hands it to Lambda: its bytes read as UTF-8 (``http.server`` reads
    them as Latin-1, so "café" sent as UTF-8 arrived as "cafÃ©"). Bytes that are not UTF-8 become lone
    surrogates, which the API refuses with a 400 naming the header (functions/api/handler.py)."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:  # (already text beyond Latin-1: nothing to undo)
        return value
    return raw.decode("utf-8", "surrogateescape")


def build_event(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    key_ids: Mapping[str, str],
    source_ip: str,
) -> dict[str, Any]:
    """The REST proxy event API Gateway would send for this request."""
    parts = urlsplit(raw_path)
    query = parse_qs(parts.query, keep_blank_values=True)
    api_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
    text_body: str | None
    is_b64 = False
    if not body:
        text_body = None
    else:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_b64 = base64.b64encode(body).decode(), True
    path = unquote(parts.path) or "/"
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/local{path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "protocol": "HTTP/1.1",
            "identity": {
                "apiKey": api_key if api_key in key_ids else None,
                "apiKeyId": key_ids.get(api_key) if api_key else None,
                "sourceIp": source_ip,
                "userAgent": headers.get("User-Agent") or headers.get("user-agent"),
            },
        },
        "body": text_body,
        "isBase64Encoded": is_b64,
    }


def make_server(
    host: str,
    port: int,
    handler: Handler,
    key_ids: Mapping[str, str],
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> ThreadingHTTPServer:
    """An HTTP server on (host, port) that serves ``handler`` with API-key -> tenant resolution.

    Requests reach the handler one at a time, as in one Lambda execution environment: the
    Powertools resolver keeps the current event on the app object. A client silent for
    ``read_timeout_s`` in the middle of a request gets a 408 (between requests, the connection closes).
    """
    one_at_a_time = threading.Lock()

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Every answer has a status line, even to a request whose version could not be read.
        default_request_version = "HTTP/1.1"
        server_version = "taskplane-dev"
        timeout = read_timeout_s  # the socket's: a silent client is noticed, never waited on forever

        def log_message(self, format: str, *args: Any) -> None:  # quiet; the handler logs
            return

        # -- one request ---------------------------------------------------------------------------
        def handle_one_request(self) -> None:
            self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
            started = False
            try:
                line = self.rfile.readline(MAX_REQUEST_LINE + 1)
                while line in (b"\r\n", b"\n"):  # blank lines before a request are allowed
                    line = self.rfile.readline(MAX_REQUEST_LINE + 1)
                if not line:
                    self.close_connection = True
                    return
                started = True
                if len(line) > MAX_REQUEST_LINE:
                    raise _Refusal(414, "uri_too_long", f"the request line is over {MAX_REQUEST_LINE} bytes")
                if not line.endswith(b"\n"):
                    raise _Refusal(400, "invalid_request", "the request line ended early")
                if len(line.split()) != 3:
                    # Not METHOD URI VERSION (HTTP/0.9's "GET /" included: no one speaks it any more).
                    raise _Refusal(
                        400, "invalid_request", "malformed request line: expected METHOD URI HTTP/1.1"
                    )
                self.raw_requestline = line
                if not self.parse_request():  # it answered through send_error (our JSON shape)
                    self.close_connection = True
                    return
                self._check_head_size()
                if self.command not in METHODS:
                    raise _Refusal(
                        405,
                        "method_not_allowed",
                        f"method {self.command[:20]!r} is not served; use one of {', '.join(METHODS)}",
                        headers={"Allow": ", ".join(METHODS)},
                    )
                body = self._read_body()
                self._serve(body)
                self.wfile.flush()
            except _Refusal as refusal:
                self._refuse(refusal)
            except TimeoutError:
                # A silent client: answer if a request had begun, then let the connection go.
                if started:
                    self._refuse(_Refusal(408, "request_timeout", "the request did not arrive in time"))
                self.close_connection = True
            except (ConnectionError, BrokenPipeError):
                self.close_connection = True

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """What the standard library answers itself (bad request line, header limits, ...), in
            the API's error shape instead of its HTML page."""
            status, kind = {
                400: (400, "invalid_request"),
                414: (414, "uri_too_long"),
                431: (431, "headers_too_large"),
                505: (400, "invalid_request"),  # HTTP/2.0 in a request line: malformed for HTTP/1.x
            }.get(code, (400, "invalid_request"))
            text = message or "malformed request"
            if code == 505:
                text = "only HTTP/1.0 and HTTP/1.1 are spoken here"
            elif code == 431:
                text = f"request headers too large: {message or ''}".rstrip(": ")
            self._refuse(_Refusal(status, kind, text))

        def handle_expect_100(self) -> bool:
            # Answer before the body is sent when it would be refused anyway (over the limit, no length).
            try:
                self._framing()
            except _Refusal as refusal:
                self._refuse(refusal)
                return False
            return super().handle_expect_100()

        # -- body ------------------------------------------------------------------------------------
        def _check_head_size(self) -> None:
            size = len(self.raw_requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())
            if size > MAX_HEAD_BYTES:
                raise _Refusal(
                    431,
                    "headers_too_large",
                    f"the request line and headers are {size} bytes; the limit is {MAX_HEAD_BYTES}",
                )

        def _framing(self) -> tuple[str, int]:
            """("length", n) or ("chunked", 0), or a refusal for a body whose end cannot be known."""
            encodings = [v.strip().lower() for v in self.headers.get_all("Transfer-Encoding") or []]
            lengths = [v.strip() for v in self.headers.get_all("Content-Length") or []]
            if encodings:
                if lengths:
                    raise _Refusal(
                        400,
                        "invalid_request",
                        "send Transfer-Encoding or Content-Length, not both",
                    )
                if [e for v in encodings for e in v.split(",")] != ["chunked"]:
                    raise _Refusal(
                        400,
                        "invalid_request",
                        f"Transfer-Encoding {', '.join(encodings)[:60]!r} is not supported: send the body "
                        "with Content-Length or Transfer-Encoding: chunked",
                    )
                return "chunked", 0
            if lengths:
                values = {v.strip() for part in lengths for v in part.split(",")}
                if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
                    shown = ", ".join(lengths)[:40]
                    raise _Refusal(
                        400,
                        "invalid_request",
                        f"Content-Length {shown!r} is not one whole number of bytes",
                    )
                length = int(value)
                if length > GATEWAY_MAX_BODY:
                    raise _Refusal(
                        413,
                        "payload_too_large",
                        f"request body is {length} bytes; the limit is {GATEWAY_MAX_BODY} bytes",
                    )
                return "length", length
            if self.command in BODY_METHODS and self.headers.get("Content-Type"):
                raise _Refusal(
                    411,
                    "length_required",
                    "the request has a Content-Type but no Content-Length: send Content-Length "
                    "(0 for no body) or Transfer-Encoding: chunked",
                )
            return "length", 0

        def _read_body(self) -> bytes:
            kind, length = self._framing()
            if kind == "chunked":
                return self._read_chunked()
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                raise _Refusal(400, "invalid_request", f"the body ended after {len(body)} of {length} bytes")
            return body

        def _read_chunked(self) -> bytes:
            body = bytearray()
            while True:
                line = self.rfile.readline(1024)
                size_text = line.split(b";", 1)[0].strip()
                if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
                    raise _Refusal(400, "invalid_request", "malformed chunked body: bad chunk size line")
                size = int(size_text, 16)
                if len(body) + size > GATEWAY_MAX_BODY:
                    raise _Refusal(
                        413,
                        "payload_too_large",
                        f"the chunked body is over the {GATEWAY_MAX_BODY}-byte limit",
                    )
                if size == 0:
                    break
                data = self.rfile.read(size)
                if len(data) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise _Refusal(400, "invalid_request", "malformed chunked body: a chunk ended early")
                body += data
            for _ in range(100):  # trailer fields, then the blank line that ends the message
                line = self.rfile.readline(8192)
                if line in (b"\r\n", b"\n"):
                    return bytes(body)
                if not line.endswith(b"\n"):
                    break
            raise _Refusal(400, "invalid_request", "malformed chunked body: its trailer does not end")

        # -- answers ---------------------------------------------------------------------------------
        def _serve(self, body: bytes) -> None:
            event = build_event(
                self.command,
                self.path,
                {name: header_text(value) for name, value in self.headers.items()},
                body,
                key_ids,
                self.client_address[0],
            )
            try:
                with one_at_a_time:
                    response = handler(event, LocalContext(function_name="taskplane-api", timeout_s=29))
                out_headers: dict[str, str] = {
                    str(k): str(v) for k, v in (response.get("headers") or {}).items()
                }
                for name, values in (response.get("multiValueHeaders") or {}).items():
                    out_headers[name] = ", ".join(str(v) for v in values)
                raw = response.get("body") or ""
                data = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode()
                status = int(response.get("statusCode", 200))
            except Exception as exc:  # API Gateway answers 502 when the function itself fails
                logger.exception(
                    "api handler crashed", extra={"method": self.command, "path": event.get("path")}
                )
                self._refuse(
                    _Refusal(502, "internal_error", f"the API handler failed ({type(exc).__name__})"),
                    close=False,
                )
                return
            self._reply(status, out_headers, data)

        def _refuse(self, refusal: _Refusal, *, close: bool = True) -> None:
            body = {"error": {"code": refusal.code, "message": refusal.message, "details": []}}
            headers = {"Content-Type": "application/json", **refusal.headers}
            if close:
                headers["Connection"] = "close"
                self.close_connection = True
            try:
                self._reply(refusal.status, headers, json.dumps(body).encode())
                self.wfile.flush()
            except OSError:
                self.close_connection = True
                return
            if close:
                self._linger()

        def _linger(self) -> None:
            """Read and drop what the client is still sending (up to LINGER_S of quiet), so closing the
            socket does not reset the connection before the client has read the answer."""
            try:
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(LINGER_S)
                deadline = time.monotonic() + 10 * LINGER_S
                while time.monotonic() < deadline and self.connection.recv(65536):
                    pass
            except OSError:
                pass

        def _reply(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    server = ThreadingHTTPServer((host, port), Gateway)
    server.daemon_threads = True
    return server
