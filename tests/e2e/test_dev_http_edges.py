"""`taskplane dev` over raw sockets: every answer is the API's JSON error shape, no request hangs, and a
connection is either clean for the next request or closed (never left holding a body's bytes)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.e2e

#: Every exchange fails fast instead of stalling the suite when something hangs.
TIMEOUT_S = 10
ECHO = json.dumps({"target": {"type": "builtin", "name": "echo"}, "payload": {"hello": "chunks"}}).encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    @property
    def error(self) -> dict:
        assert self.headers.get("content-type") == "application/json", (self.status, self.headers, self.body)
        body = json.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
        return body["error"]


@contextmanager
def connection(url: str) -> Iterator[socket.socket]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S)
    try:
        yield sock
    finally:
        sock.close()


def read_answer(sock: socket.socket, method: str = "GET", began: float | None = None) -> Answer:
    began = time.monotonic() if began is None else began
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, headers, body, time.monotonic() - began)


def exchange(sock: socket.socket, raw: bytes, method: str = "GET") -> Answer:
    began = time.monotonic()
    sock.sendall(raw)
    return read_answer(sock, method, began)


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (it sends nothing more and ends it)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def still_serves(sock: socket.socket, dev) -> bool:
    """Whether the connection is clean: a next request on it is answered as itself."""
    answer = exchange(sock, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    return answer.status == 200 and json.loads(answer.body) == {"status": "ok"}


def head(dev, method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"x-api-key: {dev.api_key}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "get", "BREW"])
def test_an_unknown_method_is_a_405_naming_the_allowed_ones(dev, method):
    with connection(dev.url) as sock:
        answer = exchange(sock, head(dev, method, "/v1/tasks"))
        assert answer.status == 405
        assert answer.error["code"] == "method_not_allowed"
        assert set(answer.headers["allow"].split(", ")) == {
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
        }


@pytest.mark.parametrize(
    ("length_headers", "words"),
    [
        (["Content-Length: abc"], "whole number"),
        (["Content-Length: -1"], "whole number"),
        (["Content-Length: 1.5"], "whole number"),
        (["Content-Length: 5", "Content-Length: 6"], "whole number"),
        (["Content-Length: 5", "Transfer-Encoding: chunked"], "not both"),
        (["Transfer-Encoding: gzip, chunked"], "not supported"),
    ],
)
def test_a_body_whose_end_cannot_be_known_is_a_400_and_the_connection_closes(dev, length_headers, words):
    # Given a POST whose length is malformed, negative, ambiguous or in an unsupported coding
    with connection(dev.url) as sock:
        raw = head(dev, "POST", "/v1/tasks", "Content-Type: application/json", *length_headers) + b'{"a":1}'
        # When it is sent / Then it is answered at once with a 400 naming the problem, and closed
        answer = exchange(sock, raw, "POST")
        assert answer.status == 400 and answer.seconds < 5
        assert answer.error["code"] == "invalid_request" and words in answer.error["message"]
        assert closed(sock)


def test_a_body_announced_without_a_length_is_a_411(dev):
    with connection(dev.url) as sock:
        answer = exchange(sock, head(dev, "POST", "/v1/tasks", "Content-Type: application/json"), "POST")
        assert answer.status == 411 and answer.error["code"] == "length_required"
        assert "Content-Length" in answer.error["message"]


def test_a_post_with_no_body_and_no_length_is_an_empty_body(dev):
    # Given `curl -X POST` without data (no Content-Length, no Content-Type) on a route without a body
    with connection(dev.url) as sock:
        answer = exchange(sock, head(dev, "POST", "/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/cancel"), "POST")
        # Then it reaches the API like any request (here: no such task), and the connection stays usable
        assert answer.status == 404 and answer.error["code"] == "not_found"
        assert still_serves(sock, dev)


@pytest.mark.parametrize("expect", [False, True])
def test_a_declared_body_over_the_limit_is_a_413_at_once(dev, expect):
    # Given a POST declaring 20 MB (sending none of it), with or without Expect: 100-continue
    extra = ["Expect: 100-continue"] if expect else []
    with connection(dev.url) as sock:
        raw = head(
            dev, "POST", "/v1/tasks", "Content-Type: application/json", "Content-Length: 20000000", *extra
        )
        # When it is sent / Then a 413 in the API's shape comes at once (not 100 Continue), then the close
        answer = exchange(sock, raw, "POST")
        assert answer.status == 413 and answer.seconds < 5
        assert answer.error["code"] == "payload_too_large" and "10485760" in answer.error["message"]
        assert closed(sock)


def test_a_chunked_body_is_read_whole_and_leaves_nothing_on_the_connection(dev):
    # Given a task body sent in three chunks with a chunk extension and a trailer
    parts = [ECHO[:10], ECHO[10:40], ECHO[40:]]
    chunks = b"".join(
        f"{len(p):x}".encode() + (b";ext=1" if i == 1 else b"") + b"\r\n" + p + b"\r\n"
        for i, p in enumerate(parts)
    )
    raw = head(dev, "POST", "/v1/tasks", "Content-Type: application/json", "Transfer-Encoding: chunked")
    with connection(dev.url) as sock:
        # When it is posted
        answer = exchange(sock, raw + chunks + b"0\r\nX-Trailer: yes\r\n\r\n", "POST")
        # Then the task is made from the whole body
        assert answer.status == 201, answer.body
        assert json.loads(answer.body)["payload"] == {"hello": "chunks"}
        # And the connection is clean: the next request on it is answered as itself
        assert still_serves(sock, dev)


@pytest.mark.parametrize(
    ("chunks", "status"),
    [
        (b"zz\r\nabc\r\n0\r\n\r\n", 400),  # not hexadecimal
        (b"3\r\nabcdef\r\n0\r\n\r\n", 400),  # a chunk longer than its size
        (b"A00001\r\n", 413),  # one chunk over the 10 MiB limit, refused before it is read
    ],
)
def test_a_malformed_or_oversized_chunked_body_is_refused_and_closed(dev, chunks, status):
    raw = head(dev, "POST", "/v1/tasks", "Content-Type: application/json", "Transfer-Encoding: chunked")
    with connection(dev.url) as sock:
        answer = exchange(sock, raw + chunks, "POST")
        assert answer.status == status and answer.seconds < 5
        assert answer.error["code"] in ("invalid_request", "payload_too_large")
        assert closed(sock)


def test_a_body_shorter_than_its_length_is_a_400_not_a_hang(dev):
    # Given a POST declaring 100 bytes that sends 10 and then ends its side of the connection
    with connection(dev.url) as sock:
        sock.sendall(head(dev, "POST", "/v1/tasks", "Content-Type: application/json", "Content-Length: 100"))
        sock.sendall(b'{"target":')
        sock.shutdown(socket.SHUT_WR)
        # Then the gateway answers at once that the body ended early
        answer = read_answer(sock, "POST")
        assert answer.status == 400 and "ended after 10 of 100 bytes" in answer.error["message"]


def test_an_over_long_uri_is_a_414(dev):
    with connection(dev.url) as sock:
        answer = exchange(sock, head(dev, "GET", "/v1/tasks?cursor=" + "x" * 11_000))
        assert answer.status == 414 and answer.error["code"] == "uri_too_long"
        assert closed(sock)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([f"x-filler-{i}: {'v' * 200}" for i in range(60)], id="12-KB-of-headers"),
        pytest.param([f"x-filler-{i}: v" for i in range(120)], id="120-headers"),
        pytest.param(["x-filler: " + "v" * 70_000], id="one-70-KB-line"),
    ],
)
def test_huge_headers_are_a_431(dev, headers):
    with connection(dev.url) as sock:
        answer = exchange(sock, head(dev, "GET", "/v1/tasks", *headers))
        assert answer.status == 431 and answer.error["code"] == "headers_too_large"
        assert closed(sock)


@pytest.mark.parametrize(
    "line",
    [
        b"HELLO\r\n\r\n",
        b"GET /v1/health\r\n\r\n",
        b"GET /v1/health HTTP/2.0\r\n\r\n",
        b"GET / FOO/1.1\r\n\r\n",
        b"GET /v1/health HTTP/1.1 extra\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
)
def test_a_malformed_request_line_is_a_400(dev, line):
    with connection(dev.url) as sock:
        answer = exchange(sock, line)
        assert answer.status == 400 and answer.error["code"] == "invalid_request"
        assert closed(sock)


def test_keep_alive_still_serves_many_requests_on_one_connection(dev):
    with connection(dev.url) as sock:
        for _ in range(3):
            answer = exchange(sock, head(dev, "GET", "/v1/tasks?limit=1"))
            assert answer.status == 200 and "items" in json.loads(answer.body)
        posted = exchange(
            sock,
            head(dev, "POST", "/v1/tasks", "Content-Type: application/json", f"Content-Length: {len(ECHO)}")
            + ECHO,
            "POST",
        )
        assert posted.status == 201
        assert still_serves(sock, dev)
