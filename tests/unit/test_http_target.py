"""The http target against a loopback server: statuses, retryability, what reaches the server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.domain.results import LARGE_RESULT_BYTES, RawJson

pytestmark = pytest.mark.unit

SLOW_S = 1.0
BIG_TEXT = "x" * (100 * 1024)
LARGE_JSON = json.dumps([{"n": i, "s": "caf\u00e9"} for i in range(20_000)]).encode()
LARGE_LATIN1 = json.dumps(["caf\u00e9" * 100] * 1000, ensure_ascii=False).encode("latin-1")

# path -> (status, content type, body)
ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/json": (200, "application/json", b'{"ok": true, "n": 1}'),
    "/text": (200, "text/plain; charset=utf-8", "plain words, caf\u00e9".encode()),
    "/big-text": (200, "text/plain", BIG_TEXT.encode()),
    "/created": (201, "application/json", b'{"id": 7}'),
    "/empty": (204, "", b""),
    "/slow": (200, "application/json", b"{}"),
    # Over LARGE_RESULT_BYTES: JSON kept as its text, a NaN in it makes it text, Latin-1 re-encoded.
    "/large-json": (200, "application/json", LARGE_JSON),
    "/large-nan": (200, "application/json", LARGE_JSON[:-1] + b",NaN]"),
    "/large-latin1": (200, "application/json; charset=latin-1", LARGE_LATIN1),
}


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.server.seen.append(  # type: ignore[attr-defined]
            {
                "method": self.command,
                "path": path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )
        if path == "/slow":
            time.sleep(SLOW_S)
        if path == "/redirect":
            self._answer(302, "text/plain", b"moved", {"Location": "http://elsewhere.invalid/next"})
        elif path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), "text/plain", b"the server says no")
        elif path in ROUTES:
            self._answer(*ROUTES[path])
        else:
            self._answer(404, "text/plain", b"no route")

    def _answer(self, status: int, content_type: str, body: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # the slow handler may still sleep when the tests end

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out leaves a broken pipe behind; that is expected


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Recorder)
    srv.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def base_url(server: _Server) -> str:
    server.seen.clear()  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def runners(monkeypatch: pytest.MonkeyPatch) -> TargetRunners:
    # A developer's proxy settings must not swallow loopback requests.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return TargetRunners()


ENVELOPE = {"task_id": "tsk_42", "attempt": 2, "payload": {"order": 9, "items": ["a", "b"]}}


def http(url: str, method: str = "POST", headers: dict | None = None) -> dict:
    return {"type": "http", "url": url, "method": method, "headers": headers or {}}


def run_failing(runners: TargetRunners, target: dict, timeout_s: float = 5) -> TargetFailure:
    with pytest.raises(TargetFailure) as caught:
        runners.run(target, ENVELOPE, timeout_s)
    return caught.value


def test_post_delivers_the_envelope_and_headers_and_returns_parsed_json(runners, server, base_url):
    # Given a POST target with custom headers
    target = http(f"{base_url}/json", headers={"X-Custom": "yes", "Authorization": "Bearer t0ken"})
    # When it runs
    result = runners.run(target, ENVELOPE, 5)
    # Then the answer's JSON is the result
    assert result == {"ok": True, "n": 1}
    # And the server got the envelope as a JSON body with our headers and the custom ones
    (request,) = server.seen
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == ENVELOPE
    headers = request["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["x-taskplane-task-id"] == "tsk_42"
    assert headers["x-taskplane-attempt"] == "2"
    assert headers["x-custom"] == "yes"
    assert headers["authorization"] == "Bearer t0ken"


def test_method_defaults_to_post(runners, server, base_url):
    # Given a target without a method
    # When it runs
    runners.run({"type": "http", "url": f"{base_url}/json"}, ENVELOPE, 5)
    # Then it was a POST with the envelope
    assert server.seen[0]["method"] == "POST"
    assert json.loads(server.seen[0]["body"]) == ENVELOPE


@pytest.mark.parametrize("method", ["GET", "DELETE", "get"])
def test_get_and_delete_send_no_body(runners, server, base_url, method):
    # Given a GET or DELETE target
    # When it runs
    result = runners.run(http(f"{base_url}/json", method=method), ENVELOPE, 5)
    # Then it succeeds, the server got no body, and the task headers still arrived
    assert result == {"ok": True, "n": 1}
    (request,) = server.seen
    assert request["method"] == method.upper()
    assert request["body"] == b""
    assert "content-type" not in request["headers"]
    assert request["headers"]["x-taskplane-task-id"] == "tsk_42"


def test_put_sends_the_body(runners, server, base_url):
    # Given a PUT target
    # When it runs
    runners.run(http(f"{base_url}/json", method="PUT"), ENVELOPE, 5)
    # Then the server got the envelope
    assert json.loads(server.seen[0]["body"]) == ENVELOPE


def test_a_workflow_envelope_sends_no_task_headers(runners, server, base_url):
    # Given an envelope without task_id and attempt
    envelope = {"input": {"x": 1}, "deps": {}, "payload": None}
    # When it runs
    runners.run(http(f"{base_url}/json"), envelope, 5)
    # Then no x-taskplane headers were sent
    headers = server.seen[0]["headers"]
    assert "x-taskplane-task-id" not in headers
    assert "x-taskplane-attempt" not in headers


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/text", "plain words, caf\u00e9"),
        ("/created", {"id": 7}),
        ("/empty", None),
    ],
)
def test_2xx_answers_are_results(runners, base_url, path, expected):
    # Given a server answering 200 text, 201 JSON or 204
    # When the target runs
    result = runners.run(http(f"{base_url}{path}"), ENVELOPE, 5)
    # Then the parsed JSON, the text, or None is the result
    assert result == expected


def test_long_text_results_are_cut_to_64_kib(runners, base_url):
    # Given a server answering 100 KiB of text
    # When the target runs
    result = runners.run(http(f"{base_url}/big-text"), ENVELOPE, 5)
    # Then the result keeps the first 64 KiB
    assert result == BIG_TEXT[: 64 * 1024]


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (404, False),
        (409, False),
        (408, True),
        (429, True),
        (500, True),
        (503, True),
    ],
)
def test_error_statuses(runners, base_url, status, retryable):
    # Given a server answering an error status
    # When the target runs
    failure = run_failing(runners, http(f"{base_url}/status/{status}"))
    # Then it is an HttpError naming the status; 408, 429 and 5xx are retryable
    assert failure.error_type == "HttpError"
    assert f"HTTP {status}" in failure.message
    assert failure.retryable is retryable


def test_redirects_are_not_followed(runners, server, base_url):
    # Given a server answering 302 to another host
    # When the target runs
    failure = run_failing(runners, http(f"{base_url}/redirect"))
    # Then it fails for good, naming the Location, and nothing else was requested
    assert failure.error_type == "HttpError"
    assert failure.retryable is False
    assert "HTTP 302" in failure.message
    assert "http://elsewhere.invalid/next" in failure.message
    assert [r["path"] for r in server.seen] == ["/redirect"]


def test_error_messages_leave_out_the_query_string(runners, base_url):
    # Given a URL whose query carries a secret
    # When the server answers 500
    failure = run_failing(runners, http(f"{base_url}/status/500?token=s3cret"))
    # Then the message shows the path but not the secret
    assert "/status/500" in failure.message
    assert "s3cret" not in failure.message


def test_a_slow_server_times_out_retryably(runners, base_url):
    # Given a server that answers after a second and a 0.2 s timeout
    started = time.monotonic()
    # When the target runs
    failure = run_failing(runners, http(f"{base_url}/slow"), timeout_s=0.2)
    # Then it gives up at the timeout with a retryable Timeout
    assert time.monotonic() - started < SLOW_S * 0.8
    assert (failure.error_type, failure.retryable) == ("Timeout", True)


def test_connection_refused_is_retryable(runners):
    # Given a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # When the target runs
    failure = run_failing(runners, http(f"http://127.0.0.1:{port}/x"))
    # Then it is a retryable ConnectionError
    assert (failure.error_type, failure.retryable) == ("ConnectionError", True)


def test_dns_failure_is_retryable(runners, monkeypatch):
    # Given a name that does not resolve (resolution stubbed: the tests stay offline)
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    # When the target runs
    failure = run_failing(runners, http("http://no-such-host.invalid/hook"))
    # Then it is a retryable ConnectionError
    assert (failure.error_type, failure.retryable) == ("ConnectionError", True)


def test_private_addresses_can_be_refused(server, base_url):
    # Given runners that refuse private addresses
    runners = TargetRunners(allow_private_http=False)
    # When a loopback target runs
    with pytest.raises(TargetFailure) as caught:
        runners.run(http(f"{base_url}/json"), ENVELOPE, 5)
    # Then it fails for good before anything is sent
    assert (caught.value.error_type, caught.value.retryable) == ("ForbiddenTarget", False)
    assert server.seen == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "not a url", "http://"])
def test_non_http_urls_are_refused(runners, url):
    # Given a URL urllib could open but we must not
    # When the target runs
    failure = run_failing(runners, http(url))
    # Then it fails for good as InvalidTarget
    assert (failure.error_type, failure.retryable) == ("InvalidTarget", False)


def test_a_large_json_answer_comes_back_checked_as_its_text_not_built(runners, base_url):
    # Given answers over LARGE_RESULT_BYTES
    assert len(LARGE_JSON) > LARGE_RESULT_BYTES and len(LARGE_LATIN1) > LARGE_RESULT_BYTES
    # When the target answers JSON, it comes back as its UTF-8 text, with its depth, equal as a value
    got = runners.run({"type": "http", "url": f"{base_url}/large-json"}, {"task_id": "t"}, 5)
    assert isinstance(got, RawJson) and got.depth == 2 and got.data == LARGE_JSON
    assert got.value() == json.loads(LARGE_JSON)
    # And another charset is re-encoded as UTF-8
    latin = runners.run({"type": "http", "url": f"{base_url}/large-latin1"}, {"task_id": "t"}, 5)
    assert isinstance(latin, RawJson) and latin.value() == ["caf\u00e9" * 100] * 1000
    # And a large answer that is not JSON the platform keeps (a NaN) is text cut to 64 KiB, as any
    text = runners.run({"type": "http", "url": f"{base_url}/large-nan"}, {"task_id": "t"}, 5)
    assert isinstance(text, str) and len(text.encode()) == 64 * 1024
