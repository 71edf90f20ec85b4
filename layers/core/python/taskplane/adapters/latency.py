"""Per-target duration sketches in the control table (``domain/adaptive.py``).

A tenant's target's minute is split by bucket range into parts of ``PART_BUCKETS`` buckets, one item
each, ``pk = "sketch#<tenant>#<target>#<minute start ms>#<part>"``, holding ``k<bucket - part start> =
count``: a worker adds what it measured with one ``ADD`` per part its durations fall in. A part's
item has at most ``PART_BUCKETS`` counts and a key of at most ``MAX_KEY_BYTES`` (longer tenant and
target names are replaced by a digest), so it stays under 1 KB (``MAX_ITEM_BYTES``) however many
writers add to it and however wide the durations spread: every write is one write unit. (One item
per minute held every bucket: a target whose durations spread over more than ~120 buckets, a factor
of ~11, passed 1 KB and each write cost 2 units.)

Which parts a target uses is kept in ``sketchparts#<tenant>#<target>`` (a number set, ``ADD``ed before
a process first writes a part), so a reader asks only for parts that exist: one ``BatchGetItem`` of
the targets' part lists, then one of the window's minutes times their parts. Items expire (TTL
``expires_at``) after the longest window; part lists do not (a few bytes per target). An index item
per tenant, ``sketches#<tenant>``, lists its targets (a string set, ``ADD``ed once per target and
process) for ``GET /v1/stats``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchGetItem reads at most this many keys per call.
BATCH_GET = 100
#: Buckets per part: a part covers durations over a factor of GAMMA ** 96 (about 6.8).
PART_BUCKETS = 96
#: Keys longer than this name their tenant and target by a digest.
MAX_KEY_BYTES = 128
#: What one part's item can reach: its key, ``expires_at`` (10 + 6 bytes), and PART_BUCKETS counts of
#: at most 3 name bytes and 6 number bytes each (a count below 10^10 per bucket and minute).
MAX_ITEM_BYTES = MAX_KEY_BYTES + 16 + PART_BUCKETS * 9


def _name(prefix: str, tenant: str, target: str, suffix: str) -> str:
    pk = f"{prefix}#{tenant}#{target}{suffix}"
    if len(pk.encode("utf-8", "surrogatepass")) <= MAX_KEY_BYTES:
        return pk
    digest = hashlib.sha256(f"{tenant}\0{target}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"{prefix}#~{digest}{suffix}"


def _sketch_pk(tenant: str, target: str, slice_ms: int, part: int) -> dict[str, Any]:
    return {"pk": {"S": _name("sketch", tenant, target, f"#{slice_ms}#{part}")}}


def _parts_pk(tenant: str, target: str) -> dict[str, Any]:
    return {"pk": {"S": _name("sketchparts", tenant, target, "")}}


def _index_pk(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": f"sketches#{tenant}"}}


def split(counts: Mapping[int, int]) -> dict[int, dict[int, int]]:
    """Bucket counts by part: part -> {bucket within the part: count}.

    >>> split({3: 1, 95: 2, 96: 4, 200: 1})
    {0: {3: 1, 95: 2}, 1: {0: 4}, 2: {8: 1}}
    """
    parts: dict[int, dict[int, int]] = {}
    for bucket, c in sorted(counts.items()):
        parts.setdefault(bucket // PART_BUCKETS, {})[bucket % PART_BUCKETS] = c
    return parts


class LatencyStore(AwsClient["DynamoDBClient"]):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        #: (tenant, target) -> the parts this process knows are in the target's part list
        self._parts: dict[tuple[str, str], set[int]] = {}
        self._lock = threading.Lock()
        super().__init__("dynamodb", client, session=session)

    def add(self, tenant: str, target: str, slice_ms: int, counts: Mapping[int, int], expires_at: int) -> int:
        """Add bucket counts to one target's minute: one write per part they fall in (and, the first
        time this process writes a part of this target, one to the target's part list before it)."""
        parts = split(counts)
        writes = 0
        with self._lock:
            new = set(parts) - self._parts.get((tenant, target), set())
        try:
            if new:
                self.client.update_item(
                    TableName=self._table,
                    Key=_parts_pk(tenant, target),
                    UpdateExpression="ADD p :p",
                    ExpressionAttributeValues={":p": {"NS": [str(p) for p in sorted(new)]}},
                )
                writes += 1
                with self._lock:
                    self._parts.setdefault((tenant, target), set()).update(new)
            for part, inside in parts.items():
                names: dict[str, str] = {}
                values: dict[str, Any] = {":exp": {"N": str(expires_at)}}
                adds = []
                for i, (bucket, c) in enumerate(inside.items()):
                    names[f"#k{i}"] = f"k{bucket}"
                    values[f":k{i}"] = {"N": str(c)}
                    adds.append(f"#k{i} :k{i}")
                self.client.update_item(
                    TableName=self._table,
                    Key=_sketch_pk(tenant, target, slice_ms, part),
                    UpdateExpression="ADD " + ", ".join(adds) + " SET expires_at = :exp",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
                writes += 1
        except ClientError as exc:
            raise translate(exc, "recording durations") from exc
        return writes

    def read(self, tenant: str, target: str, slices_ms: list[int]) -> list[dict[int, int]]:
        """The bucket counts of the minutes that exist among ``slices_ms`` (eventually consistent)."""
        return self.read_many(tenant, {target: slices_ms}).get(target, [])

    def read_many(self, tenant: str, wanted: Mapping[str, list[int]]) -> dict[str, list[dict[int, int]]]:
        """Per target, the bucket counts of each of its minutes that exist (a minute's parts summed)."""
        try:
            of_list = {_parts_pk(tenant, t)["pk"]["S"]: t for t in wanted if wanted[t]}
            by_pk: dict[str, tuple[str, int, int]] = {}
            for pk, item in self._batch_get(of_list).items():
                target = of_list[pk]
                for part in sorted(int(p) for p in item.get("p", {}).get("NS", [])):
                    for s in wanted[target]:
                        by_pk[_sketch_pk(tenant, target, s, part)["pk"]["S"]] = (target, s, part)
            found = self._batch_get(by_pk)
        except ClientError as exc:
            raise translate(exc, "reading durations") from exc
        minutes: dict[tuple[str, int], dict[int, int]] = {}
        for pk, item in found.items():
            target, s, part = by_pk[pk]
            counts = minutes.setdefault((target, s), {})
            for name, v in item.items():
                if name.startswith("k") and name[1:].isdigit():
                    bucket = part * PART_BUCKETS + int(name[1:])
                    counts[bucket] = counts.get(bucket, 0) + int(v["N"])
        out: dict[str, list[dict[int, int]]] = {t: [] for t in wanted}
        for (target, _), counts in sorted(minutes.items(), key=lambda kv: kv[0][1]):
            if counts:
                out[target].append(counts)
        return out

    def _batch_get(self, pks: Mapping[str, object]) -> dict[str, dict[str, Any]]:
        """The items that exist among ``pks`` (eventually consistent), by key."""
        out: dict[str, dict[str, Any]] = {}
        pending = [{"pk": {"S": pk}} for pk in pks]
        while pending:
            chunk, pending = pending[:BATCH_GET], pending[BATCH_GET:]
            request: dict[str, Any] = {self._table: {"Keys": chunk}}
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self._table, []):
                    out[item["pk"]["S"]] = item
                request = resp.get("UnprocessedKeys") or {}
        return out

    def remember(self, tenant: str, target: str) -> None:
        """Add ``target`` to the tenant's list of measured targets."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_index_pk(tenant),
                UpdateExpression="ADD targets :t",
                ExpressionAttributeValues={":t": {"SS": [target]}},
            )
        except ClientError as exc:
            raise translate(exc, "listing a measured target") from exc

    def targets(self, tenant: str) -> list[str]:
        try:
            item = self.client.get_item(TableName=self._table, Key=_index_pk(tenant)).get("Item") or {}
        except ClientError as exc:
            raise translate(exc, "reading the measured targets") from exc
        return sorted(item.get("targets", {}).get("SS", []))
