"""SQS on SQLite: the queue calls the lanes, the event source mapping (``local/poller.py``), the depth
gauge, trigger rules and the ``sqs`` target make, answered as boto3's ``sqs`` client answers them, so
those adapters run unchanged on it.

What SQS does and this keeps: ``DelaySeconds``; a received message hidden for the queue's visibility
timeout (or the receive's), then visible again with its receive count raised; a redrive policy that
moves a message to the dead-letter queue instead of delivering it for the ``maxReceiveCount + 1``-th
time; ``ChangeMessageVisibility`` (a hold); deletes by the latest receipt handle (an older one
deletes nothing: SQS says it "might not"); per-entry answers of the batch calls; approximate depths.
Time is the ``now_ms`` given (a test's clock), and a receive with ``WaitTimeSeconds`` waits for a send.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from taskplane.adapters.sqlite.db import Database

ACCOUNT = "000000000000"
REGION = "us-east-1"
URL_PREFIX = f"http://sqs.{REGION}.localhost/{ACCOUNT}/"


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


class SqliteQueues:
    """The ``sqs`` client subset the platform uses, on the database's ``queues`` and ``messages``."""

    def __init__(self, db: Database, now_ms: Callable[[], int] | None = None) -> None:
        self._db = db
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._sent = threading.Condition()

    # -- queues ------------------------------------------------------------------------------------

    def create_queue(self, *, QueueName: str, Attributes: dict[str, str] | None = None) -> dict[str, Any]:
        attrs = Attributes or {}
        redrive = json.loads(attrs["RedrivePolicy"]) if "RedrivePolicy" in attrs else {}
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO queues (name, visibility_s, delay_s, dlq, max_receives)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    QueueName,
                    int(attrs.get("VisibilityTimeout", 30)),
                    int(attrs.get("DelaySeconds", 0)),
                    redrive.get("deadLetterTargetArn", "").rsplit(":", 1)[-1] or None,
                    int(redrive["maxReceiveCount"]) if redrive else None,
                ),
            )
        return {"QueueUrl": URL_PREFIX + QueueName}

    def _queue(self, url: str, operation: str) -> Any:
        row = self._db.one("SELECT * FROM queues WHERE name = ?", (url.rsplit("/", 1)[-1],))
        if row is None:
            raise _error(
                "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.", operation
            )
        return row

    def get_queue_attributes(
        self, *, QueueUrl: str, AttributeNames: list[str] | None = None
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "GetQueueAttributes")
        now = self._now_ms()
        row = self._db.one(
            "SELECT"
            " sum(CASE WHEN visible_at <= ? AND receives = 0 THEN 1 ELSE 0 END) AS fresh,"
            " sum(CASE WHEN visible_at <= ? AND receives > 0 THEN 1 ELSE 0 END) AS back,"
            " sum(CASE WHEN visible_at > ? AND receives = 0 THEN 1 ELSE 0 END) AS delayed,"
            " sum(CASE WHEN visible_at > ? AND receives > 0 THEN 1 ELSE 0 END) AS in_flight"
            " FROM messages WHERE queue = ?",
            (now, now, now, now, queue["name"]),
        )
        counts = {k: int(row[k] or 0) for k in ("fresh", "back", "delayed", "in_flight")} if row else {}
        return {
            "Attributes": {
                "QueueArn": queue_arn(queue["name"]),
                "ApproximateNumberOfMessages": str(counts.get("fresh", 0) + counts.get("back", 0)),
                "ApproximateNumberOfMessagesDelayed": str(counts.get("delayed", 0)),
                "ApproximateNumberOfMessagesNotVisible": str(counts.get("in_flight", 0)),
                "VisibilityTimeout": str(queue["visibility_s"]),
            }
        }

    # -- sending -----------------------------------------------------------------------------------

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        DelaySeconds: int | None = None,
        MessageAttributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "SendMessage")
        with self._db.transaction() as conn:
            message_id = self._put(conn, queue, MessageBody, DelaySeconds, MessageAttributes)
        self._wake()
        return {"MessageId": message_id}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "SendMessageBatch")
        if not 1 <= len(Entries) <= 10:
            raise _error(
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "1 to 10 entries", "SendMessageBatch"
            )
        done = []
        with self._db.transaction() as conn:
            for entry in Entries:
                message_id = self._put(
                    conn,
                    queue,
                    entry["MessageBody"],
                    entry.get("DelaySeconds"),
                    entry.get("MessageAttributes"),
                )
                done.append({"Id": entry["Id"], "MessageId": message_id})
        self._wake()
        return {"Successful": done, "Failed": []}

    def _put(self, conn: Any, queue: Any, body: str, delay_s: int | None, attributes: Any) -> str:
        message_id = str(uuid.uuid4())
        now = self._now_ms()
        delay = queue["delay_s"] if delay_s is None else int(delay_s)
        conn.execute(
            "INSERT INTO messages (queue, id, body, attributes, sent_at, visible_at, receives)"
            " VALUES (?, ?, ?, ?, ?, ?, 0)",
            (queue["name"], message_id, body, json.dumps(attributes or {}), now, now + delay * 1000),
        )
        return message_id

    def _wake(self) -> None:
        with self._sent:
            self._sent.notify_all()

    # -- receiving ---------------------------------------------------------------------------------

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        VisibilityTimeout: int | None = None,
        WaitTimeSeconds: int = 0,
        AttributeNames: list[str] | None = None,
        MessageAttributeNames: list[str] | None = None,
    ) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "ReceiveMessage")
        deadline = time.monotonic() + WaitTimeSeconds
        while True:
            messages = self._receive(queue, MaxNumberOfMessages, VisibilityTimeout)
            left = deadline - time.monotonic()
            if messages or left <= 0:
                return {"Messages": messages} if messages else {}
            with self._sent:
                self._sent.wait(min(left, 0.1))

    def _receive(self, queue: Any, limit: int, visibility_s: int | None) -> list[dict[str, Any]]:
        hide_ms = (queue["visibility_s"] if visibility_s is None else visibility_s) * 1000
        out: list[dict[str, Any]] = []
        with self._db.transaction() as conn:
            now = self._now_ms()
            rows = conn.execute(
                "SELECT rowid, * FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, rowid LIMIT ?",
                (queue["name"], now, max(1, min(10, limit))),
            ).fetchall()
            for row in rows:
                if (
                    queue["max_receives"] is not None
                    and row["receives"] >= queue["max_receives"]
                    and queue["dlq"]
                ):
                    # Received maxReceiveCount times and not deleted: to the dead-letter queue, as it is.
                    conn.execute(
                        "UPDATE messages SET queue = ?, visible_at = ?, receives = 0, receipt = NULL WHERE rowid = ?",
                        (queue["dlq"], now, row["rowid"]),
                    )
                    continue
                receipt = uuid.uuid4().hex
                first = row["first_received_at"] or now
                conn.execute(
                    "UPDATE messages SET visible_at = ?, receives = receives + 1, receipt = ?,"
                    " first_received_at = ? WHERE rowid = ?",
                    (now + hide_ms, receipt, first, row["rowid"]),
                )
                out.append(
                    {
                        "MessageId": row["id"],
                        "ReceiptHandle": receipt,
                        "Body": row["body"],
                        "Attributes": {
                            "ApproximateReceiveCount": str(row["receives"] + 1),
                            "SentTimestamp": str(row["sent_at"]),
                            "ApproximateFirstReceiveTimestamp": str(first),
                        },
                        **(
                            {"MessageAttributes": json.loads(row["attributes"])}
                            if row["attributes"] not in (None, "{}")
                            else {}
                        ),
                    }
                )
        return out

    def wait_for_messages(self, timeout_s: float) -> None:
        """Block until a send (or a hold given up) may have made a message visible, or ``timeout_s``
        passes: the local event source mapping's long poll, woken at once by a send."""
        with self._sent:
            self._sent.wait(timeout_s)

    def release_in_flight(self) -> int:
        """Make every received, undeleted message visible again now; returns how many.

        For a database file reopened by a new process: the receipts of the process that held them
        are gone with it, so waiting out their visibility timeouts (16 minutes locally) would only
        delay the tasks. Each comes back with its receive count, as after a timeout; the worker's
        conditional start turns a delivery whose attempt already started into its watch, never a
        second run.
        """
        with self._db.transaction() as conn:
            now = self._now_ms()
            released = conn.execute(
                "UPDATE messages SET visible_at = ?, receipt = NULL WHERE receipt IS NOT NULL AND visible_at > ?",
                (now, now),
            ).rowcount
        if released:
            self._wake()
        return released

    # -- deleting and holding ------------------------------------------------------------------------

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "DeleteMessage")
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM messages WHERE queue = ? AND receipt = ?", (queue["name"], ReceiptHandle)
            )
        return {}

    def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue = self._queue(QueueUrl, "DeleteMessageBatch")
        with self._db.transaction() as conn:
            for entry in Entries:
                conn.execute(
                    "DELETE FROM messages WHERE queue = ? AND receipt = ?",
                    (queue["name"], entry["ReceiptHandle"]),
                )
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(
        self,
        *,
        QueueUrl: str,
        ReceiptHandle: str,
        VisibilityTimeout: int,
    ) -> dict[str, Any]:
        failed = self.change_message_visibility_batch(
            QueueUrl=QueueUrl,
            Entries=[{"Id": "0", "ReceiptHandle": ReceiptHandle, "VisibilityTimeout": VisibilityTimeout}],
        )["Failed"]
        if failed:
            raise _error(failed[0]["Code"], failed[0]["Message"], "ChangeMessageVisibility")
        return {}

    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Hide in-flight messages for their new timeout from now; a message not in flight under that
        receipt (deleted, visible again, received since) fails its entry, as in SQS."""
        queue = self._queue(QueueUrl, "ChangeMessageVisibilityBatch")
        ok, failed = [], []
        with self._db.transaction() as conn:
            now = self._now_ms()
            for entry in Entries:
                changed = conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE queue = ? AND receipt = ? AND visible_at > ?",
                    (
                        now + int(entry["VisibilityTimeout"]) * 1000,
                        queue["name"],
                        entry["ReceiptHandle"],
                        now,
                    ),
                ).rowcount
                if changed:
                    ok.append({"Id": entry["Id"]})
                else:
                    failed.append(
                        {
                            "Id": entry["Id"],
                            "Code": "AWS.SimpleQueueService.MessageNotInflight",
                            "Message": "the message is not in flight under this receipt handle",
                            "SenderFault": True,
                        }
                    )
        if ok:
            self._wake()  # a timeout of 0 makes a message visible now
        return {"Successful": ok, "Failed": failed}
