"""Lambda refuses a function whose environment variables (every name and value) add up to more than
4 KB, and CloudFormation finds out halfway through a deploy, then rolls it back. Per-tenant settings
(target allow-lists, task routes, external events) live in the environment and grow with each tenant,
so the synth checks the size instead, from the template: every reference CloudFormation resolves at
deploy time is counted at the longest its value can be (a table's or queue's name from the template,
an API key's id, an ARN at AWS's length for its service)."""

from __future__ import annotations

from typing import Any

#: Lambda's limit on a function's environment: the names and values of all its variables.
LAMBDA_ENV_BYTES = 4096
#: Pseudo parameters at their longest.
PSEUDO = {"AWS::Partition": 10, "AWS::Region": 14, "AWS::AccountId": 12, "AWS::URLSuffix": 16}
#: A reference the rules below do not know (an ARN: arn:partition:service:region:account:resource).
UNKNOWN = 256
#: "arn:aws-us-gov:<service>:<region>:<account>:" before the resource part.
ARN_HEAD = len("arn::::") + 10 + 14 + 12 + 16


def _ref_length(logical_id: str, resources: dict[str, Any]) -> int:
    resource = resources.get(logical_id, {})
    kind, props = resource.get("Type", ""), resource.get("Properties", {})
    named = {
        "AWS::DynamoDB::Table": "TableName",
        "AWS::S3::Bucket": "BucketName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::Events::EventBus": "Name",
    }
    if kind == "AWS::ApiGateway::ApiKey":
        return 10  # API Gateway key ids are ten characters
    if kind == "AWS::S3::Bucket" and "BucketName" not in props:
        return 63  # a generated bucket name, at S3's longest
    if kind == "AWS::SQS::Queue" and isinstance(props.get("QueueName"), str):
        # https://sqs.<region>.amazonaws.com/<account>/<name>
        return len("https://sqs..amazonaws.com//") + 14 + 12 + len(props["QueueName"])
    if kind in named and isinstance(props.get(named[kind]), str):
        return len(props[named[kind]])
    return UNKNOWN


def _getatt_length(target: list[Any], resources: dict[str, Any]) -> int:
    logical_id, attribute = target[0], target[1]
    resource = resources.get(logical_id, {})
    props = resource.get("Properties", {})
    name = next(
        (v for k, v in props.items() if k.endswith("Name") and isinstance(v, str)),
        None,
    )
    if attribute == "Arn" and name is not None:
        return ARN_HEAD + 32 + len(name)  # "<service>:" and "<resource type>/" at most 32
    if attribute == "QueueUrl":
        return _ref_length(logical_id, resources)
    return UNKNOWN


def value_length(value: Any, resources: dict[str, Any]) -> int:
    """The longest ``value`` (a template value: a string or an intrinsic function) can be once deployed."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return PSEUDO.get(arg) or _ref_length(arg, resources)
        if fn == "Fn::GetAtt":
            return _getatt_length(arg if isinstance(arg, list) else arg.split("."), resources)
        if fn == "Fn::Join":
            sep, parts = arg
            return sum(value_length(p, resources) for p in parts) + len(sep) * max(len(parts) - 1, 0)
    return UNKNOWN


def environment_sizes(template: dict[str, Any]) -> dict[str, int]:
    """Each function's environment at its longest, in bytes, by logical id."""
    resources = template.get("Resources", {})
    sizes = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        variables = resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
        sizes[logical_id] = sum(len(k) + value_length(v, resources) for k, v in variables.items())
    return sizes


def oversized(template: dict[str, Any]) -> list[str]:
    """A message per function whose environment could pass Lambda's 4 KB, naming what to change."""
    resources = template.get("Resources", {})
    problems = []
    for logical_id, size in environment_sizes(template).items():
        if size <= LAMBDA_ENV_BYTES:
            continue
        variables = resources[logical_id]["Properties"]["Environment"]["Variables"]
        largest = sorted(variables, key=lambda k: value_length(variables[k], resources), reverse=True)[:3]
        name = resources[logical_id]["Properties"].get("FunctionName", logical_id)
        problems.append(
            f"function {name}: its environment could take {size:,} bytes, over Lambda's {LAMBDA_ENV_BYTES:,} "
            f"(largest: {', '.join(largest)}). The per-tenant settings grow it: list shared patterns once in "
            "`shared_targets`, use `*` patterns instead of one entry per function or queue, or split the "
            "tenants over two environments"
        )
    return problems
