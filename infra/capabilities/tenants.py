"""Tenants: one API Gateway key each. The key's id is the tenant id the code sees.

Made before the functions, because the functions' settings name tenants by key id (per-tenant
target allow-lists); the api construct attaches each key to its usage plan. Never rename a tenant
or move this construct: the construct path makes the key, and a new key is a new, empty tenant.
"""

from __future__ import annotations

import re
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from constructs import Construct

from infra.config import EnvironmentConfig


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^a-zA-Z0-9]", name) if part)


class Tenants(Construct):
    """``self.keys[tenant]``, and an output with each key's id."""

    def __init__(self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.keys: dict[str, apigw.ApiKey] = {}
        for tenant in sorted(cfg.tenants):
            ident = camel(tenant)
            self.keys[tenant] = key = apigw.ApiKey(
                self,
                f"Key{ident}",
                api_key_name=f"{cfg.prefix}-{tenant}",
                description=f"taskplane tenant {tenant}",
                enabled=True,
            )
            cdk.CfnOutput(
                self,
                f"TenantKey{ident}",
                key=f"TenantKey{ident}",
                value=key.key_id,
                description=(
                    f"API key id of tenant {tenant} (its tenant id); the key: "
                    "aws apigateway get-api-key --include-value --api-key <id>"
                ),
            )

    def target_allowlists(self, cfg: EnvironmentConfig) -> dict[str, list[str]]:
        """``PlatformSettings.target_allowlists``: key id -> patterns, ``"*"`` for every tenant."""
        lists = {
            self.keys[t].key_id: list(c.allowed_targets) for t, c in cfg.tenants.items() if c.allowed_targets
        }
        if cfg.shared_targets:
            lists["*"] = list(cfg.shared_targets)
        return lists

    def task_routes(self, cfg: EnvironmentConfig) -> dict[str, list[dict[str, Any]]]:
        """``PlatformSettings.task_routes``: key id -> the tenant's gray-release rules."""
        return {
            self.keys[t].key_id: [dict(r) for r in c.task_routes]
            for t, c in cfg.tenants.items()
            if c.task_routes
        }
