"""The triggers' dead-letter queue (SQS; EventBridge writes it): read, show again, delete.

Each message is an event a trigger rule could not put on its lane, as it matched, with the attributes
EventBridge adds (``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``, ``ERROR_MESSAGE``, ``RETRY_ATTEMPTS``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.errors import translate


@dataclass(frozen=True)
class DeadEvent:
    message_id: str
    receipt: str
    body: str
    #: the message's string attributes (RULE_ARN, ERROR_CODE, ...)
    attributes: dict[str, str]
    sent_at_ms: int | None


class DeadEventQueue:
    """One queue; ``client`` is boto3's ``sqs`` client (or the local runtime's SQLite queues)."""

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self._client = client

    def receive(self, limit: int, hide_s: int) -> list[DeadEvent]:
        """Up to ``limit`` distinct messages, each hidden for ``hide_s`` seconds."""
        seen: dict[str, DeadEvent] = {}
        while len(seen) < limit:
            try:
                resp = self._client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(10, limit - len(seen)),
                    VisibilityTimeout=hide_s,
                    WaitTimeSeconds=0,
                    MessageAttributeNames=["All"],
                    AttributeNames=["SentTimestamp"],
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc, "reading the triggers' dead-letter queue") from exc
            fresh = [m for m in resp.get("Messages") or [] if m["MessageId"] not in seen]
            if not fresh:
                break
            for m in fresh:
                sent = (m.get("Attributes") or {}).get("SentTimestamp")
                seen[m["MessageId"]] = DeadEvent(
                    message_id=m["MessageId"],
                    receipt=m["ReceiptHandle"],
                    body=m.get("Body") or "",
                    attributes={
                        name: str(value.get("StringValue", ""))
                        for name, value in (m.get("MessageAttributes") or {}).items()
                    },
                    sent_at_ms=int(sent) if sent else None,
                )
        return list(seen.values())

    def show_again(self, messages: list[DeadEvent]) -> None:
        """Make read messages visible at once (one that fails shows when its hiding ends)."""
        for m in messages:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._client.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=m.receipt, VisibilityTimeout=0
                )

    def delete(self, message: DeadEvent) -> None:
        try:
            self._client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "deleting from the triggers' dead-letter queue") from exc
