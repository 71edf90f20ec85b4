"""SQS lanes (high / default / low) and the dead-letter queue; sends in batches of 10."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import translate
from taskplane.domain.tracecontext import parse_traceparent
from taskplane.domain.wheel import WheelEntry
from taskplane.tracing import NULL_TRACING, Tracing

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_DELAY_S = 900  # SQS DelaySeconds ceiling
MAX_VISIBILITY_S = 43_200  # SQS visibility timeout ceiling (12 hours)


@dataclass(frozen=True)
class LaneMessage:
    """One task delivery: which task, for which attempt, on which lane, after how long.

    ``state`` is the state the sender saw (the worker's first conditional write expects it, so the
    usual delivery costs one write); ``dispatched_at`` is when the tick sent it, ``late_ms`` how far
    behind its due time that was.
    """

    tenant: str
    task_id: str
    attempt: int
    lane: str = "default"
    delay_s: int = 0
    state: str = "PENDING"
    dispatched_at: int | None = None
    late_ms: int = 0
    #: times this delivery came back because its task was not stored yet (see Executor.handle)
    missing_hops: int = 0
    #: when the attempt is due (epoch ms), for a delivery sent ahead of it: the worker waits until then
    #: before it writes the start (so no start write is refused for being early)
    due_ms: int | None = None
    #: W3C ``traceparent`` of the span that sent it, when tracing is on (taskplane/tracing.py); a
    #: message without one (sent before tracing was on) hangs under its task's root span instead
    tp: str | None = None

    def body(self) -> str:
        data: dict[str, object] = {
            "v": 1,
            "tenant": self.tenant,
            "task_id": self.task_id,
            "attempt": self.attempt,
            "state": self.state,
        }
        if self.dispatched_at is not None:
            data["dispatched_at"] = self.dispatched_at
        if self.late_ms:
            data["late_ms"] = self.late_ms
        if self.missing_hops:
            data["missing_hops"] = self.missing_hops
        if self.due_ms is not None:
            data["due"] = self.due_ms
        if self.tp is not None:
            data["tp"] = self.tp
        return json.dumps(data, separators=(",", ":"))


@dataclass(frozen=True)
class TriggerMessage:
    """An event a trigger's EventBridge rule put on a lane: start the trigger's task with it."""

    tenant: str
    trigger_id: str
    event: dict[str, object]
    #: which of a correlating trigger's patterns matched (its rule's index); None for one pattern
    pattern: int | None = None


@dataclass(frozen=True)
class WindowMessage:
    """A windowed trigger's window end, from the wheel: close the window when due.

    The tick sends it ahead of ``due_ms`` like a task's delivery; the worker waits out the rest, then
    closes the window (services/windows.py ``WindowService.delivered``). ``window`` is the wheel entry's
    item id, ``<trigger id>.<window id>``.
    """

    tenant: str
    window: str
    due_ms: int
    lane: str = "default"
    delay_s: int = 0
    dispatched_at: int | None = None

    @classmethod
    def end_of(cls, entry: WheelEntry, dispatched_at: int, delay_s: int = 0) -> WindowMessage:
        """The lane message of a window's wheel entry (sent by the tick, or straight by the window's
        writer when it is due too soon for the tick)."""
        return cls(
            tenant=entry.tenant,
            window=entry.item_id,
            due_ms=entry.due_ms,
            lane=entry.lane,
            delay_s=delay_s,
            dispatched_at=dispatched_at,
        )

    def body(self) -> str:
        data: dict[str, object] = {"v": 1, "tenant": self.tenant, "window": self.window, "due": self.due_ms}
        if self.lane != "default":  # so a requeue (far too early) goes back to the same lane
            data["lane"] = self.lane
        if self.dispatched_at is not None:
            data["dispatched_at"] = self.dispatched_at
        return json.dumps(data, separators=(",", ":"))


#: What the lanes carry from the platform's own senders.
Outgoing = LaneMessage | WindowMessage


def _window_message(data: dict[str, Any]) -> WindowMessage:
    tenant, window, due_ms = data.get("tenant"), data.get("window"), data.get("due")
    if not isinstance(tenant, str) or not isinstance(window, str) or type(due_ms) is not int:
        raise ValueError("window message lacks tenant, window or due")
    if "." not in window:
        raise ValueError("window message's window is not <trigger id>.<window id>")
    lane = data.get("lane", "default")
    if not isinstance(lane, str):
        raise ValueError("window message's lane is not a string")
    dispatched_at = data.get("dispatched_at")
    if dispatched_at is not None and type(dispatched_at) is not int:
        raise ValueError("dispatched_at is not an integer")
    return WindowMessage(tenant=tenant, window=window, due_ms=due_ms, lane=lane, dispatched_at=dispatched_at)


def parse_body(body: str) -> LaneMessage | TriggerMessage | WindowMessage:
    """The delivery (trigger event, window end) in a lane message body; ValueError when it is not one
    of ours."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"message body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("message body is not an object")
    if "trigger_id" in data:
        tenant, trigger_id, event = data.get("tenant"), data.get("trigger_id"), data.get("event")
        if not isinstance(tenant, str) or not isinstance(trigger_id, str) or not isinstance(event, dict):
            raise ValueError("trigger message lacks tenant, trigger_id or event")
        pattern = data.get("pattern")
        if pattern is not None and (type(pattern) is not int or not 0 <= pattern < 100):
            raise ValueError("trigger message's pattern is not a small integer")
        return TriggerMessage(tenant=tenant, trigger_id=trigger_id, event=event, pattern=pattern)
    if "window" in data:
        return _window_message(data)
    tenant, task_id, attempt = data.get("tenant"), data.get("task_id"), data.get("attempt")
    if not isinstance(tenant, str) or not isinstance(task_id, str) or type(attempt) is not int:
        raise ValueError("message body lacks tenant, task_id or attempt")
    state = data.get("state", "PENDING")
    dispatched_at = data.get("dispatched_at")
    late_ms = data.get("late_ms", 0)
    missing_hops = data.get("missing_hops", 0)
    if type(missing_hops) is not int:
        raise ValueError("missing_hops is not an integer")
    # RUNNING: a timeout watch from the wheel (it looks at that attempt, never starts one).
    if state not in ("PENDING", "SCHEDULED", "RETRYING", "RUNNING"):
        raise ValueError(f"message state {state!r} is not one a delivery starts from")
    if dispatched_at is not None and type(dispatched_at) is not int:
        raise ValueError("dispatched_at is not an integer")
    if type(late_ms) is not int:
        raise ValueError("late_ms is not an integer")
    due_ms = data.get("due")
    if due_ms is not None and type(due_ms) is not int:
        raise ValueError("due is not an integer")
    # Only telemetry: one that cannot be read is dropped, never a reason to refuse the delivery.
    tp = data.get("tp")
    if parse_traceparent(tp) is None:
        tp = None
    return LaneMessage(
        tenant=tenant,
        task_id=task_id,
        attempt=attempt,
        state=state,
        dispatched_at=dispatched_at,
        late_ms=late_ms,
        missing_hops=missing_hops,
        due_ms=due_ms,
        tp=tp,
    )


