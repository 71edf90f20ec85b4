"""The timing wheel in DynamoDB: slot entries, and one control item per shard holding its lease and cursor.

Entries expire through TTL (deletes by TTL are free) a week after they are due; the cursor, not a
delete, is what keeps a tick from reading an entry twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.batch import batch_put
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.wheel import WheelEntry, partition, sort_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ENTRY_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Lease:
    shard: int
    owner: str
    until_ms: int
    resume_slot: int | None
    resume_sk: str


def _lease_key(shard: int) -> dict[str, Any]:
    return {"pk": {"S": f"wheel#{shard}"}}


class WheelStore(AwsClient["DynamoDBClient"]):
    def __init__(
        self, table: str, control_table: str, client: DynamoDBClient | None = None, *, session: Any = None
    ) -> None:
        self._table = table
        self._control = control_table
        super().__init__("dynamodb", client, session=session)

    # -- entries ---------------------------------------------------------------------------------
    def put(self, entry: WheelEntry) -> None:
        """Write an entry; writing the same (shard, due, id) again overwrites it (idempotent)."""
        try:
            self.client.put_item(TableName=self._table, Item=self._item(entry))
        except ClientError as exc:
            raise translate(exc, "scheduling the task") from exc

    def delete(self, entry: WheelEntry) -> None:
        """Remove an entry that is no longer needed (a finished attempt's watch); absent is fine."""
        item = self._item(entry)
        try:
            self.client.delete_item(TableName=self._table, Key={"pk": item["pk"], "sk": item["sk"]})
        except ClientError as exc:
            raise translate(exc, "unscheduling the watch") from exc

    def put_many(self, entries: list[WheelEntry]) -> list[Exception | None]:
        """Write entries 25 per BatchWriteItem; one outcome per entry, in order (None = written)."""
        items = [self._item(e) for e in entries]
        return batch_put(
            self.client,
            self._table,
            items,
            lambda item: (item["pk"]["S"], item["sk"]["S"]),
            "scheduling the task",
        )

    def put_request(self, entry: WheelEntry) -> dict[str, Any]:
        """The entry as one element of a TransactWriteItems call."""
        return {"Put": {"TableName": self._table, "Item": self._item(entry)}}

    def _item(self, entry: WheelEntry) -> dict[str, Any]:
        return {
            "pk": {"S": partition(entry.shard, entry.slot_ms)},
            "sk": {"S": entry.sk},
            "tenant": {"S": entry.tenant},
            "kind": {"S": entry.kind},
            "lane": {"S": entry.lane},
            "attempt": {"N": str(entry.attempt)},
            "expires_at": {"N": str(entry.due_ms // 1000 + ENTRY_TTL_S)},
        }

    def load(self, shard: int, slot_ms: int, from_sk: str, upto_sk: str | None) -> list[WheelEntry]:
        """Entries of one slot with ``from_sk <= sk`` (and ``sk <= upto_sk``), in due order."""
        names = {"#pk": "pk"}
        values: dict[str, Any] = {":pk": {"S": partition(shard, slot_ms)}}
        cond = "#pk = :pk"
        # DynamoDB refuses empty strings as key values: an empty bound means "from the start".
        if from_sk and upto_sk is not None:
            names["#sk"] = "sk"
            values.update({":from": {"S": from_sk}, ":upto": {"S": upto_sk}})
            cond += " AND #sk BETWEEN :from AND :upto"
        elif from_sk:
            names["#sk"] = "sk"
            values[":from"] = {"S": from_sk}
            cond += " AND #sk >= :from"
        elif upto_sk is not None:
            names["#sk"] = "sk"
            values[":upto"] = {"S": upto_sk}
            cond += " AND #sk <= :upto"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        entries: list[WheelEntry] = []
        while True:
            try:
                resp = self.client.query(**kwargs)
            except ClientError as exc:
                raise translate(exc, "reading the wheel") from exc
            for item in resp.get("Items", []):
                due, item_id = item["sk"]["S"].split("#", 1)
                entries.append(
                    WheelEntry(
                        shard=shard,
                        due_ms=int(due),
                        item_id=item_id,
                        tenant=item["tenant"]["S"],
                        kind=item.get("kind", {}).get("S", "task"),
                        lane=item.get("lane", {}).get("S", "default"),
                        attempt=int(item.get("attempt", {}).get("N", "1")),
                    )
                )
            if "LastEvaluatedKey" not in resp:
                return entries
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- lease and cursor ------------------------------------------------------------------------
    def acquire(self, shard: int, owner: str, now_ms: int, ttl_ms: int) -> Lease | None:
        """Take the shard's lease if it is free, expired or already ours; None when another tick holds it."""
        try:
            resp = self.client.update_item(
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression="SET #owner = :me, lease_until = :until",
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now OR #owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":until": {"N": str(now_ms + ttl_ms)},
                    ":now": {"N": str(now_ms)},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise translate(exc, "taking the wheel lease") from exc
        return self._lease(shard, resp["Attributes"])

    def peek(self, shard: int) -> Lease | None:
        try:
            item = self.client.get_item(
                TableName=self._control, Key=_lease_key(shard), ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise translate(exc, "reading the wheel lease") from exc
        return self._lease(shard, item) if item else None

    def save(self, shard: int, owner: str, now_ms: int, ttl_ms: int, resume: tuple[int, str]) -> bool:
        """Record the resume point and extend the lease; False when the lease is no longer ours."""
        try:
            self.client.update_item(
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression="SET lease_until = :until, resume_slot = :slot, resume_sk = :sk",
                ConditionExpression="#owner = :me AND lease_until >= :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":now": {"N": str(now_ms)},
                    ":until": {"N": str(now_ms + ttl_ms)},
                    ":slot": {"N": str(resume[0])},
                    ":sk": {"S": resume[1]},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, "saving the wheel cursor") from exc
        return True

    def release(self, shard: int, owner: str) -> None:
        """Give the lease up so the next tick can take over at once (no-op if it is not ours)."""
        try:
            self.client.update_item(
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": owner}, ":zero": {"N": "0"}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise translate(exc, "releasing the wheel lease") from exc

    @staticmethod
    def _lease(shard: int, item: dict[str, Any]) -> Lease:
        return Lease(
            shard=shard,
            owner=item.get("owner", {}).get("S", ""),
            until_ms=int(item.get("lease_until", {}).get("N", "0")),
            resume_slot=int(item["resume_slot"]["N"]) if "resume_slot" in item else None,
            resume_sk=item.get("resume_sk", {}).get("S", ""),
        )


def upto_key(due_ms: int) -> str:
    """The largest sort key with this due time (ids are base32, all below '~')."""
    return sort_key(due_ms, "~")
