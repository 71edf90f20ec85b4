"""Cold start by design: importing a handler module leaves the heavy libraries for later.

No timing here (bench/cold_start.py measures): each test imports in a fresh interpreter, the way
Lambda does (the function's folder and the code layer on ``sys.path``, tracing on as when deployed),
and looks at ``sys.modules``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "core" / "python"

#: Imported where they are used (a workflow definition, a cron expression) or on the first
#: invocation (the X-Ray SDK with the tracer; boto3 when the platform is built), never by a handler
#: module's import.
DEFERRED = ("aws_xray_sdk", "networkx", "yaml", "croniter", "boto3", "opentelemetry", "google.protobuf")
#: Never imported at all, whatever the function does, unless an OTLP endpoint is set.
OTLP_ONLY = ("opentelemetry", "google.protobuf")
#: ... and per function: the API enables its Swagger UI route (Powertools' OpenAPI models) on the
#: first request for the docs page.
DEFERRED_IN = {"api": ("aws_lambda_powertools.event_handler.openapi.models",)}


def fresh(code: str, function: str = "api", extra_env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``code`` in a new interpreter set up like the deployed function; its last line is JSON."""
    fn_dir = ROOT / "functions" / function
    env = {
        **os.environ,
        **(extra_env or {}),
        # Tracing on, as in Lambda with Tracing.ACTIVE (Powertools enables it when this is set).
        "LAMBDA_TASK_ROOT": str(fn_dir),
        "AWS_LAMBDA_FUNCTION_NAME": f"taskplane-{function}",
        "AWS_REGION": "us-east-1",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "POWERTOOLS_SERVICE_NAME": "taskplane",
        "PYTHONPATH": os.pathsep.join([str(fn_dir), str(LAYER)]),
    }
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    if not (extra_env or {}).get("TASKPLANE_OTLP_ENDPOINT"):
        env.pop("TASKPLANE_OTLP_ENDPOINT", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=fn_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("function", ["api", "worker", "tick", "step"])
def test_importing_a_handler_leaves_the_heavy_modules_unimported(function):
    # Given a fresh interpreter set up like the deployed function
    # When its handler module is imported
    deferred = DEFERRED + DEFERRED_IN.get(function, ())
    loaded = fresh(
        f"import json, sys, handler; print(json.dumps({{'loaded': [m for m in {deferred!r} if m in sys.modules]}}))",
        function,
    )
    # Then none of the deferred libraries came with it
    assert loaded == {"loaded": []}


def test_the_tracer_is_made_and_patches_on_the_first_traced_call():
    # Given the observability module imported with tracing on, and a traced handler and method
    code = """
import json, sys
from taskplane.observability import tracer

@tracer.capture_method(capture_response=False)
def double(x):
    return 2 * x

@tracer.capture_lambda_handler(capture_response=False)
def handler(event, context):
    if event == "boom":
        raise ValueError("boom")
    return double(event)

before = "aws_xray_sdk" in sys.modules
import aws_xray_sdk.core  # what X-Ray's own patching would see, made visible to check it
from aws_xray_sdk.core import patcher
patched_before = sorted(patcher._PATCHED_MODULES)
# No segment here (no Lambda runtime): let the recorder just log that.
aws_xray_sdk.core.xray_recorder.configure(context_missing="IGNORE_ERROR")
result = handler(21, None)
try:
    handler("boom", None)
    raised = False
except ValueError:
    raised = True
print(json.dumps({
    "xray_before": before,
    "patched_before": patched_before,
    "result": result,
    "raised": raised,
    "tracer": type(tracer.setup()).__name__,
    "disabled": tracer.disabled,
    "botocore_patched": "botocore" in patcher._PATCHED_MODULES,
    "others_patched": sorted(patcher._PATCHED_MODULES - {"botocore"}),
    "requests_imported": "requests" in sys.modules,
    "name": handler.__name__,
}))
"""
    # When the handler is called twice (once failing)
    out = fresh(code)
    # Then nothing was imported or patched before the first call, and the call made a live Powertools
    # tracer that patched botocore; the handler's result, its exception and its name are kept
    assert out["xray_before"] is False and out["patched_before"] == []
    assert out["tracer"] == "Tracer" and out["disabled"] is False and out["botocore_patched"] is True
    # only botocore: X-Ray's patch_all would import and patch every library it finds installed
    # (requests, which the OTLP exporter brings into the layer) in every function's first invocation
    assert out["others_patched"] == [] and out["requests_imported"] is False
    assert out["result"] == 42 and out["raised"] is True and out["name"] == "handler"


#: What a function does on its first invocation, short of calling AWS: build the platform from the
#: environment, pass every tracing call and record and flush a metric (and, for the API, answer
#: GET /v1/health through the whole handler).
FIRST_INVOCATION = """
import json, sys
loaded = lambda: sorted({m.split(".")[0] + ("." + m.split(".")[1] if m.startswith("google.") else "")
                         for m in sys.modules if m.startswith(("opentelemetry", "google.protobuf"))})
import handler
after_import = loaded()
from taskplane import wiring
from taskplane.adapters.queues import LaneMessage
from taskplane.local.context import LocalContext
platform = wiring.platform()
t = platform.tracing
messages, ended = t.dispatch([LaneMessage(tenant="acme", task_id="T1", attempt=1)])
ended([None])
with t.delivered(messages[0]):
    with t.attempt("task.run", "acme", "T1", 1, lane="default") as note:
        t.failed("Timeout", "x")
        note.outcome("retrying")
with t.request({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}):
    pass
with t.step({"action": "run", "run": {"tenant": "acme", "run_id": "R1", "workflow": "w", "exec": 1}}):
    pass
platform.telemetry.count("started", tenant="acme", target_type="builtin", lane="default", attempt=1)
if FUNCTION == "api":
    event = {"path": "/v1/health", "httpMethod": "GET", "headers": {}, "requestContext": {"identity": {}}}
    answer = handler.lambda_handler(event, LocalContext(function_name="taskplane-api"))
    assert answer["statusCode"] == 200, answer
platform.telemetry.flush()
print(json.dumps({"after_import": after_import, "after_invocation": loaded(), "tracing": type(t).__name__}))
"""


@pytest.mark.parametrize("function", ["api", "worker", "tick", "step"])
def test_without_an_otlp_endpoint_opentelemetry_is_never_imported(function):
    # Given a fresh interpreter set up like the deployed function, no TASKPLANE_OTLP_ENDPOINT
    # When the handler is imported and the first invocation's work is done
    out = fresh(
        f"FUNCTION = {function!r}\n" + FIRST_INVOCATION,
        function,
        {"POWERTOOLS_METRICS_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    # Then neither the OpenTelemetry SDK nor protobuf was ever imported
    assert out == {"after_import": [], "after_invocation": [], "tracing": "NullTracing"}


@pytest.mark.parametrize("function", ["api", "worker"])
def test_with_an_otlp_endpoint_opentelemetry_comes_with_the_first_invocation_not_the_import(function):
    # Given the same, with an endpoint set (nothing listens there: exports fail, quietly)
    env = {
        "TASKPLANE_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # When the handler is imported and the first invocation's work is done
    out = fresh(f"FUNCTION = {function!r}\n" + FIRST_INVOCATION, function, env)
    # Then the import left the SDK alone, and building the platform brought it
    assert out["after_import"] == [] and out["tracing"] == "OtlpExport"
    assert {"opentelemetry", "google.protobuf"} <= set(out["after_invocation"])


WARM_UP = """
import json, sys
from moto import mock_aws
mock_aws().start()
from taskplane import wiring
builds = []
real_build = wiring.build
wiring.build = lambda *a, **k: builds.append(1) or real_build(*a, **k)
import handler
first = wiring._current
wiring.platform()
print(json.dumps({"builds": len(builds), "built_at_import": first is not None,
                  "same": wiring.platform() is first}))
"""


@pytest.mark.parametrize("function", ["api", "worker", "tick", "step"])
def test_a_handler_builds_the_platform_at_import_only_in_lambdas_init_phase(function):
    # Given a fresh interpreter set up like the deployed function, with moto active
    # When the handler module is imported without Lambda's init variable (pytest, moto, taskplane dev)
    region = {"AWS_DEFAULT_REGION": "us-east-1"}  # as Lambda sets it
    plain = fresh(WARM_UP, function, region)
    # Then nothing was built at import (the first call built it once)
    assert (plain["builds"], plain["built_at_import"]) == (1, False)
    # When it is imported during Lambda's init phase
    init = fresh(WARM_UP, function, {**region, "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})
    # Then the import built the platform, once: the first invocation reuses it
    assert (init["builds"], init["built_at_import"], init["same"]) == (1, True, True)


def test_without_lambdas_init_variable_importing_a_handler_makes_no_client():
    # Given the worker's handler imported without the variable (as every test and taskplane dev do)
    code = "import json, sys, handler; print(json.dumps({'boto3': 'boto3' in sys.modules}))"
    # Then boto3 is not even imported; with the variable, the tracer and the clients are made
    assert fresh(code, "worker") == {"boto3": False}
    code = (
        "import json, sys, handler; from taskplane import wiring; "
        "from taskplane.observability import tracer; "
        "print(json.dumps({'boto3': 'boto3' in sys.modules, 'built': wiring._current is not None, "
        "'tracer': tracer._tracer is not None}))"
    )
    env = {
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }
    assert fresh(code, "worker", env) == {"boto3": True, "built": True, "tracer": True}


def test_a_warm_up_that_fails_is_logged_and_leaves_the_build_to_the_first_invocation(monkeypatch):
    # Given a platform that cannot be built (a setting missing, say)
    from taskplane import init_phase, wiring
    from taskplane.observability import tracer

    def broken() -> None:
        raise ValueError("TASKPLANE_TASKS_TABLE is not set")

    monkeypatch.setattr(tracer, "setup", lambda: None)
    monkeypatch.setattr(wiring, "platform", broken)
    # When Lambda's init runs the warm-up / Then it does not raise (the import, and the init, succeed)
    assert init_phase.warm_up({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"}) is False
    # And outside Lambda's init it does nothing at all
    assert init_phase.warm_up({}) is False
