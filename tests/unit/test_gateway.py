"""The local gateway with a stand-in handler (loopback only): crashes are logged and answered in the API's
shape, and a client that stops sending mid-request gets a 408 instead of holding a thread forever."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskplane.local.gateway import make_server

pytestmark = pytest.mark.unit


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[str, int]]]:
    servers = []

    def start(handler: Callable[[dict[str, Any], Any], dict[str, Any]], **options: Any) -> tuple[str, int]:
        server = make_server("127.0.0.1", 0, handler, {"k": "acme"}, **options)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return "127.0.0.1", server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_handler_crash_is_logged_and_answered_502_in_the_error_shape(serve):
    # Given a handler that raises, and the platform logger captured
    from taskplane.observability import logger

    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("the handler broke")

    host, port = serve(crash)
    captured = io.StringIO()
    stream = logger.registered_handler.setStream(captured)
    try:
        # When a request reaches it
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/v1/tasks", headers={"x-api-key": "k"})
        response = conn.getresponse()
        body = json.loads(response.read())
        # Then the client gets a 502 in the API's shape and the connection still serves
        assert response.status == 502
        assert body["error"]["code"] == "internal_error" and "RuntimeError" in body["error"]["message"]
        conn.request("GET", "/v1/tasks", headers={"x-api-key": "k"})
        assert conn.getresponse().status == 502
    finally:
        logger.registered_handler.setStream(stream)
    # And the crash is in the log with its traceback, the method and the path
    (line, *_) = [json.loads(x) for x in captured.getvalue().splitlines() if "api handler crashed" in x]
    assert line["level"] == "ERROR" and (line["method"], line["path"]) == ("GET", "/v1/tasks")
    assert "the handler broke" in line["exception"] and "Traceback" in line["exception"]


def test_a_client_that_stops_mid_request_gets_a_408(serve):
    # Given a gateway that waits 0.3 s for a silent client
    host, port = serve(lambda event, context: {"statusCode": 200, "body": "{}"}, read_timeout_s=0.3)
    with socket.create_connection((host, port), timeout=10) as sock:
        # When a request stops halfway through its headers
        sock.sendall(b"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Le")
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        # Then it is answered 408 in the API's shape, and the connection is closed
        assert response.status == 408
        assert json.loads(response.read())["error"]["code"] == "request_timeout"
        assert sock.recv(1) == b""


def test_an_idle_connection_is_closed_quietly(serve):
    # Given a connection that never sends a request / Then it is closed, with nothing written to it
    host, port = serve(lambda event, context: {"statusCode": 200, "body": "{}"}, read_timeout_s=0.3)
    with socket.create_connection((host, port), timeout=10) as sock:
        assert sock.recv(1) == b""


def raw_request(host: str, port: int, head: bytes) -> tuple[int, bytes]:
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_header_values_reach_the_handler_as_utf_8_like_api_gateway_passes_them(serve):
    # Given a handler that answers the header values it was given
    def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen = {k.lower(): v for k, v in event["headers"].items() if k.lower().startswith("x-")}
        body = json.dumps(seen, ensure_ascii=True)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": body}

    host, port = serve(echo)
    # When a client sends UTF-8 header values (what API Gateway decodes as UTF-8), and one that is not UTF-8
    head = (
        b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key: k\r\n"
        + "x-name: café 日本\r\n".encode()
        + b"x-bad: \xff\xfe\r\n\r\n"
    )
    status, body = raw_request(host, port, head)
    seen = json.loads(body)
    # Then the handler got the text the client meant (not its bytes read as Latin-1: "cafÃ©")
    assert status == 200
    assert seen["x-name"] == "café 日本"
    # and bytes that are not text reach it as lone surrogates, which the API answers with a 400
    assert seen["x-bad"] == "\udcff\udcfe"
    assert seen["x-api-key"] == "k"


def test_a_header_that_is_not_utf_8_is_a_400_from_the_api_naming_it():
    # The API's own check of text outside the body (as for a lone surrogate API Gateway could pass)
    from taskplane.local.gateway import build_event, header_text

    event = build_event(
        "GET", "/v1/tasks", {"x-api-key": "k", "x-bad": header_text("\xff")}, b"", {"k": "acme"}, "127.0.0.1"
    )
    from functions.api.handler import _early_answer

    answer = _early_answer(event)
    assert answer is not None and answer["statusCode"] == 400
    assert "x-bad" in json.loads(answer["body"])["error"]["message"]
