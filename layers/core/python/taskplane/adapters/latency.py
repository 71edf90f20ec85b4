"""Per-target duration sketches in the control table (``domain/adaptive.py``).

One item per tenant, target and minute, ``pk = "sketch#<tenant>#<target>#<minute start ms>"``,
holding ``k<bucket> = count`` and ``n``; a worker adds what it measured with one ``ADD`` per target
it called (per delivery batch, or per node in the step function), so an attempt costs at most one
write and less when a batch calls one target several times. Items expire (TTL ``expires_at``) after
the longest window. An index item per tenant, ``sketches#<tenant>``, lists its targets (a string
set, ``ADD``ed once per target and process) for ``GET /v1/stats``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: BatchGetItem reads at most this many keys per call.
BATCH_GET = 100


def _sketch_pk(tenant: str, target: str, slice_ms: int) -> dict[str, Any]:
    return {"pk": {"S": f"sketch#{tenant}#{target}#{slice_ms}"}}


def _index_pk(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": f"sketches#{tenant}"}}


class LatencyStore(AwsClient["DynamoDBClient"]):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    def add(
        self, tenant: str, target: str, slice_ms: int, counts: Mapping[int, int], expires_at: int
    ) -> None:
        """Add bucket counts to one target's minute (one write)."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {":n": {"N": str(sum(counts.values()))}, ":exp": {"N": str(expires_at)}}
        parts = ["n :n"]
        for i, (bucket, c) in enumerate(sorted(counts.items())):
            names[f"#k{i}"] = f"k{bucket}"
            values[f":k{i}"] = {"N": str(c)}
            parts.append(f"#k{i} :k{i}")
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_sketch_pk(tenant, target, slice_ms),
                UpdateExpression="ADD " + ", ".join(parts) + " SET expires_at = :exp",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            raise translate(exc, "recording durations") from exc

    def read(self, tenant: str, target: str, slices_ms: list[int]) -> list[dict[int, int]]:
        """The bucket counts of the minutes that exist among ``slices_ms`` (eventually consistent)."""
        return self.read_many(tenant, {target: slices_ms}).get(target, [])

    def read_many(self, tenant: str, wanted: Mapping[str, list[int]]) -> dict[str, list[dict[int, int]]]:
        keys = [(t, s) for t, ss in wanted.items() for s in ss]
        by_pk = {f"sketch#{tenant}#{t}#{s}": t for t, s in keys}
        out: dict[str, list[dict[int, int]]] = {t: [] for t in wanted}
        pending = [_sketch_pk(tenant, t, s) for t, s in keys]
        try:
            while pending:
                chunk, pending = pending[:BATCH_GET], pending[BATCH_GET:]
                request: dict[str, Any] = {self._table: {"Keys": chunk}}
                while request:
                    resp = self.client.batch_get_item(RequestItems=request)
                    for item in resp.get("Responses", {}).get(self._table, []):
                        counts = {
                            int(name[1:]): int(v["N"])
                            for name, v in item.items()
                            if name.startswith("k") and name[1:].isdigit()
                        }
                        out[by_pk[item["pk"]["S"]]].append(counts)
                    request = resp.get("UnprocessedKeys") or {}
        except ClientError as exc:
            raise translate(exc, "reading durations") from exc
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
