"""The platform's own event bus: ``PutEvents`` of events tenants publish (already stamped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.errors import translate
from taskplane.domain.errors import TaskplaneError, Unavailable


@dataclass(frozen=True)
class OutgoingEvent:
    source: str
    detail_type: str
    #: the ``detail`` as JSON, the publishing tenant already stamped into it
    detail_json: str


class EventBus:
    """One bus; :meth:`put` answers, per event in order, its event id or the error EventBridge gave."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self._client = client

    def put(self, events: list[OutgoingEvent]) -> list[str | TaskplaneError]:
        entries = [
            {
                "EventBusName": self.name,
                "Source": e.source,
                "DetailType": e.detail_type,
                "Detail": e.detail_json,
            }
            for e in events
        ]
        try:
            response = self._client.put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "publishing the events") from exc
        out: list[str | TaskplaneError] = []
        for entry in response.get("Entries") or []:
            if "EventId" in entry and not entry.get("ErrorCode"):
                out.append(entry["EventId"])
            else:
                code = entry.get("ErrorCode") or "PutEventsFailed"
                out.append(
                    Unavailable(
                        f"EventBridge did not accept the event: {code}: {entry.get('ErrorMessage', '')}"
                    )
                )
        if len(out) != len(events):  # never trust a short answer to mean success
            out += [Unavailable("EventBridge gave no answer for the event")] * (len(events) - len(out))
        return out
