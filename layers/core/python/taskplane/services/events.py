"""Publish events for a tenant on the platform's bus, each stamped with the tenant (domain/events.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.events import EventBus, OutgoingEvent
from taskplane.domain.errors import PayloadTooLarge
from taskplane.domain.events import MAX_DETAIL_BYTES, MAX_PUT_BYTES, EventsPublish, entry_size
from taskplane.services.admission import Admission
from taskplane.services.ports import Idempotency


@dataclass
class EventService:
    bus: EventBus
    #: the same backpressure as a submission: each event becomes a message on the lane of every
    #: trigger it matches, so events for a tenant whose triggers feed a full lane are a 429
    admission: Admission = field(default_factory=Admission)
    #: the lanes a tenant's triggers on the platform bus feed (services/triggers.TriggerService.lanes)
    trigger_lanes: Callable[[str], set[str]] = lambda tenant: set()
    #: a retried request with its Idempotency-Key answers the first one's results (no second put)
    idempotency: Idempotency | None = None

    def publish(
        self, tenant: str, body: EventsPublish, idempotency_key: str | None = None
    ) -> list[dict[str, Any]]:
        """Put the events; per event in order ``{"index", "event_id"}`` or ``{"index", "error"}``.
        Throttled (429) when a lane the tenant's triggers feed is over its depth limit. With an
        ``idempotency_key``, the same key and body answer the first request's results (409 with
        another body), so a client retrying a timed-out publish starts its triggers' tasks once."""
        if idempotency_key is None or self.idempotency is None:
            return self._publish(tenant, body)
        result, _ = self.idempotency.once(
            tenant,
            f"events:{idempotency_key}",
            body.model_dump(mode="json"),
            lambda: {"results": self._publish(tenant, body)},
        )
        return list(result["results"])

    def _publish(self, tenant: str, body: EventsPublish) -> list[dict[str, Any]]:
        outgoing = [OutgoingEvent(e.source, e.detail_type, e.detail_json(tenant)) for e in body.events]
        total = 0
        for i, event in enumerate(outgoing):
            size = len(event.detail_json.encode("utf-8", "surrogatepass"))
            if size > MAX_DETAIL_BYTES:
                raise PayloadTooLarge(
                    f"events.{i}.detail is {size} bytes; the limit is {MAX_DETAIL_BYTES} bytes",
                    [{"field": f"events.{i}.detail", "size": size, "limit": MAX_DETAIL_BYTES}],
                )
            total += entry_size(event.source, event.detail_type, event.detail_json)
        if total > MAX_PUT_BYTES:
            raise PayloadTooLarge(
                f"the events are {total} bytes together; EventBridge takes at most {MAX_PUT_BYTES} in one "
                "request: send fewer at a time",
                [{"field": "events", "size": total, "limit": MAX_PUT_BYTES}],
            )
        if self.admission.limits_depth:  # (finding the lanes costs a read of the tenant's triggers)
            for lane in sorted(self.trigger_lanes(tenant)):
                self.admission.check_lane(lane)
        results: list[dict[str, Any]] = []
        for i, answer in enumerate(self.bus.put(outgoing)):
            if isinstance(answer, str):
                results.append({"index": i, "event_id": answer})
            else:
                results.append({"index": i, "error": {"code": answer.code, "message": answer.message}})
        return results
