"""Lambda's 4 KB environment, checked at synth (infra/envsize.py): per-tenant settings grow it."""

from __future__ import annotations

import copy
import json

import pytest
from infra_synth import Synth, shared_root, synthesized

from infra.envsize import LAMBDA_ENV_BYTES, environment_sizes, oversized, value_length

pytestmark = pytest.mark.infra


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesized(shared_root(tmp_path_factory))


def test_every_function_of_the_test_environment_fits_with_room_for_tenants(synth: Synth) -> None:
    sizes = environment_sizes(synth.template)
    # Then the four functions are measured, each at its longest, well under the limit
    assert len(sizes) == 4
    assert all(1_000 < size < LAMBDA_ENV_BYTES - 1_000 for size in sizes.values()), sizes
    assert oversized(synth.template) == []


def test_references_count_at_their_longest() -> None:
    resources = {
        "Key": {"Type": "AWS::ApiGateway::ApiKey", "Properties": {}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "tp-lane"}},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "tp-tasks"}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
    }
    assert value_length({"Ref": "Key"}, resources) == 10
    assert value_length({"Ref": "Table"}, resources) == len("tp-tasks")
    assert value_length({"Ref": "Queue"}, resources) == len(
        "https://sqs.ap-southeast-3.amazonaws.com/123456789012/tp-lane"
    )
    assert value_length({"Ref": "Bucket"}, resources) == 63
    assert value_length({"Ref": "AWS::Region"}, resources) == 14
    assert value_length({"Fn::Join": ["", ['{"', {"Ref": "Key"}, '": []}']]}, resources) == len(
        '{"'
    ) + 10 + len('": []}')
    # Anything it does not know counts at a length no reference reaches
    assert value_length({"Ref": "Nothing"}, resources) == 256


def test_forty_tenants_with_their_own_lists_stop_the_synth_naming_the_function_and_the_fix(
    synth: Synth,
) -> None:
    # Given the test template with forty tenants' allow-lists, each with three patterns
    template = copy.deepcopy(synth.template)
    resources = template["Resources"]
    keys = {f"Key{i}": {"Type": "AWS::ApiGateway::ApiKey", "Properties": {}} for i in range(40)}
    resources.update(keys)
    parts: list = ["{"]
    for i, key in enumerate(keys):
        patterns = [
            f"lambda:tp-test-target-team{i}-*",
            f"sqs:tp-test-target-team{i}-*",
            f"http:api.team{i}.example",
        ]
        parts += ['"', {"Ref": key}, '": ' + json.dumps(patterns) + ("," if i < 39 else "")]
    parts.append("}")
    for resource in resources.values():
        if resource["Type"] == "AWS::Lambda::Function":
            resource["Properties"]["Environment"]["Variables"]["TASKPLANE_TARGET_ALLOWLISTS"] = {
                "Fn::Join": ["", parts]
            }
    # When it is checked
    problems = oversized(template)
    # Then each function is named, with the figure, the largest variable and what to change
    assert len(problems) == 4
    assert any("tp-test-api" in p for p in problems)
    assert all("over Lambda's 4,096" in p and "TASKPLANE_TARGET_ALLOWLISTS" in p for p in problems)
    assert all("shared_targets" in p for p in problems)
