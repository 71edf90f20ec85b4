"""Feeds a lane queue to the worker handler the way a Lambda event source mapping does.

Batches of up to ``batch_size`` records, at most ``concurrency`` batches in flight, partial batch
failures honoured (failed records stay on the queue until their visibility timeout ends; the rest
are deleted), and a crashed handler leaves its whole batch for redelivery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskplane.local.context import LocalContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def to_record(message: dict[str, Any], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """An SQS message from ReceiveMessage -> an SQS event record as Lambda delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class LanePoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        function_name: str = "taskplane-worker",
        batch_size: int = 10,
        concurrency: int = 4,
        idle_sleep_s: float = 0.02,
        max_idle_sleep_s: float = 0.25,
        wait_for_messages: Callable[[float], None] | None = None,
    ) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._handler = handler
        self._function_name = function_name
        self._batch = batch_size
        self._slots = threading.BoundedSemaphore(concurrency)
        self._concurrency = concurrency
        self._draining = False
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"esm-{queue_url[-12:]}")
        self._stop = threading.Event()
        self._idle = idle_sleep_s
        self._max_idle = max_idle_sleep_s
        # Blocks until a message may be there (or the timeout passes); without one, back off and poll.
        self._wait_for_messages = wait_for_messages
        self._thread: threading.Thread | None = None
        self._arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.invocations = 0
        self.errors = 0

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"poller-{self._url.rsplit('/', 1)[-1]}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0, *, drain_s: float = 0.0) -> None:
        """Stop receiving. With ``drain_s``, wait up to that long for the batches in flight to finish
        and be acknowledged (the local runtime on a database file: what finished is not run again
        after a restart); a batch still running then stays on its queue, as when a worker dies."""
        self._draining = drain_s > 0
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)
        if self._draining:
            deadline = time.monotonic() + drain_s
            for _ in range(self._concurrency):
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        sleep = self._idle
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=0.1):
                continue
            try:
                messages = self._sqs.receive_message(
                    QueueUrl=self._url,
                    MaxNumberOfMessages=self._batch,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                    WaitTimeSeconds=0,
                ).get("Messages", [])
            except Exception:
                messages = []
                if self._stop.is_set():
                    self._slots.release()
                    break
            if not messages:
                self._slots.release()
                if self._wait_for_messages is not None:
                    # A send wakes it at once; the timeout only bounds how late a delayed message is seen.
                    self._wait_for_messages(0.1)
                else:
                    self._stop.wait(sleep)
                    sleep = min(self._max_idle, sleep * 2)
                continue
            sleep = self._idle
            self._pool.submit(self._invoke, messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        try:
            event = {"Records": [to_record(m, self._arn) for m in messages]}
            self.invocations += 1
            try:
                response = self._handler(event, LocalContext(function_name=self._function_name))
                failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
            except Exception:
                self.errors += 1
                return  # the whole batch becomes visible again after its visibility timeout
            done = [m for m in messages if m["MessageId"] not in failed]
            if done and (self._draining or not self._stop.is_set()):
                self._sqs.delete_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
        finally:
            self._slots.release()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
