"""One environment of taskplane: composes one construct per capability and wires them together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codedeploy as codedeploy
from constructs import Construct

from infra.capabilities import scheduler, triggers, workflows
from infra.capabilities.api import Api
from infra.capabilities.blobs import Blobs
from infra.capabilities.function import PlatformFunction, Shared
from infra.capabilities.layers import Layers
from infra.capabilities.monitoring import Monitoring
from infra.capabilities.queues import Queues
from infra.capabilities.storage import Storage
from infra.capabilities.tenants import Tenants
from infra.capabilities.worker import Worker
from infra.config import EnvironmentConfig
from taskplane.settings import PlatformSettings

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"


def has_function(functions_dir: Path, name: str) -> bool:
    """Whether ``functions/<name>/handler.py`` exists (the tick and step functions land separately)."""
    return (functions_dir / name / "handler.py").is_file()


class TaskplaneStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cfg: EnvironmentConfig,
        functions_dir: Path = FUNCTIONS_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.cfg = cfg
        cdk.Tags.of(self).add("project", "taskplane")
        cdk.Tags.of(self).add("environment", cfg.name)

        # The workflows capability arrives with functions/step (issue 4); until then it is left out.
        features = frozenset(name for name in ("step",) if has_function(functions_dir, name))
        storage = Storage(self, "Storage", cfg=cfg, features=features)
        self.blobs = blobs = Blobs(self, "Blobs", cfg=cfg)
        queues = Queues(self, "Queues", cfg=cfg)
        self.storage, self.queues = storage, queues
        layers = Layers(self, "Layers", prefix=cfg.prefix)

        self.tenants = tenants = Tenants(self, "Tenants", cfg=cfg)

        # Every function gets the same PlatformSettings environment (variable names: taskplane.settings).
        candidates: dict[str, Any] = {
            **storage.settings_fields(),
            "queue_urls": {lane: q.queue_url for lane, q in queues.lanes.items()},
            "dlq_url": queues.dlq.queue_url,
            "trigger_dlq_url": queues.trigger_dlq.queue_url,
            "trigger_dlq_arn": queues.trigger_dlq.queue_arn,
            "task_buckets": cfg.task_buckets,
            "retention_days": cfg.retention_days,
            "max_lane_depth": cfg.max_lane_depth,
            "tenant_inflight_quota": cfg.tenant_inflight_quota,
            "max_workflows": cfg.max_workflows,
            # HTTP targets never reach private, loopback or link-local addresses from AWS (the
            # instance metadata endpoint, the VPC): only the local runtime allows them, for demos.
            "allow_private_http": False,
            # A tenant may call only the targets its allow-list names (builtins always); one without
            # a list, only builtins. The IAM allow-list (cfg.targets) bounds them all.
            "target_allowlists": tenants.target_allowlists(cfg),
            "task_routes": tenants.task_routes(cfg),
            "targets_allowed_by_default": False,
            "breaker_timeouts": cfg.breaker_timeouts,
            "breaker_open_ms": cfg.breaker_open_ms,
            "otlp_endpoint": cfg.otlp_endpoint or "",
            "otlp_sample_ratio": cfg.otlp_sample_ratio,
            **scheduler.settings_fields(self, cfg),
            **triggers.settings_fields(cfg),
            **blobs.settings_fields(),
        }
        if "step" in features:
            candidates |= workflows.settings_fields(self, cfg)
        fields = PlatformSettings.model_fields
        settings = PlatformSettings(**{k: v for k, v in candidates.items() if k in fields})
        #: Settings the code reads that this app does not set (tests/infra requires none).
        self.unset_settings = sorted(set(fields) - set(candidates))
        shared = Shared(
            cfg=cfg,
            layers=layers.all,
            application=codedeploy.LambdaApplication(self, "Deployments", application_name=cfg.prefix),
            functions_dir=functions_dir,
            platform_env=settings.to_env(),
        )

        self.api = Api(self, "Api", shared=shared, storage=storage, queues=queues, tenants=tenants)
        self.worker = Worker(self, "Worker", shared=shared, storage=storage, queues=queues)
        functions: list[PlatformFunction] = [self.api.fn, self.worker.fn]
        # Both write wheel entries due soon (delayed tasks; retries and watches) and wake an idle tick.
        for fn in functions:
            scheduler.grant_wake(fn.role, self, cfg)
        # The api writes large payloads and signs upload URLs; the worker reads payloads, writes results.
        blobs.grant(self.api.fn.role, uploads=True)
        blobs.grant(self.worker.fn.role)

        self.triggers = triggers.Triggers(
            self,
            "Triggers",
            cfg=cfg,
            api=self.api.fn,
            worker=self.worker.fn,
            storage=storage,
            queues=queues,
        )
        self.scheduler = scheduler.Scheduler(self, "Scheduler", shared=shared, storage=storage, queues=queues)
        functions.append(self.scheduler.fn)
        # (no bucket for the tick: windowed triggers' windows, whose tasks may offload a large payload,
        # are closed by the worker; a schedule's fire copies no payload to the bucket)
        # The tick's new version takes traffic only once the worker's has all of it: a tick sends lane
        # messages (window ends) that only a worker of the same release or later reads (an older one
        # would dead-letter them as unreadable, and the window would not close on time).
        self.scheduler.fn.alias.node.add_dependency(self.worker.fn.alias)
        self.workflows: workflows.Workflows | None = None
        if "step" in features:
            self.workflows = workflows.Workflows(
                self, "Workflows", shared=shared, storage=storage, api=self.api
            )
            functions.append(self.workflows.fn)
            # A workflow node with an eventbridge target publishes like a task does.
            self.triggers.grant_publish(self.workflows.fn.role)
            blobs.grant(self.workflows.fn.role)  # node outputs over the ledger's limit

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            cfg=cfg,
            functions=functions,
            queues=queues,
            rest_api=self.api.rest_api,
            api_function=self.api.fn,
            scheduler=self.scheduler,
        )

        cdk.CfnOutput(self, "ApiUrl", value=self.api.url, description="TASKPLANE_URL for the CLI and client")
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=queues.dlq.queue_url)
        cdk.CfnOutput(self, "TriggerDeadLetterQueueUrl", value=queues.trigger_dlq.queue_url)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        cdk.CfnOutput(
            self,
            "DashboardUrl",
            value=(
                f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#dashboards:name={cfg.prefix}-platform"
            ),
        )
