"""DynamoDB store of workflow definitions and their versions.

Item layout (one table):

* workflow: ``pk = "W#<tenant>"``, ``sk = <name>``: latest version, its digest, the state machine ARN,
  the canary routing, times. One Query lists a tenant's workflows by name.
* version: ``pk = "V#<tenant>#<name>"``, ``sk = <version, zero-padded>``: the canonical definition
  (zlib-compressed JSON: a 1,000-node definition stays far below DynamoDB's 400 KB item limit), its
  digest, the state machine version ARN, the gated nodes of the compiled plan. Versions never change,
  so they are cached in memory.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.dynamo_codec import binary, deserialize_value, serialize_value
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.errors import Conflict, PayloadTooLarge

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: Largest compressed definition stored (DynamoDB items hold 400 KB with their other attributes).
MAX_STORED_DEFINITION_BYTES = 350 * 1024


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize_value(v) for k, v in item.items() if v is not None}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: deserialize_value(v) for k, v in item.items()}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class WorkflowRecord:
    tenant: str
    name: str
    latest: int
    digest: str
    machine_arn: str
    created_at: int
    updated_at: int
    routing: dict[int, int] = field(default_factory=dict)
    description: str | None = None
    node_count: int = 0


@dataclass(frozen=True)
class VersionRecord:
    version: int
    digest: str
    version_arn: str
    created_at: int
    node_count: int
    gates: tuple[str, ...] = ()
    definition: dict[str, Any] | None = None  # None in listings


class WorkflowStore(AwsClient["DynamoDBClient"]):
    """Workflows and versions of every tenant."""

    def __init__(
        self, table: str, client: DynamoDBClient | None = None, *, session: Any = None, cache_size: int = 256
    ):
        self._table = table
        super().__init__("dynamodb", client, session=session)
        self._cache: OrderedDict[tuple[str, str, int], VersionRecord] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- workflows -------------------------------------------------------------------------------

    def get(self, tenant: str, name: str) -> WorkflowRecord | None:
        try:
            found = self.client.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"W#{tenant}"}, "sk": {"S": name}},
                ConsistentRead=True,
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "reading the workflow") from exc
        return _workflow(tenant, deserialize(found)) if found else None

    def list_workflows(
        self, tenant: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowRecord], str | None]:
        """A tenant's workflows by name; ``cursor`` is the last name of the previous page."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"W#{tenant}"}},
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = {"pk": {"S": f"W#{tenant}"}, "sk": {"S": cursor}}
        try:
            found = self.client.query(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "listing workflows") from exc
        items = [_workflow(tenant, deserialize(i)) for i in found.get("Items", [])]
        last = found.get("LastEvaluatedKey")
        return items, (last["sk"]["S"] if last and items else None)

    def publish(
        self,
        before: WorkflowRecord | None,
        after: WorkflowRecord,
        version: VersionRecord,
    ) -> None:
        """Store a new version and move the workflow to it, unless someone published meanwhile.

        Raises
        ------
        Conflict
            Another publish of the same workflow won the race.
        PayloadTooLarge
            The compressed definition does not fit a DynamoDB item.
        """
        assert version.definition is not None
        blob = zlib.compress(
            json.dumps(version.definition, separators=(",", ":")).encode("utf-8", "surrogatepass")
        )
        if len(blob) > MAX_STORED_DEFINITION_BYTES:
            raise PayloadTooLarge(
                f"the definition is {len(blob)} bytes compressed; the limit is {MAX_STORED_DEFINITION_BYTES}",
                [{"field": "body", "size": len(blob), "limit": MAX_STORED_DEFINITION_BYTES}],
            )
        version_item = {
            "pk": f"V#{after.tenant}#{after.name}",
            "sk": f"{version.version:08d}",
            "version": version.version,
            "digest": version.digest,
            "version_arn": version.version_arn,
            "created_at": version.created_at,
            "node_count": version.node_count,
            "gates": json.dumps(list(version.gates)),
            "definition": binary(blob),
        }
        workflow_item = {
            "pk": f"W#{after.tenant}",
            "sk": after.name,
            "latest": after.latest,
            "digest": after.digest,
            "machine_arn": after.machine_arn,
            "created_at": after.created_at,
            "updated_at": after.updated_at,
            "routing": json.dumps({str(k): v for k, v in after.routing.items()}),
            "description": after.description,
            "node_count": after.node_count,
        }
        if before is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "latest = :latest",
                "ExpressionAttributeValues": {":latest": {"N": str(before.latest)}},
            }
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": serialize(version_item),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": serialize(workflow_item), **condition}},  # type: ignore[typeddict-item]
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                raise Conflict(
                    f"workflow {after.name!r} was changed by another request; send it again",
                    [{"field": "name", "problem": "concurrent_update"}],
                ) from exc
            raise translate(exc, "storing the workflow") from exc
        except BotoCoreError as exc:
            raise translate(exc, "storing the workflow") from exc
        self._remember((after.tenant, after.name, version.version), version)

    def set_routing(self, record: WorkflowRecord, routing: dict[int, int], now_ms: int) -> None:
        """Replace the canary split (empty: runs use the latest version)."""
        try:
            self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": f"W#{record.tenant}"}, "sk": {"S": record.name}},
                UpdateExpression="SET routing = :r, updated_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":r": {"S": json.dumps({str(k): v for k, v in routing.items()})},
                    ":now": {"N": str(now_ms)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "routing the workflow") from exc

    # -- versions --------------------------------------------------------------------------------

    def versions(self, tenant: str, name: str) -> list[VersionRecord]:
        """Every version, oldest first, without definitions."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"V#{tenant}#{name}"}},
            "ProjectionExpression": "#v, #d, version_arn, created_at, node_count",
            "ExpressionAttributeNames": {"#v": "version", "#d": "digest"},
        }
        result: list[VersionRecord] = []
        try:
            while True:
                found = self.client.query(**kwargs)
                result += [_version(deserialize(i)) for i in found.get("Items", [])]
                if "LastEvaluatedKey" not in found:
                    return result
                kwargs["ExclusiveStartKey"] = found["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "listing versions") from exc

    def version(self, tenant: str, name: str, version: int) -> VersionRecord | None:
        """One version with its definition (cached: versions never change)."""
        key = (tenant, name, version)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            found = self.client.get_item(
                TableName=self._table,
                Key={"pk": {"S": f"V#{tenant}#{name}"}, "sk": {"S": f"{version:08d}"}},
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "reading the workflow version") from exc
        if not found:
            return None
        record = _version(deserialize(found))
        self._remember(key, record)
        return record

    def _remember(self, key: tuple[str, str, int], record: VersionRecord) -> None:
        with self._lock:
            self._cache[key] = record
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _workflow(tenant: str, item: dict[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        tenant=tenant,
        name=item["sk"],
        latest=int(item["latest"]),
        digest=item["digest"],
        machine_arn=item["machine_arn"],
        created_at=int(item["created_at"]),
        updated_at=int(item["updated_at"]),
        routing={int(k): int(v) for k, v in json.loads(item.get("routing") or "{}").items()},
        description=item.get("description"),
        node_count=int(item.get("node_count", 0)),
    )


def _version(item: dict[str, Any]) -> VersionRecord:
    blob = item.get("definition")
    definition = json.loads(zlib.decompress(bytes(blob))) if blob else None
    return VersionRecord(
        version=int(item["version"]),
        digest=item["digest"],
        version_arn=item["version_arn"],
        created_at=int(item["created_at"]),
        node_count=int(item.get("node_count", 0)),
        gates=tuple(json.loads(item["gates"])) if item.get("gates") else (),
        definition=definition,
    )
