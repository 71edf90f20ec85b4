"""What `taskplane dev` enforces: friendly local defaults that never override what the user set.

Resource names (tables, queues, the bus) are the local runtime's own. Policy settings
(``taskplane.settings.POLICY_VARIABLES``: target allow-lists, private HTTP, quotas, routes, external
events, breakers) come, in this order of precedence, from

1. the environment (``TASKPLANE_TARGET_ALLOWLISTS=... taskplane dev``),
2. ``--strict``: AWS's defaults for the two switches that differ locally (private HTTP refused,
   targets only from allow-lists),
3. the local defaults: any target, private HTTP allowed (demos call localhost), a lane depth of
   2,000 (moto slows down with deep queues).

so the hardening can be tried locally exactly as it runs in AWS, and the banner says which rules are
in force and where each came from.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from taskplane.settings import (
    ENV_ALLOW_PRIVATE_HTTP,
    ENV_EXTERNAL_EVENTS,
    ENV_MAX_LANE_DEPTH,
    ENV_MAX_TRIGGER_RULES,
    ENV_MAX_WORKFLOWS,
    ENV_OTLP_ENDPOINT,
    ENV_TARGET_ALLOWLISTS,
    ENV_TARGETS_ALLOWED_BY_DEFAULT,
    ENV_TASK_ROUTES,
    ENV_TENANT_INFLIGHT_QUOTA,
    POLICY_VARIABLES,
    PlatformSettings,
)

#: What ``--strict`` sets: the AWS defaults where the local ones differ.
STRICT = {ENV_ALLOW_PRIVATE_HTTP: "false", ENV_TARGETS_ALLOWED_BY_DEFAULT: "false"}
LOCAL_DEFAULT = "local default"


class SettingError(ValueError):
    """A policy variable in the environment that cannot be read; the message names it."""


def _check(settings: PlatformSettings) -> None:
    """What wiring would only find when building: the rules inside the JSON settings."""
    from taskplane.domain.gray import RouteRule
    from taskplane.domain.triggers import ExternalEvents

    for rules in settings.task_routes.values():
        for rule in rules:
            RouteRule.model_validate(rule)
    for entries in settings.external_events.values():
        for entry in entries:
            ExternalEvents.model_validate(entry)


def local_settings(
    resources: PlatformSettings, env: Mapping[str, str], *, strict: bool = False
) -> tuple[PlatformSettings, dict[str, str]]:
    """The settings the local runtime runs with, and where each policy variable's value came from."""
    merged = resources.to_env()
    origin = dict.fromkeys(POLICY_VARIABLES, LOCAL_DEFAULT)
    if strict:
        merged.update(STRICT)
        origin.update(dict.fromkeys(STRICT, "--strict"))
    for var in POLICY_VARIABLES:
        if env.get(var, "") != "":
            merged[var] = env[var]
            origin[var] = f"${var}"
    try:
        settings = PlatformSettings.from_env(merged)
        _check(settings)
    except (ValueError, ValidationError) as exc:
        culprit = next(
            (
                v
                for v in POLICY_VARIABLES
                if origin[v].startswith("$") and not _readable(resources, v, env[v])
            ),
            None,
        )
        where = f"{culprit}={env[culprit]!r}" if culprit else "the policy settings"
        raise SettingError(f"cannot use {where}: {_first_line(exc)}") from exc
    return settings, origin


def _readable(resources: PlatformSettings, var: str, value: str) -> bool:
    try:
        _check(PlatformSettings.from_env({**resources.to_env(), var: value}))
    except (ValueError, ValidationError):
        return False
    return True


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc).splitlines()[0]


def describe(settings: PlatformSettings, origin: Mapping[str, str]) -> list[str]:
    """The banner's lines on the rules in force, each with where it came from."""
    lists = settings.target_allowlists
    others = "any target" if settings.targets_allowed_by_default else "builtins only"
    if lists:
        targets = f"allow-lists for {', '.join(sorted(lists))}; other tenants: {others}"
    else:
        targets = (
            "any target" if settings.targets_allowed_by_default else "builtins only (no allow-lists set)"
        )
    targets_from = origin[ENV_TARGET_ALLOWLISTS] if lists else origin[ENV_TARGETS_ALLOWED_BY_DEFAULT]
    quota = settings.tenant_inflight_quota
    routes = sum(len(r) for r in settings.task_routes.values())
    external = ", ".join(
        f"{tenant}: {e['bus']} ({', '.join(e['sources'])})"
        for tenant, entries in sorted(settings.external_events.items())
        for e in entries
    )
    rows = [
        ("targets", targets, targets_from),
        (
            "private HTTP",
            "allowed (localhost, 10/8, ...)" if settings.allow_private_http else "refused",
            origin[ENV_ALLOW_PRIVATE_HTTP],
        ),
        ("lane depth", f"429 above {settings.max_lane_depth:,} messages", origin[ENV_MAX_LANE_DEPTH]),
        ("in-flight quota", f"{quota:,} per tenant" if quota else "none", origin[ENV_TENANT_INFLIGHT_QUOTA]),
        (
            "trigger rules",
            f"{settings.max_trigger_rules:,} per tenant ({settings.max_wildcard_rules} with wildcards)",
            origin[ENV_MAX_TRIGGER_RULES],
        ),
        ("workflows", f"{settings.max_workflows:,} per tenant", origin[ENV_MAX_WORKFLOWS]),
        ("task routes", f"{routes} rule(s)" if routes else "none", origin[ENV_TASK_ROUTES]),
        ("external events", external or "none", origin[ENV_EXTERNAL_EVENTS]),
        (
            "OTLP export",
            f"metrics and {settings.otlp_sample_ratio:.0%} of traces to {settings.otlp_endpoint}"
            if settings.otlp_endpoint
            else "off (--otlp URL turns it on)",
            origin[ENV_OTLP_ENDPOINT],
        ),
    ]
    width = max(len(name) for name, _, _ in rows)
    return [f"    {name.ljust(width)}  {value}   [{source}]" for name, value, source in rows]
