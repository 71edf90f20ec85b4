"""What backpressure reads and writes: cached lane depths (SQS) and per-tenant in-flight counters
(the control table).

Lane depth is read with GetQueueAttributes at most once per ``ttl_ms`` per lane per execution
environment, never per request. The in-flight counter is one item per tenant,
``pk = "inflight#<tenant>"``, raised by a conditional ``ADD`` that refuses to pass the quota (the
check and the count are one write) and lowered when a counted task ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import unless_refused

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

#: How long one reading of a lane's depth is reused.
DEPTH_TTL_MS = 2_000


class LaneDepthGauge:
    """Visible, delayed and in-flight messages per lane, cached for ``ttl_ms``.

    One cache serves both readers: backpressure (:meth:`depth`, the total) and the dashboard header
    (:meth:`read`, the breakdown), so neither calls SQS per request.
    """

    def __init__(
        self,
        queue_urls: dict[str, str],
        client: SQSClient | None,
        now_ms: Callable[[], int],
        *,
        ttl_ms: int = DEPTH_TTL_MS,
    ) -> None:
        self._urls = dict(queue_urls)
        self._client = client
        self._now_ms = now_ms
        self._ttl_ms = ttl_ms
        self._lock = threading.Lock()
        #: url -> (read at, the last breakdown read, whether the latest read succeeded)
        self._cache: dict[str, tuple[int, dict[str, int] | None, bool]] = {}
        #: GetQueueAttributes calls made (tests check the cache holds)
        self.reads = 0

    def depth(self, lane: str) -> int:
        """The lane's approximate depth; 0 when it was never read (never refuse work on a failed read)."""
        url = self._urls.get(lane) or self._urls.get("default")
        if not url:
            return 0
        breakdown, _ = self._breakdown(url)
        return sum(breakdown.values()) if breakdown else 0

    def read(self) -> tuple[dict[str, dict[str, int] | None], int]:
        """(breakdown per lane, when it was read); a lane whose latest read failed is None."""
        out: dict[str, dict[str, int] | None] = {}
        at = self._now_ms()
        for lane, url in self._urls.items():
            breakdown, ok = self._breakdown(url)
            out[lane] = dict(breakdown) if ok and breakdown is not None else None
            at = min(at, self._cache.get(url, (at, None, False))[0])
        return out, at

    def _breakdown(self, url: str) -> tuple[dict[str, int] | None, bool]:
        if self._client is None:
            return None, False
        now = self._now_ms()
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and now - cached[0] < self._ttl_ms:
                return cached[1], cached[2]
            self.reads += 1
            try:
                attrs = self._client.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesDelayed",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                breakdown: dict[str, int] | None = {
                    "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
                    "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
                    "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
                }
                ok = True
            except (ClientError, BotoCoreError, KeyError, ValueError):
                breakdown, ok = (cached[1] if cached else None), False
            self._cache[url] = (now, breakdown, ok)
            return breakdown, ok


class InflightCounters(AwsClient["DynamoDBClient"]):
    """Per-tenant count of accepted tasks that have not ended, with an atomic quota check."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    def acquire(self, tenant: str, n: int, quota: int) -> bool:
        """Count ``n`` more tasks for ``tenant`` unless that passes ``quota``; False when it would."""
        if n > quota:
            # The condition below lets any ``n`` through while the tenant has no counter yet, so a
            # first batch larger than the quota must be refused here.
            return False
        return (
            unless_refused(
                "counting in-flight tasks",
                self.client.update_item,
                TableName=self._table,
                Key={"pk": {"S": f"inflight#{tenant}"}},
                UpdateExpression="ADD inflight :n",
                ConditionExpression="attribute_not_exists(inflight) OR inflight <= :room",
                ExpressionAttributeValues={":n": {"N": str(n)}, ":room": {"N": str(quota - n)}},
            )
            is not None
        )

    def release(self, tenant: str, n: int = 1) -> None:
        """Count ``n`` tasks as ended (never below zero)."""
        unless_refused(
            "counting in-flight tasks",
            self.client.update_item,
            TableName=self._table,
            Key={"pk": {"S": f"inflight#{tenant}"}},
            UpdateExpression="ADD inflight :minus",
            ConditionExpression="inflight >= :n",
            ExpressionAttributeValues={":minus": {"N": str(-n)}, ":n": {"N": str(n)}},
        )

    def current(self, tenant: str) -> int:
        resp = self.client.get_item(
            TableName=self._table, Key={"pk": {"S": f"inflight#{tenant}"}}, ConsistentRead=True
        )
        return int(resp.get("Item", {}).get("inflight", {}).get("N", "0"))
