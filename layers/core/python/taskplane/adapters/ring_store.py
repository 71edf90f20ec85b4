"""The wheel's ring in the control table: one item, ``pk = "wheel#ring"``, versioned.

Every writer of wheel entries (the api, the worker's retries and watches, schedules, the tick's
schedule fires) places an entry with the ring it read last, read again every ``RING_CACHE_MS``
(eventually consistent: half a read unit per process every 30 s). Only the tick of shard 0 changes
the ring (services/ring.py), with a conditional write on the version it read, so two changes never
interleave. Item: ``version`` (N), ``weights`` (M shard -> N), ``draining`` (M shard -> N, epoch ms
until its tick still runs), ``changed_at`` (N).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.ring import RING_CACHE_MS, Ring

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RING_KEY = {"pk": {"S": "wheel#ring"}}


class RingStore(AwsClient["DynamoDBClient"]):
    def __init__(
        self, control_table: str, client: DynamoDBClient | None = None, *, session: Any = None
    ) -> None:
        self._control = control_table
        super().__init__("dynamodb", client, session=session)

    def read(self, *, consistent: bool = False) -> Ring | None:
        """The ring in place, or None when none was written yet."""
        try:
            item = self.client.get_item(TableName=self._control, Key=RING_KEY, ConsistentRead=consistent).get(
                "Item"
            )
        except ClientError as exc:
            raise translate(exc, "reading the wheel ring") from exc
        if not item:
            return None
        return Ring(
            version=int(item["version"]["N"]),
            weights={int(s): float(v["N"]) for s, v in item["weights"]["M"].items()},
            draining={int(s): int(v["N"]) for s, v in item.get("draining", {}).get("M", {}).items()},
            changed_at=int(item.get("changed_at", {}).get("N", "0")),
        )

    def write(self, ring: Ring, *, expected_version: int | None) -> bool:
        """Put ``ring`` if the ring in place is still ``expected_version`` (None: if there is none);
        False when someone changed it first."""
        if expected_version is None:
            condition = "attribute_not_exists(pk)"
            values: dict[str, Any] = {}
        else:
            condition = "version = :expected"
            values = {":expected": {"N": str(expected_version)}}
        item = {
            **RING_KEY,
            "version": {"N": str(ring.version)},
            "weights": {"M": {str(s): {"N": repr(w)} for s, w in ring.weights.items()}},
            "draining": {"M": {str(s): {"N": str(u)} for s, u in ring.draining.items()}},
            "changed_at": {"N": str(ring.changed_at)},
        }
        kwargs: dict[str, Any] = {"TableName": self._control, "Item": item, "ConditionExpression": condition}
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, "changing the wheel ring") from exc
        return True


class CachedRing:
    """What writers place entries with: the stored ring, read again when it is ``ttl_ms`` old; before
    any ring is stored, shards 0..``shards``-1 at full weight (what the tick of shard 0 then stores).
    A failed read keeps the ring last read (entries still land on a shard that is ticked)."""

    def __init__(
        self, store: Any, now_ms: Callable[[], int], shards: int, ttl_ms: int = RING_CACHE_MS
    ) -> None:
        self.store = store  # RingStore, or its SQLite twin
        self.now_ms = now_ms
        self.shards = shards
        self.ttl_ms = ttl_ms
        self._ring: Ring | None = None
        self._read_at = -(10**15)
        self._lock = threading.Lock()

    def current(self) -> Ring:
        now = self.now_ms()
        with self._lock:
            if self._ring is None or now - self._read_at >= self.ttl_ms:
                try:
                    stored = self.store.read()
                except Exception:
                    stored = self._ring  # keep what we had (or the default below)
                if stored is not None and stored == self._ring:
                    stored = self._ring  # the same ring: keep its points, computed once
                self._ring = stored or self._ring or Ring.of(self.shards, version=0)
                self._read_at = now
            return self._ring

    def forget(self) -> None:
        """Read the ring again at the next use (a test, or the keeper after changing it)."""
        with self._lock:
            self._ring = None

    def shard_for(self, key: str) -> int:
        return self.current().shard_for(key)
