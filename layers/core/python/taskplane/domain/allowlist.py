"""Per-tenant target allow-lists: which Lambda functions, URL hosts, queues and buses a tenant's
tasks may call. Pure rules; the lists come from settings (``TASKPLANE_TARGET_ALLOWLISTS``).

A pattern is ``"<type>:<glob>"`` matched against the target's name for that type: ``lambda`` the
function name or ARN, ``http`` the URL's host, ``sqs`` the queue URL, ``eventbridge`` the bus;
``"*"`` allows everything. Builtin targets (echo, sleep, fail) never leave the worker and are
always allowed, and so is the platform's own event bus (``eventbridge`` with bus ``"taskplane"``):
what a tenant puts there is stamped with its name and reaches only its own triggers.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from taskplane.domain.events import PLATFORM_BUS


def target_name(target: dict[str, Any]) -> str | None:
    """``"<type>:<name>"`` for a target, or None for what every tenant may call (builtins, its own events)."""
    kind = target.get("type")
    if kind == "lambda":
        return f"lambda:{target.get('function', '')}"
    if kind == "http":
        return f"http:{(urlparse(str(target.get('url', ''))).hostname or '').lower()}"
    if kind == "sqs":
        return f"sqs:{target.get('queue_url', '')}"
    if kind == "eventbridge":
        bus = target.get("bus", PLATFORM_BUS)
        return None if bus == PLATFORM_BUS else f"eventbridge:{bus}"
    return None


def is_private_literal(target: dict[str, Any]) -> bool:
    """An HTTP target whose host is a literal non-public IP (metadata 169.254.169.254, 10/8, ::1...)."""
    if target.get("type") != "http":
        return False
    host = urlparse(str(target.get("url", ""))).hostname or ""
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class TargetPolicy:
    #: tenant -> patterns; the key ``"*"`` applies to every tenant
    allowlists: dict[str, list[str]] = field(default_factory=dict)
    #: when a tenant has no list at all: allow (dev) or deny (AWS)
    allow_by_default: bool = False
    #: HTTP targets may name private / loopback / link-local addresses
    allow_private_http: bool = False

    @classmethod
    def permissive(cls) -> TargetPolicy:
        """Every target allowed, private addresses included (tests and tools that build a service alone)."""
        return cls(allow_by_default=True, allow_private_http=True)

    def refusal(self, tenant: str, target: dict[str, Any]) -> str | None:
        """Why ``tenant`` may not call ``target``, or None when it may."""
        if not self.allow_private_http and is_private_literal(target):
            return "HTTP targets may not name private, loopback or link-local addresses"
        name = target_name(target)
        if name is None:
            return None
        patterns = [*self.allowlists.get(tenant, []), *self.allowlists.get("*", [])]
        if not patterns:
            return None if self.allow_by_default else f"{name} is not on this tenant's target allow-list"
        if any(p == "*" or fnmatch.fnmatchcase(name, p) for p in patterns):
            return None
        return f"{name} is not on this tenant's target allow-list"
