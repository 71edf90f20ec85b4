"""One synthesized template per test session, for an environment that switches every feature on.

Bundling is skipped through the context (``aws:cdk:bundling-stacks: []``), so no pip runs here;
cdk-nag runs as it does in ``make synth``. aws_cdk is imported on first use: importing it starts a
Node process, which tests of other tiers should not pay for at collection.

Not a conftest.py: pytest would import it as the module ``conftest`` in place of tests/conftest.py,
which other tiers import from. Each test module wraps :func:`synthesized` in its own session
fixture; the synth itself runs once per test run, shared by xdist workers through a file lock.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: An environment with every option set: two tenants, reserved concurrency, several shards, target
#: allow-lists with a full ARN, an alarm mailbox and an existing alarm topic, retained data.
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
        "acme": {
            "rate_limit": 100,
            "burst_limit": 200,
            "quota_per_day": 5_000_000,
            "allowed_targets": ["lambda:tp-test-target-acme-*", "http:api.acme.example"],
            "task_routes": [
                {"name": "canary", "labels": {"env": "canary"}, "percent": 10, "lambda_alias": "next"}
            ],
            "external_events": [
                {"bus": "default", "sources": ["aws.s3"]},
                {"bus": "partner-bus", "sources": ["com.partner.*"]},
            ],
        },
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
    "shared_targets": ["eventbridge:tp-test-target-events"],
    "deployment": "canary_10_percent_5_minutes",
    "alarm_email": "ops@example.com",
    "otlp_endpoint": "https://otel.example.com:4318",
    "otlp_sample_ratio": 0.25,
    "alarm_topic_arn": "arn:aws:sns:eu-west-1:111122223333:team-pager",
    "account_concurrency_limit": 200,
    # not the defaults, so that the synth shows they reach the functions
    "worker_memory_mb": 384,
    "tick_memory_mb": 192,
}


def test_env() -> dict[str, Any]:
    """A fresh copy of TEST_ENV, with its name."""
    return {"name": "test", **copy.deepcopy(TEST_ENV)}


STUB_HANDLER = '"""Stand-in so the workflows capability is synthesized before functions/step lands."""\n'


#: Constructs the tests look up, by a short name -> how to reach them from the stack.
CONSTRUCTS = {
    "api.alias": lambda st: st.api.fn.alias,
    "api.role": lambda st: st.api.fn.role,
    "rest_api": lambda st: st.api.rest_api,
    "stage": lambda st: st.api.rest_api.deployment_stage,
    "worker.alias": lambda st: st.worker.fn.alias,
    "worker.role": lambda st: st.worker.fn.role,
    "tick.alias": lambda st: st.scheduler.fn.alias,
    "tick.role": lambda st: st.scheduler.fn.role,
    "step.role": lambda st: st.workflows.fn.role if st.workflows else None,
    "key.acme": lambda st: st.tenants.keys["acme"],
    "dlq": lambda st: st.queues.dlq,
    "topic": lambda st: st.monitoring.topic,
    "workflows.role": lambda st: st.workflows.role if st.workflows else None,
    "workflows.alias": lambda st: st.workflows.fn.alias if st.workflows else None,
}


@dataclass
class Synth:
    """The synthesized template with what the tests need to read it (plain data: shareable)."""

    template: dict[str, Any]
    report: dict[str, Any]
    error: str | None
    template_path: Path
    stubbed: list[str]
    ids: dict[str, str]
    unset_settings: list[str]
    has_workflows: bool

    @property
    def cfg(self) -> Any:
        from infra.config import EnvironmentConfig

        return EnvironmentConfig.model_validate(test_env())

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == cfn_type}

    def logical_id(self, name: str) -> str:
        """The logical id of one of ``CONSTRUCTS`` (e.g. ``"worker.role"``)."""
        return self.ids[name]

    def statements_of(self, role: str) -> list[dict[str, Any]]:
        """Every statement of the IAM policies attached to the role named ``role`` in ``CONSTRUCTS``."""
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


def _synthesize(work: Path) -> None:
    """Synthesize the test environment into ``work/cdk.out`` and write ``work/facts.json``."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from infra.app import build_app, cdk_json_context
    from infra.config import ENVIRONMENTS_KEY

    functions_dir, stubbed = _functions_dir(work)
    context = cdk_json_context()  # the feature flags a `cdk synth` would use
    context[ENVIRONMENTS_KEY] = {"test": TEST_ENV}
    context["aws:cdk:bundling-stacks"] = []
    outdir = work / "cdk.out"
    app, (stack,) = build_app(context, outdir=str(outdir), functions_dir=functions_dir)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # cdk-nag findings fail the synth; the template is written first
        error = str(exc)
    template_path = outdir / f"{stack.artifact_id}.template.json"
    ids = {}
    for name, reach in CONSTRUCTS.items():
        construct = reach(stack)
        if construct is not None:
            element = getattr(construct.node, "default_child", None) or construct
            ids[name] = stack.resolve(element.logical_id)
    facts = {
        "error": error if template_path.exists() else f"synth failed: {error}",
        "template_path": str(template_path),
        "stubbed": stubbed,
        "ids": ids,
        "unset_settings": stack.unset_settings,
        "has_workflows": stack.workflows is not None,
    }
    (work / "facts.json").write_text(json.dumps(facts))


def synthesized(shared_root: Path) -> Synth:
    """The test environment's synth: made once per test run, however many xdist workers share it.

    The first caller synthesizes under an exclusive lock in ``shared_root``; the others wait for it
    and read the result (the template and plain facts about it, no live CDK objects).
    """
    work = shared_root / "infra-synth"
    with open(shared_root / "infra-synth.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (work / "facts.json").exists():
            work.mkdir(exist_ok=True)
            _synthesize(work)
    facts = json.loads((work / "facts.json").read_text())
    template_path = Path(facts.pop("template_path"))
    if not template_path.exists():
        raise RuntimeError(facts["error"])
    report_path = template_path.parent / "validation-report.json"
    return Synth(
        template=json.loads(template_path.read_text()),
        report=json.loads(report_path.read_text()) if report_path.exists() else {},
        template_path=template_path,
        **facts,
    )


def shared_root(tmp_path_factory: Any) -> Path:
    """A directory every xdist worker of this run sees (the parent of each worker's basetemp)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
