"""Fixtures for workflow tests: moto with Step Functions executing ASL and the step function in-process.

Import the fixtures into a test module (``from workflow_fixtures import wf, wf_api  # noqa: F401``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from support import Reply, api_event


@dataclass
class WfAws:
    session: Any
    settings: Any
    platform: Any

    def client(self, name: str) -> Any:
        return self.session.client(name)


@pytest.fixture
def wf(aws_env: None, request: pytest.FixtureRequest) -> Iterator[WfAws]:
    """moto with every table, Step Functions executing, the step function running in-process.

    Parametrize indirectly with ``{"functions": {name: handler}}`` to add local Lambda functions.
    """
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.local import moto_patches
    from taskplane.local.lambdas import create_local_functions, install_local_lambdas
    from taskplane.local.resources import create_resources
    from taskplane.local.workflows import MOCK_CONFIG, install_step_function, stop_executions

    moto_patches.apply()
    options = getattr(request, "param", {}) or {}
    with mock_aws(config=MOCK_CONFIG):
        session = boto3.session.Session(region_name="us-east-1")
        settings = create_resources(session)
        settings, uninstall_step = install_step_function(session, settings)
        uninstall_functions = None
        if options.get("functions"):
            create_local_functions(
                session.client("lambda"), options["functions"], iam_client=session.client("iam")
            )
            uninstall_functions = install_local_lambdas(options["functions"])
        platform = wiring.build(settings, session=session, clock=options.get("clock"))
        wiring.use(platform)
        try:
            yield WfAws(session=session, settings=settings, platform=platform)
        finally:
            stop_executions(session)
            # Give executor threads a moment to notice before the mock goes away.
            time.sleep(0.05)
            if uninstall_functions:
                uninstall_functions()
            uninstall_step()
            wiring.use(None)


@pytest.fixture
def wf_api(wf: WfAws) -> Callable[..., Reply]:
    """Call the api handler: ``wf_api("PUT", "/v1/workflows/x", raw_body=yaml, headers={...})``."""
    from taskplane.local.context import LocalContext
    from taskplane.local.handlers import load_handler

    handler = load_handler("api").lambda_handler

    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        response = handler(
            api_event(method, path, body, **kwargs), LocalContext(function_name="taskplane-api")
        )
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        raw = response.get("body")
        try:
            parsed = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            parsed = raw
        return Reply(status=response["statusCode"], body=parsed, headers=headers)

    return call


def put_yaml(call: Callable[..., Reply], name: str, text: str, tenant: str = "acme") -> Reply:
    return call(
        "PUT",
        f"/v1/workflows/{name}",
        raw_body=text,
        headers={"Content-Type": "application/yaml"},
        tenant=tenant,
    )


def wait_run(
    call: Callable[..., Reply],
    run_id: str,
    *,
    tenant: str = "acme",
    timeout_s: float = 30,
    until: Callable[[dict], bool] | None = None,
) -> dict[str, Any]:
    """Poll ``GET /v1/runs/{id}`` until the run ends (or ``until(run)`` holds)."""
    done = until or (lambda run: run["state"] != "RUNNING")
    deadline = time.monotonic() + timeout_s
    while True:
        reply = call("GET", f"/v1/runs/{run_id}", tenant=tenant)
        assert reply.status == 200, reply.body
        if done(reply.body) or time.monotonic() > deadline:
            return reply.body
        time.sleep(0.02)
