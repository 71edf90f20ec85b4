"""Publish events for a tenant on the platform's bus, each stamped with the tenant (domain/events.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskplane.adapters.events import EventBus, OutgoingEvent
from taskplane.domain.errors import PayloadTooLarge
from taskplane.domain.events import MAX_DETAIL_BYTES, MAX_PUT_BYTES, EventsPublish, entry_size


@dataclass
class EventService:
    bus: EventBus

    def publish(self, tenant: str, body: EventsPublish) -> list[dict[str, Any]]:
        """Put the events; per event in order ``{"index", "event_id"}`` or ``{"index", "error"}``."""
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
        results: list[dict[str, Any]] = []
        for i, answer in enumerate(self.bus.put(outgoing)):
            if isinstance(answer, str):
                results.append({"index": i, "event_id": answer})
            else:
                results.append({"index": i, "error": {"code": answer.code, "message": answer.message}})
        return results
