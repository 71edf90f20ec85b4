"""A loopback fake of the HTTP API (127.0.0.1 only) for the client and CLI tests.

In-memory tasks, schedules and workflow definitions behind the real paths and the real error shape;
``seen`` records every request as it arrived, and ``override`` may answer a request before the routes
do (scripted throttling, a proxy's HTML page, a slow server). Use it through the ``api`` fixture of
``tests/unit/conftest.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

API_KEY = "test-key"
ECHO = {"type": "builtin", "name": "echo"}
#: (status, extra headers, body): a dict or list is sent as JSON, a str as text/html, None as no body.
Answer = tuple[int, dict[str, str], Any]


@dataclass
class Seen:
    method: str
    raw_path: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # decoded JSON; the text when it is not JSON; None when empty


def error(status: int, code: str, message: str, details: list[Any] | None = None) -> Answer:
    """An answer in the API's error shape."""
    return status, {}, {"error": {"code": code, "message": message, "details": details or []}}


class FakeApi:
    """The API's routes for tasks, schedules and workflow definitions, in memory."""

    def __init__(self) -> None:
        self.url = ""
        self.seen: list[Seen] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}
        #: Workflow name -> every distinct definition PUT to it (YAML read), in order.
        self.workflows: dict[str, list[Any]] = {}
        #: Task id -> the states it takes on the next GETs, one per GET.
        self.states_on_get: dict[str, list[str]] = {}
        self.override: Callable[[Seen], Answer | None] | None = None
        #: Batch items whose payload starts with "busy" are throttled the first time they are sent.
        self.throttled: set[str] = set()
        self._lock = threading.Lock()

    def cli(self, *args: str) -> list[str]:
        """Command-line arguments pointing at this fake."""
        return [*args, "--url", self.url, "--api-key", API_KEY]

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path == path]

    def add_task(self, task_id: str | None = None, **fields: Any) -> dict[str, Any]:
        n = len(self.tasks) + 1
        task = {
            "task_id": task_id or f"T{n:04d}",
            "state": "PENDING",
            "target": ECHO,
            "payload": None,
            "priority": "default",
            "labels": {},
            "attempts": 0,
            "run_at": "2030-01-01T00:00:00.000Z",
            "created_at": f"2030-01-01T00:00:{n:02d}.000Z",
            "result": None,
            "error": None,
            "history": [{"state": "PENDING", "at": "2030-01-01T00:00:00.000Z", "detail": "submitted"}],
            **fields,
        }
        self.tasks[task["task_id"]] = task
        return task

    def add_schedule(self, **fields: Any) -> dict[str, Any]:
        n = len(self.schedules) + 1
        schedule = {
            "schedule_id": f"01SCHED{n:019d}",
            "name": None,
            "cron": "*/5 * * * *",
            "timezone": "UTC",
            "task": {"target": ECHO},
            "misfire": "fire_once",
            "overlap": "allow",
            "start_at": None,
            "end_at": None,
            "state": "ACTIVE",
            "paused": False,
            "next_fire_at": "2030-01-01T00:05:00.000Z",
            "last_fire_at": None,
            "last_task_id": None,
            "fires": 0,
            "skipped": 0,
            "created_at": f"2030-01-01T00:00:{n:02d}.000Z",
            "updated_at": f"2030-01-01T00:00:{n:02d}.000Z",
            **fields,
        }
        self.schedules[schedule["schedule_id"]] = schedule
        return schedule

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> Answer:
        split = urlsplit(raw_path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode()
        seen = Seen(method, raw_path, split.path, parse_qs(split.query), headers, body)
        with self._lock:
            self.seen.append(seen)
            if self.override is not None:
                answer = self.override(seen)
                if answer is not None:
                    return answer
            parts = [unquote(p) for p in seen.path.split("/")[1:]]
            if parts == ["v1", "health"]:
                return 200, {}, {"status": "ok"}
            if seen.headers.get("x-api-key") != API_KEY:
                return error(401, "unauthorized", "missing or bad API key")
            if parts[:2] == ["v1", "tasks"]:
                return self._tasks(seen, parts[2:])
            if parts[:2] == ["v1", "schedules"]:
                return self._schedules(seen, parts[2:])
            if parts[:2] == ["v1", "workflows"]:
                return self._workflows(seen, parts[2:])
            return error(404, "not_found", f"no such resource: {seen.path}")

    def _tasks(self, seen: Seen, rest: list[str]) -> Answer:
        match (seen.method, rest):
            case ("POST", []):
                body = seen.body
                if not isinstance(body, dict) or "target" not in body:
                    return error(
                        400, "invalid_request", "invalid task", [{"field": "target", "message": "required"}]
                    )
                target = body["target"] or {}
                if target.get("type") == "builtin" and target.get("name") not in ("echo", "sleep", "fail"):
                    return error(
                        400,
                        "invalid_request",
                        "the task body is not valid",
                        [{"field": "target.name", "message": "must be echo, sleep or fail"}],
                    )
                return 201, {}, self.add_task(**{k: v for k, v in body.items() if k != "delay_ms"})
            case ("POST", ["batch"]):
                results: list[dict[str, Any]] = []
                for i, item in enumerate(seen.body["tasks"]):
                    busy = str(item.get("payload", "")).startswith("busy")
                    if busy and item["payload"] not in self.throttled:
                        # A full lane, once per such payload: throttled, to be sent again at once.
                        self.throttled.add(item["payload"])
                        full = {"code": "throttled", "message": "the default lane is full", "details": []}
                        results.append({"index": i, "error": full, "retry_after_s": 0})
                    elif "target" in item:
                        results.append({"index": i, "task_id": self.add_task(**item)["task_id"]})
                    else:
                        results.append(
                            {
                                "index": i,
                                "error": {"code": "invalid_request", "message": "target is required"},
                            }
                        )
                return 200, {}, {"results": results}
            case ("GET", []):
                wanted = seen.query.get("state")
                items = [t for t in reversed(self.tasks.values()) if not wanted or t["state"] in wanted]
                return 200, {}, _page(items, seen, default_limit=100)
            case ("GET", [task_id]) if task_id in self.tasks:
                if self.states_on_get.get(task_id):
                    self.tasks[task_id]["state"] = self.states_on_get[task_id].pop(0)
                return 200, {}, self.tasks[task_id]
            case ("POST", [task_id, "cancel"]) if task_id in self.tasks:
                task = self.tasks[task_id]
                if task["state"] in ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"):
                    return error(409, "conflict", f"task is {task['state']}")
                task["state"] = "CANCELLED"
                return 200, {}, task
        return error(404, "not_found", "no such task")

    def _schedules(self, seen: Seen, rest: list[str]) -> Answer:
        match (seen.method, rest):
            case ("POST", []):
                if seen.body.get("timezone") == "Mars/Olympus":
                    return error(
                        400,
                        "invalid_request",
                        "the request body is not valid",
                        [{"field": "timezone", "message": "unknown IANA time zone 'Mars/Olympus'"}],
                    )
                fields = {k: v for k, v in seen.body.items() if k in ("cron", "timezone", "task", "name")}
                return 201, {}, self.add_schedule(**fields)
            case ("GET", []):
                return 200, {}, _page(list(reversed(self.schedules.values())), seen, default_limit=50)
            case ("GET", [sid]) if sid in self.schedules:
                return 200, {}, self.schedules[sid]
            case ("POST", [sid, "pause"]) if sid in self.schedules:
                schedule = self.schedules[sid]
                schedule.update(state="PAUSED", paused=True, next_fire_at=None)
                return 200, {}, schedule
            case ("POST", [sid, "resume"]) if sid in self.schedules:
                schedule = self.schedules[sid]
                schedule.update(state="ACTIVE", paused=False, next_fire_at="2030-01-02T00:00:00.000Z")
                return 200, {}, schedule
            case ("DELETE", [sid]) if sid in self.schedules:
                del self.schedules[sid]
                return 204, {}, None
        return error(404, "not_found", f"schedule {rest[0] if rest else ''!r} not found")

    def _workflows(self, seen: Seen, rest: list[str]) -> Answer:
        match (seen.method, rest):
            case ("PUT", [name]):
                document = seen.body
                if isinstance(document, str) and "yaml" in seen.headers.get("content-type", ""):
                    document = yaml.safe_load(document)
                versions = self.workflows.setdefault(name, [])
                published = not versions or versions[-1] != document
                if published:
                    versions.append(document)
                nodes = document.get("nodes", []) if isinstance(document, dict) else []
                return (
                    201 if len(versions) == 1 and published else 200,
                    {},
                    {
                        "name": name,
                        "version": len(versions),
                        "published": published,
                        "nodes": [n["id"] for n in nodes],
                        "edges": [[need, n["id"]] for n in nodes for need in n.get("needs", [])],
                    },
                )
        return error(404, "not_found", f"workflow {rest[0] if rest else ''!r} not found")


def _page(items: list[Any], seen: Seen, default_limit: int) -> dict[str, Any]:
    """One page of ``items`` by the query's limit and cursor (an offset, as text)."""
    start = int(seen.query.get("cursor", ["0"])[0])
    limit = int(seen.query.get("limit", [str(default_limit)])[0])
    cursor = str(start + limit) if start + limit < len(items) else None
    return {"items": items[start : start + limit], "next_cursor": cursor}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, payload = self.server.fake.handle(self.command, self.path, headers, raw)
        if payload is None:
            data, content_type = b"", None
        elif isinstance(payload, str):
            data, content_type = payload.encode(), "text/html"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    fake: FakeApi

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up waiting
            super().handle_error(request, client_address)


@contextmanager
def serving() -> Iterator[FakeApi]:
    """A :class:`FakeApi` listening on a free port of 127.0.0.1 (``url`` set) until the block ends."""
    fake = FakeApi()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