class Lanes(AwsClient["SQSClient"]):
    """Send task deliveries to the lane queues and failed tasks to the DLQ."""

    def __init__(
        self,
        queue_urls: dict[str, str],
        dlq_url: str = "",
        client: SQSClient | None = None,
        *,
        session: Any = None,
        tracing: Tracing = NULL_TRACING,
    ) -> None:
        self._urls = dict(queue_urls)
        self._dlq = dlq_url
        #: every send of a delivery is a dispatch span of its task's trace, whoever sends it
        self.tracing = tracing
        super().__init__("sqs", client, session=session)

    def url(self, lane: str) -> str:
        return self._urls.get(lane) or self._urls["default"]

    def send(self, messages: Sequence[Outgoing]) -> list[Exception | None]:
        """Send in batches of 10 per lane; one outcome per message, in order (None = sent). A task's
        delivery is a dispatch span of its task's trace; a window's end belongs to no task yet."""
        at = [i for i, m in enumerate(messages) if isinstance(m, LaneMessage)]
        traced, ended = self.tracing.dispatch([cast(LaneMessage, messages[i]) for i in at])
        out: list[Outgoing] = list(messages)
        for i, message in zip(at, traced, strict=True):
            out[i] = message
        try:
            outcomes = self._send(out)
        except BaseException as exc:
            ended([exc] * len(at))
            raise
        ended([outcomes[i] for i in at])
        return outcomes

    def _send(self, messages: list[Outgoing]) -> list[Exception | None]:
        outcomes: list[Exception | None] = [None] * len(messages)
        by_lane: dict[str, list[int]] = {}
        for i, m in enumerate(messages):
            by_lane.setdefault(self.url(m.lane), []).append(i)
        for url, indexes in by_lane.items():
            for start in range(0, len(indexes), 10):
                chunk = indexes[start : start + 10]
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": messages[i].body(),
                        "DelaySeconds": max(0, min(MAX_DELAY_S, messages[i].delay_s)),
                    }
                    for i in chunk
                ]
                try:
                    resp = self.client.send_message_batch(QueueUrl=url, Entries=cast(Any, entries))
                except (ClientError, BotoCoreError) as exc:
                    err = translate(exc, "queueing the task")
                    for i in chunk:
                        outcomes[i] = err
                    continue
                for failed in resp.get("Failed", []):
                    outcomes[int(failed["Id"])] = translate(
                        ClientError({"Error": {"Code": failed.get("Code", "Failed")}}, "SendMessageBatch"),
                        "queueing the task",
                    )
        return outcomes

    def send_one(self, message: Outgoing) -> None:
        """Send one delivery, raising a domain exception when it could not be queued."""
        err = self.send([message])[0]
        if err is not None:
            raise err

    def url_of(self, queue_arn: str) -> str:
        """The URL of a lane (or any queue in this account) from the ARN an SQS event record carries."""
        name = queue_arn.rsplit(":", 1)[-1]
        for url in (*self._urls.values(), self._dlq):
            if url and url.rsplit("/", 1)[-1] == name:
                return url
        _, _, _, region, account, _ = queue_arn.split(":", 5)
        return f"https://sqs.{region}.amazonaws.com/{account}/{name}"

    def hold_many(self, holds: list[tuple[str, str, int]]) -> list[Exception | None]:
        """Keep received messages ``(queue_arn, receipt_handle, seconds)`` invisible for that many
        seconds from now, in batches of 10 per queue (ChangeMessageVisibilityBatch); one outcome per
        message, in order (None = held).

        The worker holds a started task's delivery until the attempt would count as abandoned: if the
        worker dies, SQS brings the message back then and its redelivery times the attempt out (see
        services/holds.py, which gathers a batch's holds into one call).
        """
        outcomes: list[Exception | None] = [None] * len(holds)
        by_queue: dict[str, list[int]] = {}
        for i, (arn, _, _) in enumerate(holds):
            by_queue.setdefault(self.url_of(arn), []).append(i)
        for url, indexes in by_queue.items():
            for start in range(0, len(indexes), 10):
                chunk = indexes[start : start + 10]
                entries = [
                    {
                        "Id": str(i),
                        "ReceiptHandle": holds[i][1],
                        "VisibilityTimeout": max(0, min(MAX_VISIBILITY_S, holds[i][2])),
                    }
                    for i in chunk
                ]
                try:
                    resp = self.client.change_message_visibility_batch(
                        QueueUrl=url, Entries=cast(Any, entries)
                    )
                except (ClientError, BotoCoreError) as exc:
                    err = translate(exc, "holding the delivery")
                    for i in chunk:
                        outcomes[i] = err
                    continue
                for failed in resp.get("Failed", []):
                    outcomes[int(failed["Id"])] = translate(
                        ClientError(
                            {"Error": {"Code": failed.get("Code", "Failed")}}, "ChangeMessageVisibilityBatch"
                        ),
                        "holding the delivery",
                    )
        return outcomes

    def send_body(self, lane: str, body: str) -> None:
        """Put a message body as it is on a lane (a trigger's envelope, as its rule would have)."""
        try:
            self.client.send_message(QueueUrl=self.url(lane), MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "queueing the event") from exc

    def dead_letter_raw(self, body: str, reason: str, source: str = "") -> None:
        """Move an unreadable lane message (a poison message) to the DLQ as it came, with why."""
        if not self._dlq:
            raise ValueError("no dead-letter queue configured")
        attributes = {"reason": {"DataType": "String", "StringValue": reason[:1000] or "unreadable"}}
        if source:
            attributes["source"] = {"DataType": "String", "StringValue": source[:1000]}
        try:
            self.client.send_message(
                QueueUrl=self._dlq, MessageBody=body or "(empty)", MessageAttributes=cast(Any, attributes)
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "dead-lettering the message") from exc

    def dead_letter(self, tenant: str, task_id: str, reason: str) -> None:
        """Record a task that exhausted its attempts on the DLQ."""
        if not self._dlq:
            return
        body = json.dumps({"v": 1, "tenant": tenant, "task_id": task_id, "reason": reason})
        try:
            self.client.send_message(QueueUrl=self._dlq, MessageBody=body)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "dead-lettering the task") from exc
