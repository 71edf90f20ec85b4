"""One synthesized template per test session, for an environment that switches every feature on.

Bundling is skipped through the context (``aws:cdk:bundling-stacks: []``), so no pip runs here;
cdk-nag runs as it does in ``make synth``. aws_cdk is imported on first use: importing it starts a
Node process, which tests of other tiers should not pay for at collection.

Not a conftest.py: pytest would import it as the module ``conftest`` in place of tests/conftest.py,
which other tiers import from. Each test module wraps :func:`synthesized` in its own session
fixture; the synth itself runs once per process.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: An environment with every option set: two tenants, reserved concurrency, several shards, target
#: allow-lists with a full ARN, an alarm mailbox, retained data.
TEST_ENV: dict[str, Any] = {
    "prefix": "tp-test",
    "shards": 3,
    "task_buckets": 2,
    "retention_days": 30,
    "log_retention_days": 30,
    "retain_data": True,
    "lane_concurrency": {"high": 8, "default": 6, "low": 2},
    "reserved_concurrency": {"worker": 20, "tick": 6, "step": 10},
    "api_throttle": {"rate_limit": 300, "burst_limit": 600},
    "tenants": {
        "acme": {"rate_limit": 100, "burst_limit": 200, "quota_per_day": 5_000_000},
        "globex-eu": {"rate_limit": 10, "burst_limit": 20, "quota_per_day": 10_000},
    },
    "targets": {
        "lambda_functions": [
            "{prefix}-target-*",
            "arn:aws:lambda:eu-west-1:111122223333:function:shared-echo",
        ],
        "sqs_queues": ["{prefix}-target-*"],
        "event_buses": ["{prefix}-target-*"],
    },
    "deployment": "canary_10_percent_5_minutes",
    "alarm_email": "ops@example.com",
}


def test_env() -> dict[str, Any]:
    """A fresh copy of TEST_ENV, with its name."""
    return {"name": "test", **copy.deepcopy(TEST_ENV)}


STUB_HANDLER = '"""Stand-in so the workflows capability is synthesized before functions/step lands."""\n'


@dataclass
class Synth:
    template: dict[str, Any]
    report: dict[str, Any]
    error: str | None
    stack: Any
    cfg: Any
    outdir: Path
    template_path: Path
    stubbed: list[str]

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}

    def one(self, cfn_type: str, **properties: Any) -> tuple[str, dict[str, Any]]:
        """The single resource of ``cfn_type`` whose properties include ``properties``."""
        found = [
            (k, r)
            for k, r in self.resources(cfn_type).items()
            if all(r.get("Properties", {}).get(p) == v for p, v in properties.items())
        ]
        assert len(found) == 1, f"expected one {cfn_type} with {properties}, found {[k for k, _ in found]}"
        return found[0]

    def logical_id(self, construct: Any) -> str:
        """The logical id of an L2 construct's resource (or of an L1 resource)."""
        element = getattr(construct.node, "default_child", None) or construct
        return self.stack.resolve(element.logical_id)

    def statements_of(self, role: Any) -> list[dict[str, Any]]:
        """Every statement of the IAM policies attached to ``role`` (an iam.Role construct)."""
        ref = {"Ref": self.logical_id(role)}
        return [
            st
            for policy in self.resources("AWS::IAM::Policy").values()
            if ref in policy["Properties"]["Roles"]
            for st in policy["Properties"]["PolicyDocument"]["Statement"]
        ]


def _functions_dir(tmp: Path) -> tuple[Path, list[str]]:
    """The real functions/, plus a stub for each capability whose function has not landed yet."""
    missing = [name for name in ("step",) if not (ROOT / "functions" / name / "handler.py").is_file()]
    if not missing:
        return ROOT / "functions", []
    target = tmp / "functions"
    shutil.copytree(ROOT / "functions", target, ignore=shutil.ignore_patterns("__pycache__"))
    for name in missing:
        (target / name).mkdir()
        (target / name / "handler.py").write_text(STUB_HANDLER)
    return target, missing


@functools.cache
def synthesized() -> Synth:
    """Synthesize the test environment (once per process) into a temporary cdk.out."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app, cdk_json_context
    from infra.config import ENVIRONMENTS_KEY

    tmp = Path(tempfile.mkdtemp(prefix="taskplane-infra-test-"))
    atexit.register(shutil.rmtree, tmp, True)
    functions_dir, stubbed = _functions_dir(tmp)
    context = cdk_json_context()  # the feature flags a `cdk synth` would use
    context[ENVIRONMENTS_KEY] = {"test": TEST_ENV}
    context["aws:cdk:bundling-stacks"] = []
    outdir = tmp / "cdk.out"
    app, (stack,) = build_app(context, outdir=str(outdir), functions_dir=functions_dir)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail the synth; the template is written first
        error = str(exc)
    template_path = outdir / f"{stack.artifact_id}.template.json"
    if not template_path.exists():  # the app itself failed, before any validation
        raise RuntimeError(f"synth failed: {error}")
    report_path = outdir / "validation-report.json"
    return Synth(
        template=json.loads(template_path.read_text()),
        report=json.loads(report_path.read_text()) if report_path.exists() else {},
        error=error,
        stack=stack,
        cfg=stack.cfg,
        outdir=outdir,
        template_path=template_path,
        stubbed=stubbed,
    )
