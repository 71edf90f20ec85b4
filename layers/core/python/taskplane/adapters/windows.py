"""Windows of windowed triggers in DynamoDB (the tasks table, whose TTL removes them after retention).

Items, all under the tenant's own partitions (a window's key space is per tenant and per trigger):

- ``pk = <tenant>#win#<trigger>``, ``sk = k#<key digest>``: which window is open for a key;
- ``pk = <tenant>#win#<trigger>``, ``sk = d#<event id>[#<pattern>]``: an event already counted;
- ``pk = <tenant>#win#<trigger>#<window>``, ``sk = head``: the window (state, count, bytes, ends);
- ``pk = <tenant>#win#<trigger>#<window>``, ``sk = e#<event id>``: an event it holds (a debounce
  keeps one, ``sk = e#last``).

An event is taken in one transaction: its ``d#`` item written only if absent (a redelivered event is
counted once), its ``e#`` item, and the head's count and bytes, on the condition that the window is
still open, not past its end, and has room. Task partitions are ``<tenant>#<n>`` and dead letters
``<tenant>#dead``: none of them starts with ``<tenant>#win#``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate, unless_refused
from taskplane.domain.windows import Collected, WindowHead

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Taken = Literal["taken", "duplicate", "refused"]


def _trigger_pk(tenant: str, trigger_id: str) -> str:
    return f"{tenant}#win#{trigger_id}"


def _window_pk(tenant: str, trigger_id: str, window_id: str) -> str:
    return f"{tenant}#win#{trigger_id}#{window_id}"


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


class WindowStore(AwsClient["DynamoDBClient"]):
    def __init__(self, table: str, client: DynamoDBClient | None = None, *, session: Any = None) -> None:
        self._table = table
        super().__init__("dynamodb", client, session=session)

    # -- reading ------------------------------------------------------------------------------------
    def current(self, tenant: str, trigger_id: str, digest: str) -> str | None:
        """The id of the window last opened for a key (open or not), or None."""
        item = self._get(_trigger_pk(tenant, trigger_id), f"k#{digest}", "reading the window's key")
        return item["window_id"]["S"] if item else None

    def head(self, tenant: str, trigger_id: str, window_id: str) -> WindowHead | None:
        item = self._get(_window_pk(tenant, trigger_id, window_id), "head", "reading the window")
        if item is None:
            return None
        return WindowHead(
            window_id=window_id,
            key=item["key"]["S"],
            opened_at=int(item["opened_at"]["N"]),
            closes_at=int(item["closes_at"]["N"]),
            count=int(item["count"]["N"]),
            bytes=int(item["bytes"]["N"]),
            matched=frozenset(int(m) for m in item.get("matched", {}).get("NS", [])),
            last_at=int(item.get("last_at", {}).get("N", "0")),
            state=item["state"]["S"],
            reason=item.get("reason", {}).get("S"),
            task_id=item.get("task_id", {}).get("S"),
        )

    def seen(self, tenant: str, trigger_id: str, dedup: str) -> bool:
        """Whether the trigger counted this event already."""
        return (
            self._get(_trigger_pk(tenant, trigger_id), f"d#{dedup}", "reading the event's mark") is not None
        )

    def events(self, tenant: str, trigger_id: str, window_id: str) -> list[Collected]:
        """Every event the window holds (a consistent read, after its close sealed it)."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :e)",
            "ExpressionAttributeValues": {
                ":p": {"S": _window_pk(tenant, trigger_id, window_id)},
                ":e": {"S": "e#"},
            },
            "ConsistentRead": True,
        }
        found: list[Collected] = []
        while True:
            try:
                resp = self.client.query(**kwargs)
            except ClientError as exc:
                raise translate(exc, "reading the window's events") from exc
            for item in resp.get("Items", []):
                found.append(
                    Collected(
                        at=int(item["at"]["N"]),
                        event_id=item["event_id"]["S"],
                        event=json.loads(item["doc"]["S"]),
                        patterns=frozenset(int(p) for p in item.get("patterns", {}).get("NS", [])),
                    )
                )
            if "LastEvaluatedKey" not in resp:
                return found
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- writing ------------------------------------------------------------------------------------
    def open(
        self,
        tenant: str,
        trigger_id: str,
        digest: str,
        head: WindowHead,
        previous: str | None,
        expires_at: int,
    ) -> bool:
        """Open ``head`` as the key's window, if the key's window is still ``previous`` (None: none
        yet); False when another event opened one first."""
        pointer: dict[str, Any] = {
            "pk": {"S": _trigger_pk(tenant, trigger_id)},
            "sk": {"S": f"k#{digest}"},
            "window_id": {"S": head.window_id},
            "expires_at": _n(expires_at),
        }
        swap: dict[str, Any] = {"TableName": self._table, "Item": pointer}
        if previous is None:
            swap["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            swap["ConditionExpression"] = "window_id = :prev"
            swap["ExpressionAttributeValues"] = {":prev": {"S": previous}}
        item = {
            "pk": {"S": _window_pk(tenant, trigger_id, head.window_id)},
            "sk": {"S": "head"},
            "key": {"S": head.key},
            "opened_at": _n(head.opened_at),
            "closes_at": _n(head.closes_at),
            "count": _n(0),
            "bytes": _n(0),
            "last_at": _n(head.opened_at),
            "state": {"S": "OPEN"},
            "expires_at": _n(expires_at),
        }
        return (
            self._transact(
                [
                    {"Put": swap},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ],
                "opening the window",
            )
            == "taken"
        )

    def take(
        self,
        tenant: str,
        trigger_id: str,
        head: WindowHead,
        *,
        dedup: str,
        event_id: str,
        doc: str,
        size: int,
        now_ms: int,
        max_count: int,
        room: int,
        pattern: int | None,
        closes_at: int | None,
        only: bool,
        expires_at: int,
    ) -> Taken:
        """Take one event into the open window ``head`` (see the module's docstring).

        ``closes_at``: the window's new end (a debounce's); ``only``: the window keeps just this event
        (a debounce's last). "duplicate": the event was counted before (by any window of the trigger);
        "refused": the window is no longer open, past its end, or full (nothing was written).
        """
        trigger_pk = _trigger_pk(tenant, trigger_id)
        window_pk = _window_pk(tenant, trigger_id, head.window_id)
        mark = {
            "pk": {"S": trigger_pk},
            "sk": {"S": f"d#{dedup}"},
            "window_id": {"S": head.window_id},
            "expires_at": _n(expires_at),
        }
        event: dict[str, Any] = {
            "pk": {"S": window_pk},
            "sk": {"S": "e#last" if only else f"e#{event_id}"},
            "event_id": {"S": event_id},
            "at": _n(now_ms),
            "doc": {"S": doc},
            "expires_at": _n(expires_at),
        }
        names = {"#c": "count", "#b": "bytes", "#s": "state"}
        values: dict[str, Any] = {
            ":one": _n(1),
            ":size": _n(size),
            ":open": {"S": "OPEN"},
            ":now": _n(now_ms),
            ":max": _n(max_count),
            ":room": _n(max(room - size, -1)),
            ":zero": _n(0),
        }
        sets = ["#c = #c + :one", "last_at = :now"]
        sets.append("#b = :size" if only else "#b = #b + :size")
        adds = ""
        stored: dict[str, Any] = {"Put": {"TableName": self._table, "Item": event}}
        if pattern is not None:
            values[":p"] = {"NS": [str(pattern)]}
            adds = " ADD matched :p"
            # An event that matches two patterns arrives once per pattern: one item, both patterns.
            stored = {
                "Update": {
                    "TableName": self._table,
                    "Key": {"pk": event["pk"], "sk": event["sk"]},
                    "UpdateExpression": "SET event_id = :id, doc = :doc, expires_at = :exp, "
                    "#at = if_not_exists(#at, :now) ADD patterns :p",
                    "ExpressionAttributeNames": {"#at": "at"},
                    "ExpressionAttributeValues": {
                        ":id": event["event_id"],
                        ":doc": event["doc"],
                        ":exp": event["expires_at"],
                        ":now": event["at"],
                        ":p": {"NS": [str(pattern)]},
                    },
                }
            }
        if closes_at is not None:
            sets.append("closes_at = :end")
            values[":end"] = _n(closes_at)
        condition = "#s = :open AND closes_at > :now AND #c < :max"
        if not only:
            condition += " AND (#c = :zero OR #b <= :room)"
        update = {
            "TableName": self._table,
            "Key": {"pk": {"S": window_pk}, "sk": {"S": "head"}},
            "UpdateExpression": "SET " + ", ".join(sets) + adds,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        items = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": mark,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            stored,
            {"Update": update},
        ]
        return self._transact(items, "taking the event into its window")

    def seal(
        self, tenant: str, trigger_id: str, window_id: str, reason: str, now_ms: int
    ) -> WindowHead | None:
        """OPEN -> CLOSING with ``reason`` (no event is taken after); the head as it then is, also
        when it was already CLOSING or CLOSED (a close tried again), None when there is none."""
        unless_refused(
            "closing the window",
            self.client.update_item,
            TableName=self._table,
            Key={"pk": {"S": _window_pk(tenant, trigger_id, window_id)}, "sk": {"S": "head"}},
            UpdateExpression="SET #s = :closing, reason = :r, sealed_at = :now",
            ConditionExpression="#s = :open",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":closing": {"S": "CLOSING"},
                ":open": {"S": "OPEN"},
                ":r": {"S": reason},
                ":now": _n(now_ms),
            },
        )
        return self.head(tenant, trigger_id, window_id)

    def finish(self, tenant: str, trigger_id: str, window_id: str, task_id: str | None) -> None:
        """CLOSING -> CLOSED, naming the task it started (if any)."""
        values: dict[str, Any] = {":closed": {"S": "CLOSED"}, ":closing": {"S": "CLOSING"}}
        expression = "SET #s = :closed"
        if task_id is not None:
            expression += ", task_id = :t"
            values[":t"] = {"S": task_id}
        unless_refused(
            "closing the window",
            self.client.update_item,
            TableName=self._table,
            Key={"pk": {"S": _window_pk(tenant, trigger_id, window_id)}, "sk": {"S": "head"}},
            UpdateExpression=expression,
            ConditionExpression="#s = :closing",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=values,
        )

    # -- helpers ------------------------------------------------------------------------------------
    def _get(self, pk: str, sk: str, what: str) -> dict[str, Any] | None:
        try:
            item = self.client.get_item(
                TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            ).get("Item")
        except ClientError as exc:
            raise translate(exc, what) from exc
        return dict(item) if item else None

    def _transact(self, items: list[dict[str, Any]], what: str) -> Taken:
        try:
            self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise translate(exc, what) from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if any(code not in (None, "None", "ConditionalCheckFailed") for code in reasons):
                raise translate(exc, what) from exc  # a conflict with another transaction: retried
            # The first item is the event's mark (take) or the key's window (open).
            return "duplicate" if reasons and reasons[0] == "ConditionalCheckFailed" else "refused"
        except BotoCoreError as exc:
            raise translate(exc, what) from exc
        return "taken"
