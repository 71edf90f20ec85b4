"""The stdlib HTTP client against a loopback fake of the API (127.0.0.1 only, no other network)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from fake_api import API_KEY, Answer, FakeApi, Seen
from fake_api import error as _error

from taskplane.client import Client, TaskplaneError, WaitTimeoutError, quote_segment

pytestmark = pytest.mark.unit


class SleepRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_client(api: FakeApi, **kwargs: Any) -> tuple[Client, SleepRecorder]:
    sleep = SleepRecorder()
    kwargs.setdefault("api_key", API_KEY)
    return Client(api.url, sleep=sleep, timeout_s=5, **kwargs), sleep


def scripted(*answers: Answer) -> Callable[[Seen], Answer | None]:
    """Answer the next requests with ``answers`` in order, then fall through to the routes."""
    queue = list(answers)
    return lambda seen: queue.pop(0) if queue else None


# -- headers, defaults, errors --------------------------------------------------------------------


def test_submit_sends_api_key_and_json_body(api: FakeApi) -> None:
    # Given a client with a key
    client, _ = make_client(api)
    # When a task is submitted
    task = client.submit({"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}})
    # Then the server saw the key and the body, and the client answers the created task
    [seen] = api.requests_to("POST", "/v1/tasks")
    assert seen.headers["x-api-key"] == API_KEY
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}}
    assert task["task_id"] == "T0001"
    assert task["payload"] == {"n": 1}


def test_defaults_come_from_environment(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the URL (pasted with /v1) and the key only in the environment
    monkeypatch.setenv("TASKPLANE_URL", api.url + "/v1/")
    monkeypatch.setenv("TASKPLANE_API_KEY", API_KEY)
    # When a client is made without arguments and used
    client = Client()
    page = client.list()
    # Then it talked to that server with that key, under a single /v1
    assert client.url == api.url
    assert page["items"] == []
    assert api.seen[-1].path == "/v1/tasks"
    assert api.seen[-1].headers["x-api-key"] == API_KEY


def test_default_url_is_the_local_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no environment
    monkeypatch.delenv("TASKPLANE_URL", raising=False)
    monkeypatch.delenv("TASKPLANE_API_KEY", raising=False)
    # When a client is made, Then it points at taskplane dev's address and sends no key
    client = Client()
    assert client.url == "http://127.0.0.1:8080"
    assert client.api_key is None


def test_health_needs_no_key(api: FakeApi) -> None:
    # Given a client without a key
    client = Client(api.url, api_key="")
    # When health is asked, Then it answers and no key header was sent
    assert client.health() == {"status": "ok"}
    assert "x-api-key" not in api.seen[-1].headers


def test_bad_key_is_a_401_error(api: FakeApi) -> None:
    # Given a client with the wrong key
    client, _ = make_client(api, api_key="wrong")
    # When it lists tasks, Then the 401 becomes a TaskplaneError with the API's code
    with pytest.raises(TaskplaneError) as caught:
        client.list()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


def test_error_shape_is_parsed(api: FakeApi) -> None:
    # Given a client
    client, _ = make_client(api)
    # When a task without a target is submitted
    with pytest.raises(TaskplaneError) as caught:
        client.submit({"payload": 1})
    # Then status, code, message and details come from {"error": {...}}
    err = caught.value
    assert err.status == 400
    assert err.code == "invalid_request"
    assert err.message == "invalid task"
    assert err.details == [{"field": "target", "message": "required"}]
    assert "invalid_request" in str(err)


def test_non_json_error_body_falls_back_to_the_status(api: FakeApi) -> None:
    # Given a proxy in front of the API that answers an HTML page
    api.override = scripted((502, {}, "<html><body>Bad   gateway</body></html>"))
    client, _ = make_client(api)
    # When a request fails that way
    with pytest.raises(TaskplaneError) as caught:
        client.get("T1")
    # Then the error still has a code and a readable message
    assert (caught.value.status, caught.value.code) == (502, "http_502")
    assert "Bad gateway" in caught.value.message
    assert caught.value.details == []


def test_api_gateway_message_shape_is_understood(api: FakeApi) -> None:
    # Given API Gateway's own answer for a missing key
    api.override = scripted((403, {}, {"message": "Forbidden"}))
    client, _ = make_client(api)
    # When the request fails
    with pytest.raises(TaskplaneError) as caught:
        client.list()
    # Then its message is kept
    assert (caught.value.status, caught.value.code, caught.value.message) == (403, "http_403", "Forbidden")


def test_connection_refused_is_status_0_with_a_hint() -> None:
    # Given a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", api_key=API_KEY, max_retries=3, sleep=SleepRecorder())
    # When the client calls it
    with pytest.raises(TaskplaneError) as caught:
        client.health()
    # Then it is a connection error naming the URL and how to fix it
    err = caught.value
    assert (err.status, err.code) == (0, "connection_error")
    assert f"http://127.0.0.1:{port}/v1/health" in err.message
    assert "taskplane dev" in err.message
    assert "TASKPLANE_URL" in err.message


def test_no_answer_in_time_is_a_timeout(api: FakeApi) -> None:
    # Given a server slower than the client's socket timeout
    def slow(seen: Seen) -> Answer:
        time.sleep(0.5)
        return 200, {}, {}

    api.override = slow
    client = Client(api.url, api_key=API_KEY, timeout_s=0.1)
    # When the client calls it, Then it gives up with status 0
    with pytest.raises(TaskplaneError) as caught:
        client.health()
    assert (caught.value.status, caught.value.code) == (0, "timeout")


# -- retries ---------------------------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after(api: FakeApi) -> None:
    # Given an API that throttles twice, asking for 2 s then 1 s
    api.override = scripted(
        (429, {"Retry-After": "2"}, {"error": {"code": "throttled", "message": "slow down"}}),
        (429, {"Retry-After": "1"}, {"error": {"code": "throttled", "message": "slow down"}}),
    )
    client, sleep = make_client(api)
    # When a task is submitted
    task = client.submit({"target": {"type": "builtin", "name": "echo"}})
    # Then the third attempt got through after waiting what the server asked for
    assert task["task_id"] == "T0001"
    assert len(api.requests_to("POST", "/v1/tasks")) == 3
    assert sleep.calls == [2.0, 1.0]


def test_503_is_retried_and_long_waits_are_capped(api: FakeApi) -> None:
    # Given an API that is unavailable once and asks for two minutes, then once without Retry-After
    api.override = scripted(
        (503, {"Retry-After": "120"}, {"error": {"code": "unavailable", "message": "later"}}),
        (503, {}, {"error": {"code": "unavailable", "message": "later"}}),
    )
    client, sleep = make_client(api)
    # When it is called
    assert client.list()["items"] == []
    # Then the wait was capped at 30 s and the missing header fell back to a short backoff
    assert sleep.calls[0] == 30.0
    assert 0 < sleep.calls[1] <= 30.0
    assert len(sleep.calls) == 2


def test_retries_stop_after_max_retries(api: FakeApi) -> None:
    # Given an API that always throttles
    api.override = lambda seen: (
        429,
        {"Retry-After": "1"},
        {"error": {"code": "throttled", "message": "busy"}},
    )
    client, sleep = make_client(api, max_retries=2)
    # When a request is made
    with pytest.raises(TaskplaneError) as caught:
        client.list()
    # Then it was sent 1 + 2 times and the last 429 is raised
    assert (caught.value.status, caught.value.code) == (429, "throttled")
    assert len(api.seen) == 3
    assert sleep.calls == [1.0, 1.0]


def test_other_errors_are_not_retried(api: FakeApi) -> None:
    # Given a client
    client, sleep = make_client(api)
    # When a request gets a 404
    with pytest.raises(TaskplaneError) as caught:
        client.get("missing")
    # Then it was sent once
    assert caught.value.status == 404
    assert len(api.seen) == 1
    assert sleep.calls == []


# -- tasks -----------------------------------------------------------------------------------------


def test_idempotency_key_is_sent_as_a_header(api: FakeApi) -> None:
    # Given a client
    client, _ = make_client(api)
    # When one task is submitted with a key and one without
    client.submit({"target": {"type": "builtin", "name": "echo"}}, idempotency_key="order-42")
    client.submit({"target": {"type": "builtin", "name": "echo"}})
    # Then only the first carried the Idempotency-Key header
    first, second = api.requests_to("POST", "/v1/tasks")
    assert first.headers["idempotency-key"] == "order-42"
    assert "idempotency-key" not in second.headers


@pytest.mark.parametrize("task_id", ["a/b c?d#e", "../health", "ü%20"])
def test_path_segments_are_quoted(api: FakeApi, task_id: str) -> None:
    # Given a task whose id has characters that mean something in a URL
    api.add_task(task_id)
    client, _ = make_client(api)
    # When it is fetched and cancelled
    task = client.get(task_id)
    cancelled = client.cancel(task_id)
    # Then each call stayed one path segment and reached that task
    assert task["task_id"] == task_id
    assert cancelled["state"] == "CANCELLED"
    assert api.seen[0].raw_path == "/v1/tasks/" + quote_segment(task_id)
    assert "/" not in quote_segment(task_id)
    assert api.seen[1].raw_path.endswith("/cancel")


def test_list_passes_filters_and_leaves_out_none(api: FakeApi) -> None:
    # Given tasks in two states
    api.add_task(state="FAILED")
    api.add_task(state="SUCCEEDED")
    client, _ = make_client(api)
    # When failed tasks are listed
    page = client.list(state="FAILED", limit=10)
    # Then only the filters given were sent
    assert [t["task_id"] for t in page["items"]] == ["T0001"]
    assert api.seen[-1].query == {"state": ["FAILED"], "limit": ["10"]}


def test_iter_tasks_follows_next_cursor(api: FakeApi) -> None:
    # Given seven tasks
    for _ in range(7):
        api.add_task()
    client, _ = make_client(api)
    # When they are iterated three per page
    ids = [t["task_id"] for t in client.iter_tasks(page_size=3)]
    # Then every task came once, newest first, over three pages
    assert ids == [f"T{n:04d}" for n in range(7, 0, -1)]
    cursors = [s.query.get("cursor", [None])[0] for s in api.requests_to("GET", "/v1/tasks")]
    assert cursors == [None, "3", "6"]
    assert all(s.query["limit"] == ["3"] for s in api.seen)


def test_submit_many_chunks_and_numbers_results_globally(api: FakeApi) -> None:
    # Given seven task bodies, the fifth without a target
    bodies: list[dict[str, Any]] = [{"target": {"type": "builtin", "name": "echo"}} for _ in range(7)]
    bodies[4] = {"payload": "no target"}
    client, _ = make_client(api)
    progress: list[tuple[int, int]] = []
    # When they are submitted three per batch
    results = client.submit_many(
        iter(bodies), chunk=3, on_progress=lambda done, total: progress.append((done, total))
    )
    # Then three batch calls of 3, 3 and 1 were made
    assert [len(s.body["tasks"]) for s in api.requests_to("POST", "/v1/tasks/batch")] == [3, 3, 1]
    # And one result per task came back in order with a global index
    assert [r["index"] for r in results] == list(range(7))
    assert "error" in results[4] and results[4]["error"]["code"] == "invalid_request"
    assert [r.get("task_id") for i, r in enumerate(results) if i != 4] == [f"T{n:04d}" for n in range(1, 7)]
    # And progress was reported after every batch
    assert progress == [(3, 7), (6, 7), (7, 7)]


def test_submit_many_marks_a_refused_batch_and_goes_on(api: FakeApi) -> None:
    # Given an API that refuses the second batch as a whole
    calls = {"n": 0}

    def second_too_large(seen: Seen) -> Answer | None:
        calls["n"] += 1
        return _error(413, "payload_too_large", "batch too large") if calls["n"] == 2 else None

    api.override = second_too_large
    client, _ = make_client(api)
    # When five tasks are submitted two per batch
    results = client.submit_many([{"target": {"type": "builtin", "name": "echo"}}] * 5, chunk=2)
    # Then the tasks of the refused batch carry its error and the others were accepted
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [("error" in r) for r in results] == [False, False, True, True, False]
    assert results[2]["error"]["code"] == "payload_too_large"


def throttling(api: FakeApi, refusals: int, retry_after_s: int | None = 2) -> dict[str, int]:
    """Make the fake refuse items with an odd payload as throttled, ``refusals`` times in all."""
    left = {"n": refusals}

    def answer(seen: Seen) -> Answer | None:
        if seen.path != "/v1/tasks/batch" or left["n"] <= 0:
            return None
        results: list[dict[str, Any]] = []
        for i, item in enumerate(seen.body["tasks"]):
            if item.get("payload", 0) % 2 and left["n"] > 0:
                left["n"] -= 1
                error = {"code": "throttled", "message": "the default lane is full", "details": []}
                result: dict[str, Any] = {"index": i, "error": error}
                if retry_after_s is not None:
                    result["retry_after_s"] = retry_after_s
                results.append(result)
            else:
                results.append({"index": i, "task_id": api.add_task(target=item["target"])["task_id"]})
        return 200, {"Retry-After": str(retry_after_s or 1)}, {"results": results}

    api.override = answer
    return left


def test_submit_many_sends_throttled_items_again_after_their_hint(api: FakeApi) -> None:
    # Given an API that throttles some items of a batch (retry_after_s 2) twice, then accepts them
    throttling(api, refusals=3, retry_after_s=2)
    client, sleep = make_client(api)
    retries: list[tuple[int, float]] = []
    bodies = [{"target": {"type": "builtin", "name": "echo"}, "payload": i} for i in range(4)]
    # When four tasks are submitted in one batch
    results = client.submit_many(bodies, chunk=4, on_retry=lambda n, s: retries.append((n, s)))
    # Then every task was accepted in the end, in input order
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert all("task_id" in r and "error" not in r for r in results), results
    # And only the throttled items were sent again, after the hinted delay each time
    sent = [[t["payload"] for t in s.body["tasks"]] for s in api.requests_to("POST", "/v1/tasks/batch")]
    assert sent == [[0, 1, 2, 3], [1, 3], [1]]
    assert retries == [(2, 2.0), (1, 2.0)] and sleep.calls == [2.0, 2.0]


def test_submit_many_gives_up_on_a_throttled_item_after_max_retries(api: FakeApi) -> None:
    # Given an API that keeps throttling (no hint), and a client allowed 2 retries
    throttling(api, refusals=100, retry_after_s=None)
    client, sleep = make_client(api, max_retries=2)
    # When two tasks are submitted
    results = client.submit_many(
        [{"target": {"type": "builtin", "name": "echo"}, "payload": i} for i in (0, 1)]
    )
    # Then the throttled one keeps its error after 3 sends, with backoff between them
    assert "task_id" in results[0] and results[1]["error"]["code"] == "throttled"
    assert len(api.requests_to("POST", "/v1/tasks/batch")) == 3
    assert sleep.calls == [0.5, 1.0]


def test_submit_many_raises_when_every_batch_would_fail(api: FakeApi) -> None:
    # Given a client with a bad key
    client, _ = make_client(api, api_key="wrong")
    # When many tasks are submitted, Then the 401 is raised after the first batch
    with pytest.raises(TaskplaneError) as caught:
        client.submit_many([{"target": {"type": "builtin", "name": "echo"}}] * 5, chunk=2)
    assert caught.value.status == 401
    assert len(api.seen) == 1


def test_batch_limits_are_checked_before_sending(api: FakeApi) -> None:
    # Given a client
    client, _ = make_client(api)
    # When a batch is too large or the chunk is out of range, Then nothing is sent
    with pytest.raises(ValueError, match="at most 500"):
        client.submit_batch([{"target": {"type": "builtin", "name": "echo"}}] * 501)
    with pytest.raises(ValueError, match="chunk"):
        client.submit_many([], chunk=0)
    assert client.submit_many([]) == []
    assert api.seen == []


def test_cancel_of_a_finished_task_is_a_conflict(api: FakeApi) -> None:
    # Given a finished task
    api.add_task(state="SUCCEEDED")
    client, _ = make_client(api)
    # When it is cancelled, Then the 409 is raised
    with pytest.raises(TaskplaneError) as caught:
        client.cancel("T0001")
    assert (caught.value.status, caught.value.code) == (409, "conflict")


def test_wait_polls_until_a_terminal_state(api: FakeApi) -> None:
    # Given a task that runs and then succeeds
    api.add_task()
    api.states_on_get["T0001"] = ["PENDING", "RUNNING", "SUCCEEDED"]
    client, sleep = make_client(api)
    # When the client waits for it
    task = client.wait("T0001", poll_s=0.25)
    # Then it answered the final task after polling three times
    assert task["state"] == "SUCCEEDED"
    assert len(api.requests_to("GET", "/v1/tasks/T0001")) == 3
    assert sleep.calls == [0.25, 0.25]


def test_wait_times_out_naming_the_last_state(api: FakeApi) -> None:
    # Given a task that keeps running and a clock that the injected sleep moves forward
    api.add_task(state="RUNNING")
    now = {"t": 100.0}

    def sleep(seconds: float) -> None:
        now["t"] += seconds

    client = Client(api.url, api_key=API_KEY, sleep=sleep, monotonic=lambda: now["t"])
    # When the client waits 2 s polling every 0.5 s
    with pytest.raises(TimeoutError) as caught:
        client.wait("T0001", timeout_s=2, poll_s=0.5)
    # Then it gave up after about 2 s naming the state, and kept the last task seen
    assert isinstance(caught.value, WaitTimeoutError)
    assert "RUNNING" in str(caught.value)
    assert caught.value.task["task_id"] == "T0001"
    assert now["t"] == pytest.approx(102.0)
    assert len(api.requests_to("GET", "/v1/tasks/T0001")) == 5


# -- the generic request --------------------------------------------------------------------------


def test_request_sends_raw_bodies_headers_and_query(api: FakeApi) -> None:
    # Given an endpoint that takes YAML
    api.override = lambda seen: (201, {}, {"version": 1}) if seen.method == "PUT" else (204, {}, None)
    client, _ = make_client(api)
    # When YAML is PUT with its content type and a query, and a DELETE answers no content
    status, body = client.request(
        "PUT",
        "/v1/workflows/" + quote_segment("order fulfil"),
        body="name: x\n",
        headers={"content-type": "application/yaml"},
        query={"dry_run": "true", "skip": None},
    )
    deleted = client.request("DELETE", "/v1/schedules/s1")
    # Then the body went as it was, with the caller's content type, and both answers decode
    put = api.seen[0]
    assert (status, body) == (201, {"version": 1})
    assert put.raw_path == "/v1/workflows/order%20fulfil?dry_run=true"
    assert put.headers["content-type"] == "application/yaml"
    assert put.body == "name: x\n"
    assert deleted == (204, None)
