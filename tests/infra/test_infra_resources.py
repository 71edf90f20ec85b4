"""Tables, queues, functions and their wiring, as the code and the contract need them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from infra_synth import Synth, shared_root, synthesized

from taskplane.local.resources import MAX_RECEIVE_COUNT, create_resources
from taskplane.settings import LANES, PlatformSettings

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


#: Memory (MB) and timeout (s) chosen per function (reasons in each construct's docstring).
#: (MemorySize, Timeout) of each function in the test environment (worker and tick memory from its
#: worker_memory_mb and tick_memory_mb; the defaults are 256 and 256)
SIZING = {"api": (1024, 29), "worker": (384, 900), "tick": (192, 360), "step": (512, 900)}


def functions_by_name(synth: Synth) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{"api": (logical id, properties), ...}`` by the function name's last part."""
    prefix = synth.cfg.prefix + "-"
    return {
        r["Properties"]["FunctionName"].removeprefix(prefix): (k, r["Properties"])
        for k, r in synth.resources("AWS::Lambda::Function").items()
    }


def stubbed_table(synth: Synth, name: str) -> bool:
    """Whether table ``name`` belongs to a capability whose function is a stand-in in this synth."""
    from infra.capabilities.storage import TABLES

    return any(spec.name == name and spec.feature in synth.stubbed for spec in TABLES)


def test_tables_match_what_the_code_creates_locally(synth: Synth, aws_env: None) -> None:
    # Given the tables the local runtime creates for the code (moto)
    import boto3
    from moto import mock_aws

    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        create_resources(session, prefix="local")
        ddb = session.client("dynamodb")
        local = {}
        for name in ddb.list_tables()["TableNames"]:
            table = ddb.describe_table(TableName=name)["Table"]
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            local[name.removeprefix("local-")] = (
                sorted((k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]),
                ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
            )

    # When the template's tables are read the same way
    deployed = {}
    for table in synth.resources("AWS::DynamoDB::Table").values():
        props = table["Properties"]
        ttl = props.get("TimeToLiveSpecification", {})
        deployed[props["TableName"].removeprefix(synth.cfg.prefix + "-")] = (
            sorted((k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]),
            ttl.get("AttributeName") if ttl.get("Enabled") else None,
        )

    # (a capability synthesized from a stand-in function may have tables the code does not make yet)
    for name in set(deployed) - set(local):
        assert stubbed_table(synth, name), f"{name}: deployed but never created by the code"
        del deployed[name]

    # Then the same tables have the same keys and TTL attributes; the idempotency table's TTL is
    # the attribute Powertools writes (locally moto never expires items, so none is set there)
    import inspect

    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    powertools_ttl = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters["expiry_attr"].default
    local["idempotency"] = (local["idempotency"][0], local["idempotency"][1] or powertools_ttl)
    assert powertools_ttl == "expiration"
    assert deployed == local


def test_tables_are_on_demand_recoverable_and_kept(synth: Synth) -> None:
    tables = synth.resources("AWS::DynamoDB::Table")
    assert tables
    for logical_id, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, logical_id
        assert props["SSESpecification"] == {"SSEEnabled": True}, logical_id  # KMS, AWS managed key
        # retain_data: deletion protected, and kept when the stack is deleted
        assert props["DeletionProtectionEnabled"] is True, logical_id
        assert table["DeletionPolicy"] == "Retain", logical_id


def test_every_setting_the_code_reads_is_set_on_every_function(synth: Synth) -> None:
    # Given what PlatformSettings reads from the environment
    assert synth.unset_settings == []
    expected = set(PlatformSettings(queue_urls=dict.fromkeys(LANES, "x")).to_env())

    # Then every function has every variable, pointing at this stack's resources
    tables = {
        t["Properties"]["TableName"].removeprefix(synth.cfg.prefix + "-"): k
        for k, t in synth.resources("AWS::DynamoDB::Table").items()
    }
    for name, (_logical_id, props) in functions_by_name(synth).items():
        env = props["Environment"]["Variables"]
        assert expected <= set(env), (name, expected - set(env))
        for table, table_id in tables.items():
            var = f"TASKPLANE_{table.upper()}_TABLE"
            if var not in expected and stubbed_table(synth, table):
                continue
            assert var in expected, f"no setting names the {table} table"
            assert env[var] == {"Ref": table_id}, (name, var)
        assert env["TASKPLANE_WHEEL_SHARDS"] == str(synth.cfg.shards)
        assert env["TASKPLANE_TASK_BUCKETS"] == str(synth.cfg.task_buckets)
        assert env["POWERTOOLS_SERVICE_NAME"] == "taskplane"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "taskplane"
        assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"  # tenants' payloads stay out of logs


