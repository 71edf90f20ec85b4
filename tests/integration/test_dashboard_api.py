"""The dashboard's files and the header's /v1/stats, through the api handler under moto."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}, "payload": {"n": 1}}


def test_the_page_and_its_files_need_no_key_and_forbid_third_parties(api):
    # Given no API key (a browser loading the page cannot send one)
    # When the page and a file it loads are fetched
    page = api("GET", "/", tenant=None)
    script = api("GET", "/ui/app.js", tenant=None)
    # Then both are served with their types and a strict content security policy
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<script type="module" src="ui/app.js">' in page.body
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_an_unknown_file_is_not_public(api):
    # An unlisted path under /ui/ is like any other path: a key first, then 404
    assert api("GET", "/ui/secret.js", tenant=None).status == 401
    assert api("GET", "/ui/secret.js").status == 404


def test_stats_need_a_key(api):
    reply = api("GET", "/v1/stats", tenant=None)
    assert reply.status == 401


def test_stats_count_only_the_callers_tasks_and_read_every_lane(api, drain):
    # Given two tasks of acme that ran and one of globex still queued
    for _ in range(2):
        assert api("POST", "/v1/tasks", ECHO).status == 201
    drain()
    assert api("POST", "/v1/tasks", {**ECHO, "priority": "high"}, tenant="globex").status == 201
    # When each tenant asks for its figures
    acme = api("GET", "/v1/stats").body
    globex = api("GET", "/v1/stats", tenant="globex").body
    # Then each sees only its own tasks, and finished ones count as throughput
    assert acme["counts"]["SUCCEEDED"] == 2 and acme["sampled"] == 2
    assert acme["finished_last_window"] == 2 and acme["throughput_per_min"] == 2.0
    assert globex["counts"]["PENDING"] == 1 and globex["counts"]["SUCCEEDED"] == 0
    # And the lanes are platform-wide depths, with no tenant named in them
    assert set(acme["lanes"]) == {"high", "default", "low"}
    assert set(acme["lanes"]["default"]) == {"visible", "delayed", "in_flight"}
