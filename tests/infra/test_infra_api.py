"""API Gateway: keys and a usage plan per tenant, keyless public paths only, logs, contract-shaped errors."""

from __future__ import annotations

import json

import pytest
from infra_synth import Synth, shared_root, synthesized

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


def paths(synth: Synth) -> dict[str, str]:
    """Logical id of each API resource -> its full path."""
    resources = synth.resources("AWS::ApiGateway::Resource")
    root = {"Fn::GetAtt": [synth.logical_id("rest_api"), "RootResourceId"]}

    def path_of(logical_id: str) -> str:
        props = resources[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = "" if parent == root else path_of(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    return {k: path_of(k) for k in resources}


def test_every_tenant_has_its_key_and_usage_plan_with_its_limits(synth: Synth) -> None:
    # Given the tenants of the environment
    tenants = synth.cfg.tenants
    keys = {k: r["Properties"] for k, r in synth.resources("AWS::ApiGateway::ApiKey").items()}
    plans = {k: r["Properties"] for k, r in synth.resources("AWS::ApiGateway::UsagePlan").items()}
    links = [r["Properties"] for r in synth.resources("AWS::ApiGateway::UsagePlanKey").values()]
    stage = synth.logical_id("stage")

    # Then there is one enabled key and one plan per tenant, linked to each other only
    assert sorted(p["Name"] for p in keys.values()) == sorted(f"tp-test-{t}" for t in tenants)
    assert len(plans) == len(tenants) == len(links)
    for link in links:
        key, plan = keys[link["KeyId"]["Ref"]], plans[link["UsagePlanId"]["Ref"]]
        tenant = key["Name"].removeprefix("tp-test-")
        assert key["Enabled"] is True
        assert plan["UsagePlanName"] == key["Name"]
        limits = tenants[tenant]
        assert plan["Throttle"] == {"RateLimit": limits.rate_limit, "BurstLimit": limits.burst_limit}
        assert plan["Quota"] == {"Limit": limits.quota_per_day, "Period": "DAY"}
        assert [s["Stage"] for s in plan["ApiStages"]] == [{"Ref": stage}]
    # and the key ids (the tenant ids) are stack outputs
    outputs = synth.template["Outputs"]
    assert {outputs[f"TenantKey{n}"]["Value"]["Ref"] for n in ("Acme", "GlobexEu")} == set(keys)


def test_only_the_handlers_public_paths_go_without_a_key(synth: Synth) -> None:
    # Given the paths the api function serves without a key
    from functions.api.handler import PUBLIC_PATHS

    by_id = paths(synth)
    methods = {
        # The root resource (the dashboard's page) is the API's RootResourceId, not a Ref.
        (
            by_id[m["Properties"]["ResourceId"]["Ref"]] if "Ref" in m["Properties"]["ResourceId"] else "/",
            m["Properties"]["HttpMethod"],
        ): m["Properties"]
        for m in synth.resources("AWS::ApiGateway::Method").values()
    }

    # Then those are GET without a key, and everything else under /v1 needs one
    assert set(methods) == {(p, "GET") for p in PUBLIC_PATHS} | {("/v1/{proxy+}", "ANY")}
    for (path, _verb), props in methods.items():
        assert props["ApiKeyRequired"] is (path not in PUBLIC_PATHS), path
        assert props["Integration"]["Type"] == "AWS_PROXY"
        # through the canary-deployed alias, not $LATEST
        assert synth.logical_id("api.alias") in json.dumps(props["Integration"]["Uri"])
    assert (
        synth.template["Resources"][synth.logical_id("rest_api")]["Properties"]["ApiKeySourceType"]
        == "HEADER"
    )


def test_stage_logs_access_without_bodies_traces_and_throttles(synth: Synth) -> None:
    (stage,) = (s["Properties"] for s in synth.resources("AWS::ApiGateway::Stage").values())
    access = json.loads(stage["AccessLogSetting"]["Format"])
    assert access["tenant"] == "$context.identity.apiKeyId"
    assert "$context.identity.apiKey" not in access.values()  # the secret itself is never logged
    assert {"status", "latencyMs", "requestId", "errorType"} <= set(access)
    assert stage["TracingEnabled"] is True
    settings = {m["ResourcePath"]: m for m in stage["MethodSettings"]}
    everything = settings["/*"]
    assert everything["LoggingLevel"] == "ERROR"
    assert everything["DataTraceEnabled"] is False
    assert (everything["ThrottlingRateLimit"], everything["ThrottlingBurstLimit"]) == (300, 600)
    # keyless paths have their own, lower limits (anyone can call them)
    public = [m for path, m in settings.items() if path != "/*"]
    assert public and all(
        m["ThrottlingRateLimit"] == synth.cfg.api_throttle.public_rate_limit for m in public
    )
    # and, since a method's own settings replace the stage-wide ones, they log errors too
    assert all((m["LoggingLevel"], m["DataTraceEnabled"]) == ("ERROR", False) for m in public)
    log_groups = synth.resources("AWS::Logs::LogGroup")
    (access_group,) = [
        g for k, g in log_groups.items() if k in json.dumps(stage["AccessLogSetting"]["DestinationArn"])
    ]
    assert access_group["Properties"]["RetentionInDays"] == synth.cfg.log_retention_days


def test_gateway_errors_answer_in_the_contract_shape(synth: Synth) -> None:
    responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()}  # fmt: skip
    expected = {
        "INVALID_API_KEY": ("401", "unauthorized"),
        "MISSING_AUTHENTICATION_TOKEN": ("404", "not_found"),
        "THROTTLED": ("429", "throttled"),
        "QUOTA_EXCEEDED": ("429", "throttled"),
        "REQUEST_TOO_LARGE": ("413", "payload_too_large"),
        "DEFAULT_5XX": (None, "unavailable"),
    }
    assert set(responses) == set(expected)
    for kind, (status, code) in expected.items():
        props = responses[kind]
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert props.get("StatusCode") == status, kind
        assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["details"] == []
        assert props["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/json'"
    for kind in ("THROTTLED", "QUOTA_EXCEEDED"):
        assert "gatewayresponse.header.Retry-After" in responses[kind]["ResponseParameters"]


def test_the_401_matches_the_handlers_own(synth: Synth) -> None:
    # Given a keyless request that the api function itself answers (the local gateway's path)
    from functions.api.handler import _early_answer

    own = json.loads(_early_answer({"path": "/v1/tasks", "requestContext": {"identity": {}}})["body"])

    # Then API Gateway's answer for a missing key is the same document
    (gateway,) = [
        r["Properties"]
        for r in synth.resources("AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["ResponseType"] == "INVALID_API_KEY"
    ]
    assert json.loads(gateway["ResponseTemplates"]["application/json"]) == own


def test_outputs_name_the_url_the_dlq_the_topic_and_the_dashboard(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    assert {"ApiUrl", "DeadLetterQueueUrl", "AlarmTopicArn", "DashboardUrl"} <= set(outputs)
    url = json.dumps(outputs["ApiUrl"]["Value"])
    assert "execute-api" in url and synth.logical_id("stage") in url
    assert not [k for k in outputs if k.startswith("ApiRestApiEndpoint")]  # one name for the URL
