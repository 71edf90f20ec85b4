"""A small HTTP server that turns requests into API Gateway REST proxy events for the api handler.

Like API Gateway with API keys, it resolves the ``x-api-key`` header to the key's id and puts it in
``requestContext.identity.apiKeyId``; the handler takes the tenant from there. An unknown key is
passed on without an id, and the handler answers 401.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from taskplane.local.context import LocalContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
#: Requests larger than this are refused before reaching the handler (API Gateway's limit is 10 MB).
GATEWAY_MAX_BODY = 10 * 1024 * 1024


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


def make_server(host: str, port: int, handler: Handler, key_ids: Mapping[str, str]) -> ThreadingHTTPServer:
    """An HTTP server on (host, port) that serves ``handler`` with API-key -> tenant resolution.

    Requests reach the handler one at a time, as in one Lambda execution environment: the
    Powertools resolver keeps the current event on the app object.
    """
    one_at_a_time = threading.Lock()

    class Gateway(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "taskplane-dev"

        def log_message(self, format: str, *args: Any) -> None:  # quiet; the handler logs
            return

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > GATEWAY_MAX_BODY:
                self._reply(
                    413,
                    {"Content-Type": "application/json"},
                    json.dumps({"message": "Request Too Long"}).encode(),
                )
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            event = build_event(
                self.command, self.path, dict(self.headers.items()), body, key_ids, self.client_address[0]
            )
            try:
                with one_at_a_time:
                    response = handler(event, LocalContext(function_name="taskplane-api", timeout_s=29))
            except Exception as exc:  # mirrors API Gateway's answer when the function itself crashes
                payload = json.dumps({"message": "Internal server error", "error": type(exc).__name__})
                self._reply(502, {"Content-Type": "application/json"}, payload.encode())
                return
            out_headers: dict[str, str] = dict(response.get("headers") or {})
            for name, values in (response.get("multiValueHeaders") or {}).items():
                out_headers[name] = ", ".join(str(v) for v in values)
            raw = response.get("body") or ""
            data = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode()
            self._reply(int(response.get("statusCode", 200)), out_headers, data)

        def _reply(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    server = ThreadingHTTPServer((host, port), Gateway)
    server.daemon_threads = True
    return server
