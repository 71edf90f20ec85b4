"""Circuit-breaker records in the control table (``pk = "breaker#<tenant>#<target key>"``).

One item per tenant and target holds the state (versioned: a change of state is a conditional write
on the version it was computed from) and the sliding window: one number per second,
``b<epoch second> = calls + errors * ERROR_UNIT``, bumped with ``ADD``, and ``ct`` the timeouts in a
row. A worker writes its delivery batch's calls through one breaker in one such write (ReturnValues
giving the new window back for the trip check): ``ADD`` keeps every worker's counts when two write at
once. The item stays under 1 KB (at most 31 buckets: a write that sees older ones removes them), so
each such write is one write unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate
from taskplane.domain.breaker import Breaker, BreakerState, Tally

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

#: A bucket's number counts calls in its low digits and errors in multiples of this.
ERROR_UNIT = 1_000_000


def _key(key: str) -> dict[str, Any]:
    return {"pk": {"S": f"breaker#{key}"}}


def breaker_from_item(key: str, item: dict[str, Any] | None) -> Breaker:
    if not item:
        return Breaker(key=key)
    buckets: dict[int, tuple[int, int]] = {}
    for name, value in item.items():
        if name.startswith("b") and name[1:].isdigit():
            n = int(value["N"])
            buckets[int(name[1:])] = (n % ERROR_UNIT, n // ERROR_UNIT)

    def num(name: str) -> int:
        return int(item[name]["N"]) if name in item else 0

    return Breaker(
        key=key,
        state=BreakerState(item["state"]["S"]) if "state" in item else BreakerState.CLOSED,
        opened_at=num("opened_at"),
        probe_at=num("probe_at"),
        version=num("version"),
        since_s=num("since_s"),
        timeouts=num("ct"),
        buckets=buckets,
        reason=item.get("reason", {}).get("S", ""),
    )


class BreakerStore(AwsClient["DynamoDBClient"]):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    def get(self, key: str) -> Breaker:
        try:
            item = self.client.get_item(TableName=self._table, Key=_key(key)).get("Item")
        except ClientError as exc:
            raise translate(exc, "reading the circuit breaker") from exc
        return breaker_from_item(key, item)

    def count(self, key: str, tally: Tally, stale: list[int]) -> Breaker:
        """Add a batch's calls to their seconds' buckets and the timeout run, in one write. ``stale``
        buckets (seen by the caller's read, out of every window) are removed in passing."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        add = []
        for i, (second, (calls, errors)) in enumerate(sorted(tally.buckets.items())):
            names[f"#b{i}"] = f"b{second}"
            values[f":b{i}"] = {"N": str(calls + errors * ERROR_UNIT)}
            add.append(f"#b{i} :b{i}")
        sets = []
        if tally.answered:  # an answer ended the stored run: it restarts from the batch's trailing one
            sets.append("ct = :ct")
            values[":ct"] = {"N": str(tally.timeouts)}
        elif tally.timeouts:
            add.append("ct :ct")
            values[":ct"] = {"N": str(tally.timeouts)}
        parts = ["ADD " + ", ".join(add)]
        if sets:
            parts.append("SET " + ", ".join(sets))
        stale = [s for s in stale if s not in tally.buckets]
        if stale:
            for i, s in enumerate(stale):
                names[f"#s{i}"] = f"b{s}"
            parts.append("REMOVE " + ", ".join(f"#s{i}" for i in range(len(stale))))
        if not tally.buckets:  # nothing counted (a tally always has a call when it has a timeout)
            return self.get(key)
        try:
            resp = self.client.update_item(
                TableName=self._table,
                Key=_key(key),
                UpdateExpression=" ".join(parts),
                ExpressionAttributeValues=values,
                ExpressionAttributeNames=names,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            raise translate(exc, "counting calls in the circuit breaker") from exc
        return breaker_from_item(key, resp.get("Attributes"))

    def replace(self, old: Breaker, new: Breaker) -> bool:
        """Change the state to ``new``'s if the record is still at ``old.version``; False on a lost race.
        The window's buckets are left as they are (counting writes go on meanwhile)."""
        values = {
            ":state": {"S": new.state.value},
            ":opened": {"N": str(new.opened_at)},
            ":probe": {"N": str(new.probe_at)},
            ":version": {"N": str(new.version)},
            ":since": {"N": str(new.since_s)},
            ":ct": {"N": str(new.timeouts)},
            ":reason": {"S": new.reason},
            ":old": {"N": str(old.version)},
        }
        try:
            self.client.update_item(
                TableName=self._table,
                Key=_key(new.key),
                UpdateExpression=(
                    "SET #state = :state, opened_at = :opened, probe_at = :probe, version = :version, "
                    "since_s = :since, ct = :ct, reason = :reason"
                ),
                ConditionExpression="attribute_not_exists(version) OR version = :old",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, "updating the circuit breaker") from exc
        return True
