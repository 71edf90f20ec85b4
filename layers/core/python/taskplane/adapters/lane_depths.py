"""Approximate lane depths from SQS, cached so that a busy dashboard never calls SQS per request."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.domain.clock import Clock, SystemClock

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

#: How long one reading of the lanes is reused (per execution environment).
DEPTH_TTL_MS = 5_000


class LaneDepths:
    """``ApproximateNumberOfMessages`` (+ delayed, + in flight) per lane, cached for ``ttl_ms``."""

    def __init__(
        self,
        queue_urls: dict[str, str],
        client: SQSClient | None = None,
        *,
        clock: Clock | None = None,
        ttl_ms: int = DEPTH_TTL_MS,
    ) -> None:
        self._urls = dict(queue_urls)
        self._client = client
        self._clock = clock or SystemClock()
        self._ttl_ms = ttl_ms
        self._lock = threading.Lock()
        self._cached: tuple[int, dict[str, dict[str, int] | None]] | None = None

    @property
    def client(self) -> SQSClient:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client("sqs")
        return self._client

    def read(self) -> tuple[dict[str, dict[str, int] | None], int]:
        """(depths per lane, the time they were read in ms); a lane that could not be read is None."""
        now = self._clock.now_ms()
        with self._lock:
            if self._cached is None or now - self._cached[0] >= self._ttl_ms:
                self._cached = (now, {lane: self._one(url) for lane, url in self._urls.items()})
            at, depths = self._cached
        return dict(depths), at

    def _one(self, url: str) -> dict[str, int] | None:
        names: Any = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesDelayed",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        try:
            attrs = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        except (ClientError, BotoCoreError):
            # A header figure is not worth failing the request for: the page shows "n/a".
            return None
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        }
