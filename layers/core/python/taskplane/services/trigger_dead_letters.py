"""The triggers' dead-letter queue, for operators: see what EventBridge could not put on a lane, put it
back on its trigger's lane, and give every trigger rule made before the queue existed its target again.

EventBridge writes the DLQ itself (each trigger rule's target names it: adapters/triggers.py), so no
platform code runs when an event lands there and nothing writes a tenant's dead-letter record next to
it: the DLQ is the operators' view, with a depth alarm (infra/capabilities/monitoring.py). Each message
is the event as it matched (not the lane envelope), with the attributes EventBridge adds: ``RULE_ARN``
(which names the trigger and, for a correlating trigger, the pattern), ``ERROR_CODE``,
``ERROR_MESSAGE``, ``RETRY_ATTEMPTS``. A redrive rebuilds the envelope the rule would have put on the
lane and sends it there; the worker then starts the task (or takes the event into its window) exactly
as for an event delivered on time, under the same id (one task per trigger and event), so a redrive
after a partial one starts nothing twice. A message whose trigger is gone is deleted (its events would
start nothing); one that cannot be sent (still too large, the lane refusing) stays, visible again.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from taskplane.adapters.dead_events import DeadEvent, DeadEventQueue
from taskplane.adapters.queues import Lanes
from taskplane.domain.errors import TaskplaneError
from taskplane.domain.events import SQS_MAX_MESSAGE_BYTES, stamped_tenant
from taskplane.domain.triggers import Trigger, parse_rule_name, rule_of_arn
from taskplane.services.ports import TriggerRecords, TriggerRuleSet

#: Most messages one list or redrive call reads (the rest: call again).
MAX_PER_CALL = 100
#: Most parts a refresh's Scan is cut into (one invocation each).
MAX_SEGMENTS = 1000
#: How long a message read by a redrive stays hidden while it is handled (it is deleted or shown again).
REDRIVE_HIDE_S = 60


@dataclass
class TriggerDeadLetters:
    queue: DeadEventQueue
    triggers: TriggerRecords
    rules: TriggerRuleSet
    #: the lanes the trigger rules deliver to
    lanes: Lanes
    rule_prefix: str

    def _locate(self, message: DeadEvent) -> tuple[str | None, int | None, str]:
        """(trigger id, pattern index, bus) the message's RULE_ARN names (None: not a trigger rule)."""
        where = rule_of_arn(message.attributes.get("RULE_ARN", ""))
        named = parse_rule_name(where[1], self.rule_prefix) if where else None
        if where is None or named is None:
            return None, None, where[0] if where else ""
        return named[0], named[1], where[0]

    def list(self, limit: int = 50) -> builtins.list[dict[str, Any]]:
        """What waits in the DLQ (read, then shown again at once): per message its id, the trigger and
        tenant it belongs to, why EventBridge gave up, and the event's id, source, type and size."""
        limit = max(1, min(limit, MAX_PER_CALL))
        messages = self.queue.receive(limit, hide_s=30)
        try:
            find = _Finder(self.triggers)
            return [self._describe(m, find) for m in messages]
        finally:
            self.queue.show_again(messages)

    def _describe(self, message: DeadEvent, find: _Finder) -> dict[str, Any]:
        trigger_id, _, bus = self._locate(message)
        event = _event(message.body)
        trigger = find(trigger_id, event) if trigger_id else None
        return {
            "message_id": message.message_id,
            "rule_arn": message.attributes.get("RULE_ARN", ""),
            "bus": bus,
            "trigger_id": trigger_id,
            "tenant": trigger.tenant if trigger is not None else None,
            "error_code": message.attributes.get("ERROR_CODE", ""),
            "error_message": message.attributes.get("ERROR_MESSAGE", ""),
            "retry_attempts": message.attributes.get("RETRY_ATTEMPTS", ""),
            "sent_at_ms": message.sent_at_ms,
            "event_id": event.get("id") if event else None,
            "source": event.get("source") if event else None,
            "detail_type": event.get("detail-type") if event else None,
            "bytes": len(message.body.encode("utf-8", "surrogatepass")),
        }

    def redrive(self, limit: int = MAX_PER_CALL) -> builtins.list[dict[str, Any]]:
        """Put up to ``limit`` dead events back on their triggers' lanes; per message an ``outcome``:
        ``redriven`` (sent, deleted from the DLQ), ``dropped`` (its trigger is gone, or it names no
        trigger of this environment: deleted), or ``kept`` with an ``error`` (stays in the DLQ)."""
        limit = max(1, min(limit, MAX_PER_CALL))
        messages = self.queue.receive(limit, hide_s=REDRIVE_HIDE_S)
        find = _Finder(self.triggers)
        results: builtins.list[dict[str, Any]] = []
        keep: builtins.list[DeadEvent] = []
        for m in messages:
            result = self._redrive_one(m, find)
            results.append(result)
            if result["outcome"] == "kept":
                keep.append(m)
                continue
            try:
                self.queue.delete(m)
            except TaskplaneError as exc:
                # Sent, not deleted: a later redrive sends it again, and the worker starts its task once.
                result["warning"] = f"not deleted from the DLQ: {exc.message}"
        self.queue.show_again(keep)
        return results

    def _redrive_one(self, message: DeadEvent, find: _Finder) -> dict[str, Any]:
        trigger_id, index, bus = self._locate(message)
        result: dict[str, Any] = {"message_id": message.message_id, "trigger_id": trigger_id}
        if trigger_id is None:
            return {**result, "outcome": "dropped", "reason": "names no trigger rule of this environment"}
        event = _event(message.body)
        trigger = find(trigger_id, event)
        if trigger is None or bus != trigger.real_bus:
            return {**result, "outcome": "dropped", "reason": "its trigger was deleted"}
        result["tenant"] = trigger.tenant
        if event is None:
            return {**result, "outcome": "kept", "error": "the message body is not an event (a JSON object)"}
        body = trigger.envelope(
            index if trigger.rule_patterns is not None else None,
            json.dumps(event, separators=(",", ":"), ensure_ascii=False),
        )
        size = len(body.encode("utf-8", "surrogatepass"))
        if size > SQS_MAX_MESSAGE_BYTES:
            return {
                **result,
                "outcome": "kept",
                "error": f"the event is {size} bytes in its envelope; a lane message holds at most "
                f"{SQS_MAX_MESSAGE_BYTES}: it cannot reach its trigger through a lane",
            }
        lane = trigger.lane
        try:
            self.lanes.send_body(lane, body)
        except TaskplaneError as exc:
            return {**result, "outcome": "kept", "error": exc.message}
        return {**result, "outcome": "redriven", "lane": lane}

    def refresh_rules(self, segment: int = 0, segments: int = 1) -> dict[str, int]:
        """Put every trigger rule's current target on it again (the dead-letter queue and retry policy
        for rules made before them): ``{"triggers", "rules"}`` refreshed. Safe to run again. With
        ``segments`` > 1, only the triggers of part ``segment`` (a schedules table too large to scan
        within one invocation is done in parts, one invocation each)."""
        triggers = self.triggers.all(segment, segments)
        rules = sum(self.rules.refresh(t, t.lane) for t in triggers)
        return {"triggers": len(triggers), "rules": rules}


