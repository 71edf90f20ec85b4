"""Backpressure at the front door: refuse (429 + Retry-After) rather than queue without bound.

A submission is refused when its lane is deeper than ``max_lane_depth`` (a cached reading) or when
its tenant already has ``tenant_quota`` tasks in flight. Refusal happens before anything is stored,
so an accepted task is never dropped; a task whose acceptance fails after it was counted gives its
count back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from taskplane.adapters.admission import LaneDepthGauge
from taskplane.domain.errors import Throttled
from taskplane.services.ports import InflightCounts


@dataclass
class Admission:
    depths: LaneDepthGauge | None = None
    #: deepest a lane may be before submissions to it are refused (0: no limit)
    max_lane_depth: int = 0
    counters: InflightCounts | None = None
    #: most tasks a tenant may have accepted and not yet ended (0: no limit)
    tenant_quota: int = 0
    retry_after_s: int = 5

    @property
    def counts(self) -> bool:
        return self.counters is not None and self.tenant_quota > 0

    @property
    def limits_depth(self) -> bool:
        """Whether lanes have a depth limit at all (callers may skip finding out which lanes)."""
        return self.depths is not None and self.max_lane_depth > 0

    def check_lane(self, lane: str) -> None:
        """Raise Throttled when ``lane`` is over its depth threshold."""
        if not self.limits_depth:
            return
        assert self.depths is not None
        depth = self.depths.depth(lane)
        if depth >= self.max_lane_depth:
            raise Throttled(
                f"the {lane} lane holds {depth} tasks (limit {self.max_lane_depth}); retry later",
                retry_after_s=self.retry_after_s,
            )

    def acquire(self, tenant: str, n: int = 1) -> None:
        """Count ``n`` tasks against the tenant's quota, or raise Throttled."""
        if not self.counts or n <= 0:
            return
        assert self.counters is not None
        if not self.counters.acquire(tenant, n, self.tenant_quota):
            raise Throttled(
                f"over the in-flight quota of {self.tenant_quota} tasks; retry when some have finished",
                retry_after_s=self.retry_after_s,
            )

    def release(self, tenant: str, n: int = 1) -> None:
        """Give back ``n`` counted tasks (ended, or never accepted after all); best effort."""
        if not self.counts or n <= 0:
            return
        assert self.counters is not None
        # A lost decrement leaves the count high (the safe side); see README "Hardening".
        with contextlib.suppress(Exception):
            self.counters.release(tenant, n)
