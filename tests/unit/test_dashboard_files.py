"""The dashboard's static files: complete, shipped, and with nothing fetched from elsewhere."""

from __future__ import annotations

import re

import pytest

from taskplane import dashboard
from taskplane.domain.models import Task
from taskplane.domain.states import TaskState
from taskplane.services.stats import summarize

pytestmark = pytest.mark.unit


def test_every_file_the_page_loads_is_shipped_and_public():
    # Given the shipped files
    files = dashboard.files()
    # Then the page's scripts, styles and icon, and every module they import, are among them
    wanted = set(re.findall(r'(?:src|href)="ui/([^"]+)"', files["index.html"]))
    for name, text in files.items():
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([^"]+)"', text))
    assert wanted and wanted <= set(files)
    # And each is served on a public path
    assert {"/"} | {f"/ui/{n}" for n in wanted} <= dashboard.public_paths()


def test_nothing_is_loaded_from_another_origin():
    # Works offline: no CDN, no font service; the only absolute URL is the SVG namespace.
    for name, text in dashboard.files().items():
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}"


def test_the_key_is_kept_in_session_storage_only():
    api_js = dashboard.files()["api.js"]
    assert "sessionStorage" in api_js
    app = "".join(dashboard.files().values())
    assert "localStorage" not in app and "console.log" not in app


def _task(state: TaskState, finished_at: int | None) -> Task:
    return Task(
        task_id="01J0000000000000000000000" + state.value[0],
        tenant="t",
        state=state,
        target={"type": "builtin", "name": "echo"},
        run_at=0,
        created_at=0,
        finished_at=finished_at,
    )


def test_summarize_counts_states_and_recent_finishes():
    # Given tasks finished 10 s and 2 min ago and one running
    now = 1_000_000
    tasks = [
        _task(TaskState.SUCCEEDED, now - 10_000),
        _task(TaskState.FAILED, now - 120_000),
        _task(TaskState.RUNNING, None),
    ]
    # When summarized over the last minute
    s = summarize(tasks, now)
    # Then every state is counted and only the recent finish is throughput
    assert s["counts"]["SUCCEEDED"] == 1 and s["counts"]["FAILED"] == 1 and s["counts"]["RUNNING"] == 1
    assert s["counts"]["PENDING"] == 0
    assert s["finished_last_window"] == 1 and s["throughput_per_min"] == 1.0
