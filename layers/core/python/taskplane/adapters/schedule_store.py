"""Schedules in DynamoDB: partition = tenant, sort key = schedule id (time-ordered, so newest first)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.dynamo_codec import deserialize_value, serialize_value, utf8_json
from taskplane.adapters.errors import error_code, translate, unless_refused
from taskplane.adapters.wheel_store import WheelStore
from taskplane.domain.schedules import Schedule
from taskplane.domain.wheel import WheelEntry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_OPTIONAL = ("name", "start_at", "end_at", "next_fire_at", "last_fire_at", "last_task_id")


def _to_item(s: Schedule) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": s.tenant,
        "sk": s.schedule_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "task": utf8_json(s.task),
        "misfire": s.misfire,
        "overlap": s.overlap,
        "paused": s.paused,
        "fires": s.fires,
        "skipped": s.skipped,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }
    for name in _OPTIONAL:
        value = getattr(s, name)
        if value is not None:
            item[name] = value
    return {k: serialize_value(v) for k, v in item.items()}


def _from_item(raw: dict[str, Any]) -> Schedule:
    item = {k: deserialize_value(v) for k, v in raw.items()}
    ints = {
        "start_at",
        "end_at",
        "next_fire_at",
        "last_fire_at",
        "fires",
        "skipped",
        "created_at",
        "updated_at",
    }
    data: dict[str, Any] = {
        k: (int(v) if k in ints else v) for k, v in item.items() if k not in ("pk", "sk", "task")
    }
    return Schedule(schedule_id=item["sk"], tenant=item["pk"], task=json.loads(item["task"]), **data)


class ScheduleStore(AwsClient["DynamoDBClient"]):
    def __init__(
        self, table: str, wheel: WheelStore, client: DynamoDBClient | None = None, *, session: Any = None
    ):
        self._table = table
        self._wheel = wheel
        super().__init__("dynamodb", client, session=session)

    def _key(self, tenant: str, schedule_id: str) -> dict[str, Any]:
        return {"pk": {"S": tenant}, "sk": {"S": schedule_id}}

    def create(self, schedule: Schedule, entry: WheelEntry | None) -> None:
        """Store the schedule and its first wheel entry together (one transaction), or neither."""
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _to_item(schedule),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if entry is not None:
            items.append(self._wheel.put_request(entry))
        try:
            self.client.transact_write_items(TransactItems=cast(Any, items))
        except ClientError as exc:
            raise translate(exc, "storing the schedule") from exc

    def get(self, tenant: str, schedule_id: str) -> Schedule | None:
        try:
            item = self.client.get_item(
                TableName=self._table, Key=self._key(tenant, schedule_id), ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise translate(exc, "reading the schedule") from exc
        return _from_item(item) if item else None

    def list(self, tenant: str, *, limit: int, cursor: str | None) -> tuple[list[Schedule], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :t" + (" AND sk < :c" if cursor else ""),
            "ExpressionAttributeValues": {":t": {"S": tenant}, **({":c": {"S": cursor}} if cursor else {})},
            "ScanIndexForward": False,
            "Limit": limit + 1,
        }
        try:
            items = self.client.query(**kwargs).get("Items", [])
        except ClientError as exc:
            raise translate(exc, "listing schedules") from exc
        page = [_from_item(i) for i in items[:limit]]
        return page, (page[-1].schedule_id if len(items) > limit and page else None)

    def update(
        self,
        schedule: Schedule,
        *,
        expected_next: int | None,
        entry: WheelEntry | None = None,
        expected_updated: int | None = None,
    ) -> bool:
        """Replace the schedule if its ``next_fire_at`` is still ``expected_next`` (and, when given, its
        ``updated_at`` still ``expected_updated``: nobody paused it meanwhile) and write ``entry`` in
        the same transaction; False when another writer got there first."""
        condition = "attribute_exists(pk) AND "
        values: dict[str, Any] = {}
        if expected_next is None:
            condition += "attribute_not_exists(next_fire_at)"
        else:
            condition += "next_fire_at = :expected"
            values[":expected"] = {"N": str(expected_next)}
        if expected_updated is not None:
            condition += " AND updated_at = :seen"
            values[":seen"] = {"N": str(expected_updated)}
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": _to_item(schedule),
            "ConditionExpression": condition,
        }
        if values:
            put["ExpressionAttributeValues"] = values
        try:
            if entry is None:
                self.client.put_item(**put)
            else:
                self.client.transact_write_items(
                    TransactItems=cast(Any, [{"Put": put}, self._wheel.put_request(entry)])
                )
        except ClientError as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                return False
            raise translate(exc, "updating the schedule") from exc
        return True

    def delete(self, tenant: str, schedule_id: str) -> bool:
        return (
            unless_refused(
                "deleting the schedule",
                self.client.delete_item,
                TableName=self._table,
                Key=self._key(tenant, schedule_id),
                ConditionExpression="attribute_exists(pk)",
            )
            is not None
        )
