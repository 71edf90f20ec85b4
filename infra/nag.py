"""cdk-nag acknowledgements: every one names the exact finding and says why in one line."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge ``finding`` (e.g. ``AwsSolutions-IAM5[Resource::*]``) on ``scope`` and its children."""
    if not reason.strip():
        raise ValueError(f"acknowledging {finding} needs a reason")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{PACK}::{finding}", reason=reason))


def iam5_resource(arn_pattern: str) -> str:
    """The IAM5 finding id cdk-nag reports for a wildcard resource (pseudo parameters as <AWS::...>)."""
    return f"AwsSolutions-IAM5[Resource::{arn_pattern}]"