def render(value: Any) -> str:
    """A CloudFormation string value as text: references become ``"<logical id>"``."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return f"<{value['Fn::GetAtt'][0]}.{value['Fn::GetAtt'][1]}>"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(p) for p in parts)
    return f"<{next(iter(value))}>"


def test_the_code_reads_back_the_environments_choices(synth: Synth) -> None:
    # Given the api function's environment (references to resources stand in as "<logical id>")
    (_, props) = functions_by_name(synth)["api"]
    env = {k: render(v) for k, v in props["Environment"]["Variables"].items()}

    # When the code reads its settings from it
    settings = PlatformSettings.from_env(env)

    # Then it sees the environment's choices
    cfg = synth.cfg
    assert settings.wheel_shards == cfg.shards
    assert settings.task_buckets == cfg.task_buckets
    assert settings.retention_days == cfg.retention_days
    assert set(settings.queue_urls) == set(LANES)
    chosen = {
        "max_lane_depth": cfg.max_lane_depth,
        "tenant_inflight_quota": cfg.tenant_inflight_quota,
        "otlp_endpoint": cfg.otlp_endpoint,
        "otlp_sample_ratio": cfg.otlp_sample_ratio,
    }
    for field, value in chosen.items():
        if field in PlatformSettings.model_fields:
            assert getattr(settings, field) == value, field
    if "allow_private_http" in PlatformSettings.model_fields:
        assert settings.allow_private_http is False  # no SSRF into the VPC or the metadata endpoint
    if "target_allowlists" in PlatformSettings.model_fields:
        # tenants are named by their key's id, which only exists once deployed
        assert settings.target_allowlists == {
            f"<{synth.logical_id('key.acme')}>": ["lambda:tp-test-target-acme-*", "http:api.acme.example"],
            "*": ["eventbridge:tp-test-target-events"],
        }
        assert settings.targets_allowed_by_default is False  # a tenant without a list: builtins only
    if "task_routes" in PlatformSettings.model_fields:
        assert settings.task_routes == {
            f"<{synth.logical_id('key.acme')}>": [
                {"name": "canary", "labels": {"env": "canary"}, "percent": 10, "lambda_alias": "next"}
            ]
        }


def test_functions_are_arm64_python312_traced_logged_and_sized(synth: Synth) -> None:
    functions = functions_by_name(synth)
    assert set(functions) == set(SIZING)
    layers = synth.resources("AWS::Lambda::LayerVersion")
    for name, (_logical_id, props) in functions.items():
        assert props["Architectures"] == ["arm64"], name
        assert props["Runtime"] == "python3.12", name
        assert props["Handler"] == "handler.lambda_handler", name
        # (the tick traces what its caller traced: its once-a-minute checks would be a trace each)
        assert props["TracingConfig"] == {"Mode": "PassThrough" if name == "tick" else "Active"}, name
        assert (props["MemorySize"], props["Timeout"]) == SIZING[name], name
        assert sorted(layer["Ref"] for layer in props["Layers"]) == sorted(layers), name
        log_group = synth.template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert log_group["LogGroupName"] == f"/aws/lambda/{synth.cfg.prefix}-{name}"
        assert log_group["RetentionInDays"] == synth.cfg.log_retention_days
    for layer in layers.values():
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]


def test_lanes_redrive_to_the_dlq_and_hide_a_batch_for_six_worker_timeouts(synth: Synth) -> None:
    # Given the worker's timeout
    (_, worker) = functions_by_name(synth)["worker"]
    queues = {q["Properties"]["QueueName"].removeprefix(synth.cfg.prefix + "-"): (k, q["Properties"])
              for k, q in synth.resources("AWS::SQS::Queue").items()}  # fmt: skip
    dlq_id, dlq = queues.pop("dlq")
    queues.pop("trigger-dlq")  # EventBridge's, for trigger events (tests/infra/test_infra_events.py)

    # Then each lane sends a message to the DLQ after MAX_RECEIVE_COUNT receives
    assert set(queues) == set(LANES)
    for lane, (_, props) in queues.items():
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
            "maxReceiveCount": MAX_RECEIVE_COUNT,
        }, lane
        assert props["VisibilityTimeout"] >= 6 * worker["Timeout"], lane
    # and dead letters are kept as long as SQS allows
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert "RedrivePolicy" not in dlq


def test_each_lane_feeds_the_worker_alias_with_partial_failures_and_its_own_concurrency(synth: Synth) -> None:
    worker_alias = synth.logical_id("worker.alias")
    lane_of = {
        k: q["Properties"]["QueueName"].removeprefix(synth.cfg.prefix + "-")
        for k, q in synth.resources("AWS::SQS::Queue").items()
    }
    mappings = synth.resources("AWS::Lambda::EventSourceMapping").values()
    seen = {}
    for mapping in mappings:
        props = mapping["Properties"]
        lane = lane_of[props["EventSourceArn"]["Fn::GetAtt"][0]]
        seen[lane] = props["ScalingConfig"]["MaximumConcurrency"]
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], lane
        assert props["BatchSize"] == synth.cfg.worker_batch_size
        assert worker_alias in json.dumps(props["FunctionName"]), lane  # the canary-deployed alias
        assert "MaximumBatchingWindowInSeconds" not in props  # due work starts at once
    assert seen == synth.cfg.lane_concurrency


def test_worker_may_hold_its_lane_messages(synth: Synth) -> None:
    # The dead-worker watch is the lane message held invisible (ChangeMessageVisibilityBatch is
    # authorized by sqs:ChangeMessageVisibility): the worker's role must allow it on every lane.
    lanes = {
        k
        for k, q in synth.resources("AWS::SQS::Queue").items()
        if not q["Properties"]["QueueName"].endswith("dlq")
    }
    held = set()
    for st in synth.statements_of("worker.role"):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if st["Effect"] == "Allow" and "sqs:ChangeMessageVisibility" in actions:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            held |= {r["Fn::GetAtt"][0] for r in resources if isinstance(r, dict) and "Fn::GetAtt" in r}
    assert lanes and lanes <= held


def test_reserved_concurrency_is_set_and_covers_the_lanes(synth: Synth) -> None:
    functions = functions_by_name(synth)
    reserved = {name: props.get("ReservedConcurrentExecutions") for name, (_, props) in functions.items()}
    assert reserved == {"api": None, "worker": 20, "tick": 6, "step": 10}
    assert reserved["worker"] >= sum(synth.cfg.lane_concurrency.values())
    assert reserved["tick"] >= 2 * synth.cfg.shards


def test_one_tick_rule_per_shard_every_minute_to_the_tick_alias(synth: Synth) -> None:
    tick_alias = synth.logical_id("tick.alias")
    rules = sorted(
        (r["Properties"] for r in synth.resources("AWS::Events::Rule").values()), key=lambda p: p["Name"]
    )
    assert [r["Name"] for r in rules] == [f"tp-test-tick-{i}" for i in range(synth.cfg.shards)]
    for shard, rule in enumerate(rules):
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Ref": tick_alias}
        assert json.loads(target["Input"]) == {"shard": shard}
        assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 120
    # and a failed tick is not retried by Lambda (the next minute's resumes where it stopped)
    (invoke_config,) = synth.resources("AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0
    assert tick_alias in json.dumps(invoke_config["Properties"]["Qualifier"])  # the alias's name
    # and EventBridge may invoke that alias
    permissions = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": tick_alias}
    ]
    assert len(permissions) == synth.cfg.shards
    assert {p["Principal"] for p in permissions} == {"events.amazonaws.com"}


def test_the_tick_reads_the_shard_the_rule_sends(synth: Synth) -> None:
    # The rule's input and the handler's parser agree (both sides of one contract).
    from functions.tick.handler import shards_of
    from infra.capabilities.scheduler import tick_input

    assert [shards_of(tick_input(i), 3) for i in range(3)] == [[0], [1], [2]]


def test_writers_of_wheel_entries_can_wake_the_tick_and_it_can_wake_itself(synth: Synth) -> None:
    # Given the tick's name and the ARN every function carries as TASKPLANE_TICK_FUNCTION
    from functions.tick.handler import TICK_SPAN_MS

    functions = functions_by_name(synth)
    _, tick = functions["tick"]
    arns = {
        json.dumps(props["Environment"]["Variables"]["TASKPLANE_TICK_FUNCTION"])
        for _, props in functions.values()
    }
    # Then every function names the same target: the tick function's live alias, built from its name
    # (so the tick's own environment can name it without a reference cycle)
    (arn,) = arns
    assert f":function:{tick['FunctionName']}:live" in render(json.loads(arn))
    assert "Ref" not in arn.replace('"Ref": "AWS::', "")  # pseudo parameters only, no resource
    # And the api, the worker and the tick may invoke exactly that alias, nothing else of Lambda
    for role in ("api.role", "worker.role", "tick.role"):
        invokes = [
            st
            for st in synth.statements_of(role)
            if st["Effect"] == "Allow" and "lambda:InvokeFunction" in json.dumps(st["Action"])
        ]
        assert invokes, role
        for st in invokes:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if role != "worker.role":  # the worker also invokes tenants' Lambda targets (the allow-list)
                assert [json.dumps(r) for r in resources] == [arn], (role, resources)
        assert any(
            json.dumps(r) == arn
            for st in invokes
            for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
        ), role
    # And a busy tick's span and hand-over fit its timeout
    assert tick["Timeout"] * 1000 >= TICK_SPAN_MS + 30_000


def test_retained_tables_keep_fixed_names_and_the_way_back_is_documented(synth: Synth) -> None:
    # Given retain_data: tables outlive the stack under their fixed names
    from pathlib import Path

    names = sorted(t["Properties"]["TableName"] for t in synth.resources("AWS::DynamoDB::Table").values())
    assert all(name.startswith(synth.cfg.prefix + "-") for name in names)
    # Then DEPLOY.md says how a new deploy adopts them (a plain deploy would fail: "already exists")
    deploy = (Path(__file__).resolve().parents[2] / "docs" / "DEPLOY.md").read_text()
    assert (
        "npx cdk import -c env=prod Taskplane-prod" in deploy and "restore-table-to-point-in-time" in deploy
    )
