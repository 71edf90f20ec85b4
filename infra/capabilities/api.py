"""API Gateway REST in front of the api function: API keys, one usage plan per tenant, access logs.

The tenant is the API key's id (``requestContext.identity.apiKeyId``), so every method except the
keyless ones the handler names in ``PUBLIC_PATHS`` requires a key. Gateway-made errors (bad key,
throttled, quota, unknown path) answer in the platform's error shape, like the function's own.

Memory and timeout: 1024 MB, because an API request's latency is mostly CPU (pydantic validation,
JSON, the cold start's imports) and Lambda gives CPU in proportion to memory; the request costs about
the same since it finishes sooner. 29 s is API Gateway's integration timeout: a longer one would
be billed for answers nobody receives. A batch of 500 tasks takes a few seconds.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.api.handler import PUBLIC_PATHS
from infra.capabilities.function import RETENTION, PlatformFunction, Shared
from infra.capabilities.queues import Queues
from infra.capabilities.storage import INFLIGHT, Storage, grant_items
from infra.capabilities.tenants import Tenants, camel
from infra.nag import acknowledge

STAGE = "prod"

#: Access log fields; the key's id (the tenant), never the key itself.
ACCESS_LOG = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "tenant": "$context.identity.apiKeyId",
    "ip": "$context.identity.sourceIp",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integration.latency",
    "integrationStatus": "$context.integration.status",
    "errorType": "$context.error.responseType",
    "error": "$context.error.message",
    "xrayTraceId": "$context.xrayTraceId",
}


def _error_template(code: str, message: str) -> dict[str, str]:
    body = {"error": {"code": code, "message": message, "details": []}}
    return {"application/json": json.dumps(body)}


#: Gateway responses in the contract's error shape: (type, status, code, message, extra headers).
GATEWAY_ERRORS = [
    (
        apigw.ResponseType.INVALID_API_KEY,
        "401",
        "unauthorized",
        "missing or unknown API key: send it in the x-api-key header",
        {},
    ),
    (
        apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,  # what API Gateway says for an unknown path
        "404",
        "not_found",
        "no such route",
        {},
    ),
    (
        apigw.ResponseType.THROTTLED,
        "429",
        "throttled",
        "too many requests for this API key; retry after the Retry-After seconds",
        {"Retry-After": "'1'"},
    ),
    (
        apigw.ResponseType.QUOTA_EXCEEDED,
        "429",
        "throttled",
        "this API key's daily quota is used up",
        {"Retry-After": "'3600'"},
    ),
    (
        apigw.ResponseType.REQUEST_TOO_LARGE,
        "413",
        "payload_too_large",
        "request body is over API Gateway's 10 MB limit",
        {},
    ),
    # What API Gateway answers itself when the api function fails (a crash, a timeout: 502/504):
    # the status stays, the body is the contract's shape. A request may have been accepted before
    # the failure, so the message says to retry with the same Idempotency-Key.
    (
        apigw.ResponseType.DEFAULT_5_XX,
        None,
        "unavailable",
        "the API failed to answer; retry with the same Idempotency-Key to avoid a duplicate",
        {},
    ),
]


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: Shared,
        storage: Storage,
        queues: Queues,
        tenants: Tenants,
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = shared.cfg
        self.fn = PlatformFunction(
            self,
            "Handler",
            shared=shared,
            name="api",
            description="taskplane HTTP API (API Gateway REST proxy)",
            memory_size=1024,
            timeout=cdk.Duration.seconds(29),
            reserved_concurrency=cfg.reserved_concurrency.api,
        )
        role = self.fn.role
        # Tasks (a batch is one BatchWriteItem; a redrive's interrupted copy is deleted).
        grant_items(storage.tasks, role, delete=True, batch_write=True)
        grant_items(storage.idempotency, role, delete=True)  # Powertools' records
        # Delayed tasks go into the wheel (never read back here); schedules are written with their
        # wheel entry in one transaction.
        grant_items(storage.wheel, role, read=False, batch_write=True)
        grant_items(storage.schedules, role, delete=True)
        # Tenants' in-flight counters (admission, 429 over quota) live in the control table, and the
        # targets' duration sketches and breakers GET /v1/stats shows (one BatchGetItem of sketches),
        # and the wheel's leases and ring (to wake a tick). It reads them all but writes only counts.
        grant_items(storage.control, role, write=False, batch_get=True)
        grant_items(storage.control, role, read=False, items=INFLIGHT)
        for queue in queues.lanes.values():
            # Work due now; and the lanes' depths (backpressure, GET /v1/stats), read-only and cached.
            queue.grant(role, "sqs:SendMessage", "sqs:GetQueueAttributes")

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{cfg.prefix}-api",
            retention=RETENTION[cfg.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        throttle = cfg.api_throttle
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{cfg.prefix}-api",
            description="taskplane HTTP API; the tenant is the API key",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            # Execution logging needs the account's API Gateway CloudWatch role; kept on deletion
            # because it is one setting per account and region that other APIs may rely on.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG)),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request and response bodies are tenants' data: never in execution logs.
                data_trace_enabled=False,
                # Per-method metrics are billed per metric; the API-wide ones are enough here.
                metrics_enabled=False,
                tracing_enabled=True,
                throttling_rate_limit=throttle.rate_limit,
                throttling_burst_limit=throttle.burst_limit,
                method_options={
                    # A method's own settings replace the stage-wide ones whole: repeat the logging.
                    f"{path}/GET": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=throttle.public_rate_limit,
                        throttling_burst_limit=throttle.public_burst_limit,
                        logging_level=apigw.MethodLoggingLevel.ERROR,
                        data_trace_enabled=False,
                        metrics_enabled=False,
                    )
                    for path in sorted(PUBLIC_PATHS)
                },
            ),
        )
        for response_type, status, code, message, headers in GATEWAY_ERRORS:
            self.rest_api.add_gateway_response(
                f"Gateway{camel(response_type.response_type)}",
                type=response_type,
                status_code=status,  # None keeps the status API Gateway chose
                response_headers={"Content-Type": "'application/json'", **headers},
                templates=_error_template(code, message),
            )

        self._acknowledge()

        integration = apigw.LambdaIntegration(self.fn.alias, proxy=True)
        v1 = self.rest_api.root.add_resource("v1")
        for path in sorted(PUBLIC_PATHS):
            resource = self.rest_api.root.resource_for_path(path)
            resource.add_method("GET", integration, api_key_required=False)
        v1.add_resource("{proxy+}").add_method("ANY", integration, api_key_required=True)

        self.usage_plans: dict[str, apigw.UsagePlan] = {}
        for tenant, limits in sorted(cfg.tenants.items()):
            plan = apigw.UsagePlan(
                self,
                f"Plan{camel(tenant)}",
                name=f"{cfg.prefix}-{tenant}",
                description=f"limits of taskplane tenant {tenant}",
                throttle=apigw.ThrottleSettings(rate_limit=limits.rate_limit, burst_limit=limits.burst_limit),
                quota=apigw.QuotaSettings(limit=limits.quota_per_day, period=apigw.Period.DAY),
                api_stages=[
                    apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)
                ],
            )
            plan.add_api_key(tenants.keys[tenant])
            self.usage_plans[tenant] = plan
        self.url = self.rest_api.url
        # The stack outputs the same URL as ApiUrl; one name for it is enough.
        self.rest_api.node.try_remove_child("Endpoint")

    def _acknowledge(self) -> None:
        api = self.rest_api
        acknowledge(
            api,
            "AwsSolutions-APIG2",
            "the api function validates every request against the OpenAPI models and answers the contract's 400 shape",
        )
        acknowledge(
            api,
            "AwsSolutions-APIG3",
            "WAF costs from $5/month idle; tenants are throttled by their usage plans and the stage limit",
        )
        acknowledge(
            api,
            "AwsSolutions-APIG4",
            "tenants authenticate with API keys by contract (the key id is the tenant); keyless: only the "
            "handler's PUBLIC_PATHS (health, docs, the dashboard's static page)",
        )
        acknowledge(
            api,
            "AwsSolutions-COG4",
            "no Cognito: tenants are machines holding API keys, each with its own usage plan",
        )
        acknowledge(
            api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "the AWS policy API Gateway's account-level logging role is made for; it can only write logs",
        )
