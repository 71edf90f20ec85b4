"""The web dashboard in a real browser (Playwright driving Debian's Chromium) against `taskplane dev`.

Never downloads a browser: the tests use /usr/bin/chromium (`apt-get install chromium`; `.ci/run`
installs it) and skip, saying why, when it or the playwright package is missing. Screenshots of each
page go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dashboard")]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        "no /usr/bin/chromium: install Debian's (apt-get install -y chromium; .ci/run does) "
        "to run the browser tests",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect

SLEEP_FLOW = {
    "description": "three sleeps: a, then b and c side by side",
    "on_failure": "stop",
    "nodes": [
        {"id": "a", "target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 2000}},
        {"id": "b", "needs": ["a"], "target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 1000}},
        {"id": "c", "needs": ["a"], "target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 300}},
    ],
}


def api(dev: Any, method: str, path: str, body: Any = None, key: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        dev.url + path,
        data=data,
        method=method,
        headers={"x-api-key": key or dev.api_key, "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        return exc.code, json.loads(text) if text else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, dev: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    # Offline except for the dashboard's own origin: no CDN, no third party.
    context.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith(dev.url) else route.abort()
    )
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # The browser logs every 401/404 answer as "Failed to load resource"; those are expected here.
    pg.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    pg.errors = errors
    yield pg
    context.close()


def sign_in(page: Any, dev: Any, key: str | None = None) -> None:
    page.goto(dev.url + "/")
    page.get_by_label("API key").fill(key or dev.api_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_sign_in_keeps_the_key_out_of_urls_and_refuses_a_bad_key(page: Any, dev: Any) -> None:
    # Given the dashboard at /, served without a key
    page.goto(dev.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    # When a wrong key is tried
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    # Then it says so and stays on the sign-in form
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    # When the right key is given
    page.get_by_label("API key").fill(dev.api_key)
    page.get_by_role("button", name="Sign in").click()
    # Then the tasks page shows, the key is in sessionStorage only, never in the URL
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    assert dev.api_key not in page.url
    assert page.evaluate("sessionStorage.getItem('taskplane.apiKey')") == dev.api_key
    assert page.evaluate("localStorage.length") == 0
    # And the header shows the lanes' depth and the throughput
    expect(page.locator("#stats [data-lane='default']")).to_be_visible()
    expect(page.locator("#stats [data-stat='throughput']")).to_be_visible()
    assert page.errors == []


def test_a_task_submitted_through_the_api_reaches_succeeded_in_the_table(page: Any, dev: Any) -> None:
    # Given a signed-in dashboard on the tasks table
    sign_in(page, dev)
    # When a task is submitted through the API (it sleeps, so the table sees it before it ends)
    status, task = api(
        dev,
        "POST",
        "/v1/tasks",
        {"target": {"type": "builtin", "name": "sleep"}, "payload": {"ms": 800}, "labels": {"ui": "yes"}},
    )
    assert status == 201
    row = page.locator(f"tr[data-task-id='{task['task_id']}']")
    # Then its row appears by itself (live refresh) and reaches SUCCEEDED
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-state", "SUCCEEDED", timeout=20_000)
    # And the label filter keeps it while another label hides it
    page.get_by_label("Labels (key=value)").fill("ui=yes")
    expect(row).to_be_visible()
    shot(page, "tasks")
    page.get_by_label("Labels (key=value)").fill("ui=no")
    expect(row).to_have_count(0)
    page.get_by_label("Labels (key=value)").fill("")
    # When the task is opened
    row.get_by_role("link").click()
    # Then its page shows the history timeline and the result, and retry submits a copy
    expect(page.locator("#task-facts")).to_have_attribute("data-state", "SUCCEEDED")
    expect(page.get_by_role("list", name="History").locator("li")).to_have_count(3)
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    shot(page, "task")
    page.get_by_role("button", name="Retry (submit a copy)").click()
    expect(page).not_to_have_url(f"{dev.url}/#/tasks/{task['task_id']}")
    expect(page.locator("#task-facts")).to_have_attribute("data-state", "SUCCEEDED", timeout=20_000)
    assert page.errors == []


def test_a_scheduled_task_can_be_cancelled_and_a_schedule_paused(page: Any, dev: Any) -> None:
    # Given a task due in an hour and a schedule
    _, task = api(
        dev, "POST", "/v1/tasks", {"target": {"type": "builtin", "name": "echo"}, "delay_ms": 3_600_000}
    )
    status, schedule = api(
        dev,
        "POST",
        "/v1/schedules",
        {
            "cron": "*/5 * * * *",
            "timezone": "Europe/Paris",
            "task": {"target": {"type": "builtin", "name": "echo"}},
        },
    )
    assert status == 201, schedule
    sign_in(page, dev)
    # When the task's page cancels it
    page.goto(f"{dev.url}/#/tasks/{task['task_id']}")
    page.get_by_role("button", name="Cancel").click()
    # Then it is CANCELLED
    expect(page.locator("#task-facts")).to_have_attribute("data-state", "CANCELLED")
    # When the schedules page pauses the schedule, then resumes it
    page.get_by_role("link", name="Schedules").click()
    row = page.locator(f"tr[data-schedule-id='{schedule['schedule_id']}']")
    expect(row).to_have_attribute("data-state", "ACTIVE")
    shot(page, "schedules")
    row.get_by_role("button", name="Pause", exact=False).click()
    expect(row).to_have_attribute("data-state", "PAUSED")
    row.get_by_role("button", name="Resume", exact=False).click()
    # Then it is active again with a next fire time
    expect(row).to_have_attribute("data-state", "ACTIVE")
    expect(row.locator("time").first).to_be_visible()
    api(dev, "DELETE", f"/v1/schedules/{schedule['schedule_id']}")


def test_a_workflow_run_colours_its_nodes_live(page: Any, dev: Any) -> None:
    # Given a small workflow of sleep nodes
    status, _ = api(dev, "PUT", "/v1/workflows/ui-sleeps", SLEEP_FLOW)
    assert status in (200, 201)
    sign_in(page, dev)
    # When its page is opened, the DAG is drawn with every node and edge
    page.get_by_role("link", name="Workflows").click()
    page.get_by_role("link", name="ui-sleeps").click()
    graph = page.locator("#workflow-graph svg")
    expect(graph.locator("g.node")).to_have_count(3)
    expect(graph.locator("path.edge")).to_have_count(2)
    # And a run is started from the page, recording every colour each node is given
    page.get_by_role("button", name="Start run").click()
    expect(page.locator("#run-graph g.node")).to_have_count(3)
    page.evaluate(
        """() => {
        window.seen = {};
        const note = (g) => {
          const list = (window.seen[g.dataset.node] ||= []);
          if (list[list.length - 1] !== g.dataset.state) list.push(g.dataset.state);
        };
        document.querySelectorAll('#run-graph g.node').forEach(note);
        new MutationObserver((ms) => ms.forEach((m) => m.target.matches && m.target.matches('g.node') && note(m.target)))
          .observe(document.getElementById('run-graph'), {subtree: true, attributes: true, attributeFilter: ['data-state']});
        }"""
    )
    node_a = page.locator("#run-graph g.node[data-node='a']")
    node_b = page.locator("#run-graph g.node[data-node='b']")
    # Then the nodes change colour as they run: a runs while b waits, then all succeed
    expect(node_a).to_have_attribute("data-state", "RUNNING", timeout=20_000)
    assert node_b.get_attribute("data-state") == "PENDING"
    shot(page, "run-running")
    expect(page.locator("#run-state")).to_have_attribute("data-state", "SUCCEEDED", timeout=30_000)
    seen = page.evaluate("window.seen")
    assert seen["a"][-2:] == ["RUNNING", "SUCCEEDED"], seen
    assert seen["b"][0] == "PENDING" and seen["b"][-1] == "SUCCEEDED", seen
    # And the colour is the succeeded one (after its short transition)
    expect(node_b.locator("rect")).to_have_css("fill", "rgb(30, 158, 90)")
    shot(page, "run-succeeded")
    page.goto(f"{dev.url}/#/workflows/ui-sleeps")
    expect(page.locator("#run-rows tr")).to_have_count(1)
    shot(page, "workflow")
    assert page.errors == []


def test_dead_letters_page_redrives_or_says_not_available(page: Any, dev: Any) -> None:
    # Given a task that fails for good (a local function that always raises, one attempt)
    _, task = api(
        dev,
        "POST",
        "/v1/tasks",
        {"target": {"type": "lambda", "function": "explode"}, "retry": {"max_attempts": 1}},
    )
    deadline = time.monotonic() + 20
    while api(dev, "GET", f"/v1/tasks/{task['task_id']}")[1]["state"] != "FAILED":
        assert time.monotonic() < deadline, "the failing task never failed"
        time.sleep(0.2)
    sign_in(page, dev)
    page.get_by_role("link", name="Dead letters").click()
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    status, _ = api(dev, "GET", "/v1/dead-letters")
    if status == 404:
        # Then, where the endpoint is not built yet, the page says so instead of breaking
        expect(page.locator("[data-unavailable]")).to_be_visible()
        shot(page, "dead-letters")
        return
    # Then the failed task is listed as dead
    row = page.locator(f"tr[data-task-id='{task['task_id']}']")
    expect(row).to_have_attribute("data-status", "dead", timeout=20_000)
    shot(page, "dead-letters")
    # When it is ticked and redriven
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Redrive selected").click()
    expect(page.locator("#toast")).to_contain_text("Redriven: 1")
    # Then it leaves the waiting list, and the "redriven" list names the fresh task
    expect(row).to_have_count(0)
    page.get_by_label("Status").select_option("redriven")
    expect(row).to_have_attribute("data-status", "redriven")
    fresh = row.locator("a.redriven-as").inner_text()
    shot(page, "dead-letters-redriven")
    _, old = api(dev, "GET", f"/v1/tasks/{task['task_id']}")
    assert old["history"][-1]["detail"] == f"redriven as {fresh}"
    _, new = api(dev, "GET", f"/v1/tasks/{fresh}")
    assert new["history"][0]["detail"] == f"redrive of {task['task_id']}"


def test_another_tenant_sees_none_of_it(page: Any, dev: Any) -> None:
    # Given the default tenant's tasks and workflow
    _, mine = api(dev, "GET", "/v1/tasks?limit=100")
    assert mine["items"]
    api(dev, "PUT", "/v1/workflows/ui-sleeps", SLEEP_FLOW)
    # When the other tenant signs in
    sign_in(page, dev, key=dev.other_key)
    expect(page.locator("#tasks-info")).to_contain_text("shown")
    # Then none of those tasks is in its table, and the workflow is not in its list
    shown = set(page.locator("tr[data-task-id]").evaluate_all("rows => rows.map(r => r.dataset.taskId)"))
    assert not shown & {t["task_id"] for t in mine["items"]}
    page.get_by_role("link", name="Workflows").click()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    expect(page.locator("#workflow-rows tr").first).to_be_visible()
    expect(page.locator("tr[data-workflow='ui-sleeps']")).to_have_count(0)
