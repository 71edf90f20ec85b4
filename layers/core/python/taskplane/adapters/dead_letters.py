"""Dead-letter records in the tasks table, one partition per tenant.

The DLQ itself is a single queue for every tenant: reading it to answer one tenant would mean
receiving (and hiding) other tenants' messages, and SQS cannot filter. So the worker writes a record
here next to every DLQ message, under ``pk = "<tenant>#dead"`` (task partitions are
``"<tenant>#<bucket number>"``, so the two never meet), ``sk = task_id``; a tenant's listing is one
Query on its own partition and can never see another tenant's records. The DLQ stays the operators'
view (depth alarm, poison messages that name no tenant).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.dynamo_codec import deserialize_value, serialize_value
from taskplane.adapters.errors import translate, unless_refused
from taskplane.domain.dead_letters import DeadLetter, DeadLetterStatus, RedriveMoves

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def _pk(tenant: str) -> str:
    return f"{tenant}#dead"


def _to_item(d: DeadLetter) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": _pk(d.tenant),
        "sk": d.task_id,
        "tenant": d.tenant,
        "reason": d.reason[:2000],
        "at": d.at,
        "attempts": d.attempts,
        "target_type": d.target_type,
        "status": d.status,
    }
    if d.error:
        item["error"] = json.dumps(d.error, separators=(",", ":"))
    if d.fallback is not None:
        item["fallback"] = json.dumps(d.fallback, separators=(",", ":"))
    if d.redriven_as:
        item["redriven_as"] = d.redriven_as
    if d.redriven_at is not None:
        item["redriven_at"] = d.redriven_at
    return {k: serialize_value(v) for k, v in item.items()}


def _from_item(raw: dict[str, Any]) -> DeadLetter:
    item = {k: deserialize_value(v) for k, v in raw.items()}
    return DeadLetter(
        tenant=item["tenant"],
        task_id=item["sk"],
        reason=item.get("reason", ""),
        at=int(item["at"]),
        attempts=int(item.get("attempts", 0)),
        target_type=item.get("target_type", "unknown"),
        error=json.loads(item["error"]) if "error" in item else None,
        fallback=json.loads(item["fallback"]) if "fallback" in item else None,
        status=item.get("status", "dead"),
        redriven_as=item.get("redriven_as"),
        redriven_at=int(item["redriven_at"]) if "redriven_at" in item else None,
    )


class DeadLetterStore(AwsClient["DynamoDBClient"], RedriveMoves):
    """Per-tenant dead-letter records: put (idempotent), get, list newest first, claim for redrive."""

    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    def put(self, record: DeadLetter) -> None:
        """Write the record unless one for this task exists already (a repeated write changes nothing)."""
        unless_refused(
            "recording the dead letter",
            self.client.put_item,
            TableName=self._table,
            Item=_to_item(record),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get(self, tenant: str, task_id: str) -> DeadLetter | None:
        try:
            resp = self.client.get_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant)}, "sk": {"S": task_id}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise translate(exc, "reading the dead letter") from exc
        item = resp.get("Item")
        return _from_item(item) if item else None

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """This tenant's records, newest first; ``cursor`` is the last task id of the previous page."""
        names = {"#pk": "pk"}
        values: dict[str, Any] = {":pk": {"S": _pk(tenant)}}
        cond = "#pk = :pk"
        if cursor:
            names["#sk"] = "sk"
            values[":c"] = {"S": cursor}
            cond += " AND #sk < :c"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if status:
            names["#st"] = "status"
            values[":st"] = {"S": status}
            kwargs["FilterExpression"] = "#st = :st"
        found: list[DeadLetter] = []
        for _ in range(20):
            kwargs["Limit"] = max(limit + 1, 25)
            try:
                resp = self.client.query(**kwargs)
            except ClientError as exc:
                raise translate(exc, "listing dead letters") from exc
            found.extend(_from_item(i) for i in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if len(found) > limit or not last:
                break
            kwargs["ExclusiveStartKey"] = last
        page = found[:limit]
        more = len(found) > limit
        return page, (page[-1].task_id if page and more else None)

    def _move(
        self,
        tenant: str,
        task_id: str,
        old: DeadLetterStatus,
        new: DeadLetterStatus,
        new_task_id: str,
        now_ms: int,
    ) -> bool:
        values: dict[str, Any] = {":old": {"S": old}, ":new": {"S": new}, ":now": {"N": str(now_ms)}}
        if old == "dead":
            sets = "#st = :new, redriven_as = :as, redriven_at = :now"
            values[":as"] = {"S": new_task_id}
            condition = "attribute_exists(pk) AND #st = :old"
        else:
            sets = "#st = :new, redriven_at = :now"
            values[":as"] = {"S": new_task_id}
            condition = "attribute_exists(pk) AND #st = :old AND redriven_as = :as"
        return (
            unless_refused(
                "updating the dead letter",
                self.client.update_item,
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant)}, "sk": {"S": task_id}},
                UpdateExpression="SET " + sets,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues=values,
            )
            is not None
        )
