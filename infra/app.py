"""The CDK app: one stack per environment in the context (``cdk.json``), checked by cdk-nag.

``npx cdk synth`` / ``deploy`` run it through the CDK CLI (``-c env=NAME`` builds one environment);
``python -m infra.app`` synthesizes into ``cdk.out/`` without the CLI, reading ``cdk.json`` itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.config import ENVIRONMENTS_KEY, SELECT_KEY, environments
from infra.envsize import oversized
from infra.stack import FUNCTIONS_DIR, TaskplaneStack

ROOT = Path(__file__).resolve().parents[1]


def cdk_json_context(path: Path = ROOT / "cdk.json") -> dict[str, Any]:
    """The ``context`` of ``cdk.json`` (what the CLI would pass to the app)."""
    return dict(json.loads(path.read_text()).get("context", {}))


def build_app(
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    *,
    functions_dir: Path = FUNCTIONS_DIR,
) -> tuple[cdk.App, list[TaskplaneStack]]:
    """The app with its stacks, and cdk-nag's AwsSolutions pack as a validation plugin."""
    app = cdk.App(context=dict(context) if context is not None else None, outdir=outdir)
    selection = {key: app.node.try_get_context(key) for key in (ENVIRONMENTS_KEY, SELECT_KEY)}
    stacks = []
    for cfg in environments(selection):
        stacks.append(
            TaskplaneStack(
                app,
                f"Taskplane-{cfg.name}",
                cfg=cfg,
                functions_dir=functions_dir,
                stack_name=cfg.prefix,
                description=f"taskplane {cfg.name}: serverless multi-tenant task platform",
                # Environment-agnostic unless cdk.json pins one: deploys where the credentials point.
                env=cdk.Environment(account=cfg.account, region=cfg.region)
                if cfg.account or cfg.region
                else None,
                termination_protection=cfg.retain_data,
            )
        )
    # Findings fail the synth unless acknowledged (each acknowledgement names its reason).
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stacks


def main() -> None:
    under_cli = "CDK_OUTDIR" in os.environ
    if under_cli:
        app, _ = build_app()
    else:
        app, _ = build_app(cdk_json_context(), outdir=str(ROOT / "cdk.out"))
    assembly = app.synth()
    problems = [p for stack in assembly.stacks for p in oversized(stack.template)]
    if problems:
        raise SystemExit("taskplane: the synth stops before a deploy would fail:\n- " + "\n- ".join(problems))


if __name__ == "__main__":
    main()
