"""Circuit-breaker records in the control table (``pk = "breaker#<target key>"``), versioned so
that concurrent workers never overwrite each other's move (a lost race re-reads, or is let go)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.breaker import Breaker, BreakerState

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class BreakerStore(AwsClient["DynamoDBClient"]):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    def get(self, key: str) -> Breaker:
        try:
            item = self.client.get_item(TableName=self._table, Key={"pk": {"S": f"breaker#{key}"}}).get(
                "Item"
            )
        except ClientError as exc:
            raise translate(exc, "reading the circuit breaker") from exc
        if not item:
            return Breaker(key=key)
        return Breaker(
            key=key,
            state=BreakerState(item["state"]["S"]),
            failures=int(item["failures"]["N"]),
            opened_at=int(item["opened_at"]["N"]),
            probe_at=int(item["probe_at"]["N"]),
            version=int(item["version"]["N"]),
        )

    def replace(self, old: Breaker, new: Breaker) -> bool:
        """Write ``new`` if the record is still at ``old.version``; False on a lost race."""
        item = {
            "pk": {"S": f"breaker#{new.key}"},
            "state": {"S": new.state.value},
            "failures": {"N": str(new.failures)},
            "opened_at": {"N": str(new.opened_at)},
            "probe_at": {"N": str(new.probe_at)},
            "version": {"N": str(new.version)},
        }
        try:
            self.client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR version = :v",
                ExpressionAttributeValues={":v": {"N": str(old.version)}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, "updating the circuit breaker") from exc
        return True