#: The key of an operator's direct invocation of the api function (never in an API Gateway event).
OPERATION_KEY = "taskplane_operation"
OPERATIONS = ("list-trigger-dead-letters", "redrive-trigger-dead-letters", "refresh-trigger-rules")


def operate(service: TriggerDeadLetters | None, request: dict[str, Any]) -> dict[str, Any]:
    """An operator's request (``aws lambda invoke`` of the api function, docs/DEPLOY.md):
    ``{"taskplane_operation": <one of OPERATIONS>, "limit"?: n}`` -> ``{"results": ...}`` or
    ``{"error": ...}``. Never reachable over HTTP: API Gateway builds the api function's events."""
    name = request.get(OPERATION_KEY)
    if name not in OPERATIONS:
        return {"error": f"unknown operation {name!r}; one of {', '.join(OPERATIONS)}"}
    if service is None:
        return {"error": "this deployment names no triggers' dead-letter queue (TASKPLANE_TRIGGER_DLQ_URL)"}
    limit = request.get("limit", 50 if name == OPERATIONS[0] else MAX_PER_CALL)
    if type(limit) is not int or not 1 <= limit <= MAX_PER_CALL:
        return {"error": f"limit is a whole number from 1 to {MAX_PER_CALL}"}
    if name == "list-trigger-dead-letters":
        return {"results": service.list(limit)}
    if name == "redrive-trigger-dead-letters":
        return {"results": service.redrive(limit)}
    segments, segment = request.get("segments", 1), request.get("segment", 0)
    if type(segments) is not int or not 1 <= segments <= MAX_SEGMENTS:
        return {"error": f"segments is a whole number from 1 to {MAX_SEGMENTS}"}
    if type(segment) is not int or not 0 <= segment < segments:
        return {"error": "segment is a whole number from 0 to segments - 1"}
    return {"results": service.refresh_rules(segment=segment, segments=segments)}


class _Finder:
    """A dead event's trigger. An event the platform stamped names its tenant (the rules on the
    platform bus match only their own tenant's events), so one read finds it; an unstamped one (an
    external bus's, or a body that is no event) is looked up among every trigger, read once a call
    (a Scan of the schedules table)."""

    def __init__(self, triggers: TriggerRecords) -> None:
        self._triggers = triggers
        self._all: dict[str, Trigger] | None = None

    def __call__(self, trigger_id: str, event: dict[str, Any] | None) -> Trigger | None:
        tenant = stamped_tenant(event) if event is not None else None
        if tenant is not None:
            return self._triggers.get(tenant, trigger_id)
        if self._all is None:
            self._all = {t.trigger_id: t for t in self._triggers.all()}
        return self._all.get(trigger_id)


def _event(body: str) -> dict[str, Any] | None:
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return event if isinstance(event, dict) else None
