"""EventBridge on SQLite: buses, rules (an event pattern, a lane as the target, an input template) and
``PutEvents``, which matches each event against the bus's rules the way EventBridge does
(``event_patterns.py``) and delivers the transformed event to the rule's lane.

Three faces, each the shape its AWS twin's caller expects:

- :class:`SqliteEventBridge`: the bus itself (rules in SQLite; delivery through ``deliver(lane, body)``).
- :class:`SqliteTriggerRules`: what ``services/triggers.py`` calls (``adapters/triggers.TriggerRules``).
- :class:`SqliteEventsClient`: the few ``events`` client calls ``adapters/events.EventBus`` and the
  ``eventbridge`` target runner make (``put_events``), answering as boto3 does, errors as
  ``ClientError`` with EventBridge's codes, so those adapters work unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from taskplane.adapters.sqlite.db import Database
from taskplane.adapters.sqlite.event_patterns import InvalidPattern, matches, validate
from taskplane.domain.errors import InvalidRequest
from taskplane.domain.events import SQS_MAX_MESSAGE_BYTES
from taskplane.domain.triggers import Trigger

#: EventBridge's input-transformer variable for the whole event.
WHOLE_EVENT = "<aws.events.event.json>"
#: The account and region local events say they come from.
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"


def _client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class SqliteEventBridge:
    """Buses and rules in the database; ``deliver(lane, body)`` puts a matched event on a lane."""

    def __init__(
        self,
        db: Database,
        deliver: Callable[[str, str], None],
        *,
        now: Callable[[], float] | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        dead_letter: Callable[[str, dict[str, str]], None] | None = None,
    ) -> None:
        self._db = db
        self._deliver = deliver
        #: where an event goes that a rule could not deliver (the triggers' DLQ, as the rules'
        #: DeadLetterConfig on AWS): (the event as JSON, attributes RULE_ARN, ERROR_CODE, ...)
        self._dead_letter = dead_letter
        self._now = now or (lambda: datetime.now(UTC).timestamp())
        self._new_id = new_id
        self.create_bus("default")  # as every account has

    def create_bus(self, name: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO event_buses (name) VALUES (?)", (name,))

    def has_bus(self, name: str) -> bool:
        return self._db.one("SELECT 1 FROM event_buses WHERE name = ?", (name,)) is not None

    def put_rule(self, bus: str, name: str, pattern: dict[str, Any], lane: str, template: str) -> None:
        """Create or replace a rule and its target (raises InvalidPattern, LookupError for no bus)."""
        validate(pattern)
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM event_buses WHERE name = ?", (bus,)).fetchone() is None:
                raise LookupError(bus)
            conn.execute(
                "INSERT OR REPLACE INTO event_rules (bus, name, pattern, lane, envelope) VALUES (?, ?, ?, ?, ?)",
                (bus, name, json.dumps(pattern), lane, template),
            )

    def delete_rule(self, bus: str, name: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM event_rules WHERE bus = ? AND name = ?", (bus, name))

    def put_event(self, bus: str, source: str, detail_type: str, detail: dict[str, Any]) -> str:
        """Accept one event: match it against the bus's rules and deliver it to each matching rule's
        lane, transformed by the rule's template; answers the event id (raises LookupError: no bus)."""
        if not self.has_bus(bus):
            raise LookupError(bus)
        event_id = self._new_id()
        event = {
            "version": "0",
            "id": event_id,
            "detail-type": detail_type,
            "source": source,
            "account": LOCAL_ACCOUNT,
            "time": datetime.fromtimestamp(self._now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": LOCAL_REGION,
            "resources": [],
            "detail": detail,
        }
        rules = self._db.query("SELECT name, pattern, lane, envelope FROM event_rules WHERE bus = ?", (bus,))
        whole = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        for rule in rules:
            if matches(json.loads(rule["pattern"]), event):
                self._deliver_one(bus, rule, whole)
        return event_id

    def _deliver_one(self, bus: str, rule: Any, whole: str) -> None:
        """Put the transformed event on the rule's lane; one the lane refuses goes to the dead-letter
        queue with why, as EventBridge does for a target with a DeadLetterConfig (raises only when
        there is none, or it refuses too: the put then fails and its caller retries)."""
        body = rule["envelope"].replace(WHOLE_EVENT, whole)
        try:
            size = len(body.encode("utf-8", "surrogatepass"))
            if size > SQS_MAX_MESSAGE_BYTES:
                raise _client_error(
                    "InvalidParameterValue",
                    f"One or more parameters are invalid. Reason: Message must be shorter than "
                    f"{SQS_MAX_MESSAGE_BYTES} bytes.",
                    "SendMessage",
                )
            self._deliver(rule["lane"], body)
        except Exception as exc:
            if self._dead_letter is None:
                raise
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            name = rule["name"]
            where = name if bus == "default" else f"{bus}/{name}"
            self._dead_letter(
                whole,
                {
                    "RULE_ARN": f"arn:aws:events:{LOCAL_REGION}:{LOCAL_ACCOUNT}:rule/{where}",
                    "TARGET_ARN": f"arn:aws:sqs:{LOCAL_REGION}:{LOCAL_ACCOUNT}:{rule['lane']}",
                    "ERROR_CODE": "SDK_CLIENT_ERROR",
                    "ERROR_MESSAGE": f"{code}: {exc}"[:1000],
                    "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
                    "RETRY_ATTEMPTS": "0",
                },
            )


class SqliteTriggerRules:
    """The twin of ``adapters/triggers.TriggerRules``: one rule per trigger, its target the lane."""

    def __init__(self, bridge: SqliteEventBridge) -> None:
        self._bridge = bridge

    def create(self, trigger: Trigger, lane: str) -> None:
        made: list[str] = []
        try:
            for index, (name, pattern) in enumerate(trigger.rules()):
                self._create_rule(trigger, lane, name, pattern, index if trigger.rule_patterns else None)
                made.append(name)
        except Exception:
            for name in made:
                self._bridge.delete_rule(trigger.real_bus, name)
            raise

    def _create_rule(
        self, trigger: Trigger, lane: str, name: str, pattern: dict[str, Any], index: int | None
    ) -> None:
        template = trigger.envelope(index, WHOLE_EVENT)  # as on AWS
        try:
            self._bridge.put_rule(trigger.real_bus, name, pattern, lane, template)
        except InvalidPattern as exc:
            raise InvalidRequest(
                f"EventBridge refused the event pattern: Event pattern is not valid. Reason: {exc}",
                [{"field": "event_pattern" if index is None else f"correlate.events[{index}]"}],
            ) from None
        except LookupError:
            raise InvalidRequest(f"event bus {trigger.bus!r} does not exist", [{"field": "bus"}]) from None

    def refresh(self, trigger: Trigger, lane: str) -> int:
        """Nothing to put again: every local rule's failed delivery goes to the bridge's dead letters."""
        return len(trigger.rules())

    def delete(self, trigger: Trigger) -> None:
        for name, _ in trigger.rules():
            self._bridge.delete_rule(trigger.real_bus, name)


class SqliteEventsClient:
    """``put_events`` as boto3's ``events`` client answers it, on :class:`SqliteEventBridge`."""

    def __init__(self, bridge: SqliteEventBridge) -> None:
        self._bridge = bridge

    def put_events(self, *, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if not 1 <= len(Entries) <= 10:
            raise _client_error(
                "ValidationException", "Entries must hold between 1 and 10 entries", "PutEvents"
            )
        buses = [entry.get("EventBusName") or "default" for entry in Entries]
        for bus in dict.fromkeys(buses):  # checked before anything is put: a refused call puts nothing
            if not self._bridge.has_bus(bus):
                raise _client_error(
                    "ResourceNotFoundException", f"Event bus {bus} does not exist.", "PutEvents"
                )
        answers = [self._one(bus, entry) for bus, entry in zip(buses, Entries, strict=True)]
        return {
            "FailedEntryCount": sum(1 for a in answers if "ErrorCode" in a),
            "Entries": answers,
        }

    def _one(self, bus: str, entry: dict[str, Any]) -> dict[str, Any]:
        for field in ("Source", "DetailType", "Detail"):
            if not entry.get(field):
                return {
                    "ErrorCode": "InvalidArgument",
                    "ErrorMessage": f"Parameter {field} is not valid. Reason: {field} is a required argument.",
                }
        try:
            detail = json.loads(entry["Detail"])
        except ValueError:
            detail = None
        if not isinstance(detail, dict):
            return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
        try:
            return {"EventId": self._bridge.put_event(bus, entry["Source"], entry["DetailType"], detail)}
        except Exception as exc:  # a lane that refused the delivery: the entry failed, retry it
            return {"ErrorCode": "InternalFailure", "ErrorMessage": f"delivery failed: {type(exc).__name__}"}
