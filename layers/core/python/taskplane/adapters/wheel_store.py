"""The timing wheel in DynamoDB: slot entries, and one control item per shard holding its lease and cursor.

Entries expire through TTL (deletes by TTL are free) a week after they are due; the cursor, not a
delete, is what keeps a tick from reading an entry twice.

Entries written together (a batch of tasks) that share a shard, a due second, a tenant, a kind, a
lane and an attempt are stored in one item: the first as the item's own key and attributes, the
others as sort keys in its ``more`` list. One write (one WRU up to 1 KB) then schedules up to
``MAX_SHARED`` tasks instead of one. A reader gets every entry back, each naming the item it came
from (``WheelEntry.item``), so a tick skips and resumes from the item as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.batch import batch_put
from taskplane.adapters.errors import error_code, translate, unless_refused
from taskplane.domain.wheel import SLOT_MS as SLOT_WIDTH
from taskplane.domain.wheel import WheelEntry, group_key, partition, slot_of, sort_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ENTRY_TTL_S = 7 * 24 * 3600
#: Most entries one wheel item holds: each extra one is a ~41-byte sort key in ``more``, so an item of
#: 20 stays under the 1 KB of one write unit with room for a long tenant name.
MAX_SHARED = 20
#: An item is cut before it grows past this many bytes (DynamoDB's size rules), whatever MAX_SHARED.
MAX_ITEM_BYTES = 1_000
#: A window read whose caller has taken at least this many items reads sort keys first (WheelStore.load):
#: botocore spends ~17 us of CPU parsing a whole item and ~4 us its key alone, and ~0.3 ms a request
#: (bench/tick_reads.py over moto on a shared machine), so the second request pays for itself from
#: about 25 items re-read; 64 keeps a quiet shard (a million tasks a day) at one request a poll.
KEYS_FIRST_MIN = 64
#: After a keys-first read, at most this many spans of new items are read each on its own; more are
#: read as one span from the first to the last (the taken items inside it are skipped undecoded).
MAX_SPANS = 3


@dataclass(frozen=True)
class Lease:
    shard: int
    owner: str
    until_ms: int
    resume_slot: int | None
    resume_sk: str
    #: when the holder means to stop (its span's end), so a newcomer knows whether it is covered
    runs_until: int | None = None
    #: how late the holder sent its entries (p99 ms over its last second of sends) and when it said so
    #: (services/ring.py lowers the weight of a shard that lags)
    lag_ms: int | None = None
    lag_at: int | None = None

    def alive(self, now_ms: int) -> bool:
        return self.until_ms >= now_ms


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
        """Write entries 25 items per BatchWriteItem, entries that can share an item in one (see the
        module's docstring); one outcome per entry, in order (None = written)."""
        groups = self._groups(entries)
        items = [self._item(group[0][1], [e for _, e in group[1:]]) for group in groups]
        written = batch_put(
            self.client,
            self._table,
            items,
            lambda item: (item["pk"]["S"], item["sk"]["S"]),
            "scheduling the task",
        )
        outcomes: list[Exception | None] = [None] * len(entries)
        for group, err in zip(groups, written, strict=True):
            for index, _ in group:
                outcomes[index] = err
        return outcomes

    @staticmethod
    def _groups(entries: list[WheelEntry]) -> list[list[tuple[int, WheelEntry]]]:
        """Entries (with their index) in items: by group key, earliest first, cut by count and size."""
        by_key: dict[tuple[int, int, str, str, str, int], list[tuple[int, WheelEntry]]] = {}
        for index, entry in enumerate(entries):
            by_key.setdefault(group_key(entry), []).append((index, entry))
        groups: list[list[tuple[int, WheelEntry]]] = []
        for members in by_key.values():
            members.sort(key=lambda m: (m[1].due_ms, m[1].item_id))
            current: list[tuple[int, WheelEntry]] = []
            size = 0
            for member in members:
                extra = len(member[1].sk) + 1
                if current and (len(current) >= MAX_SHARED or size + extra > MAX_ITEM_BYTES):
                    groups.append(current)
                    current = []
                if not current:
                    head = member[1]
                    size = 160 + len(head.tenant.encode()) + len(head.sk)  # key, attributes, names
                else:
                    size += extra
                current.append(member)
            groups.append(current)
        return groups

    def put_request(self, entry: WheelEntry) -> dict[str, Any]:
        """The entry as one element of a TransactWriteItems call."""
        return {"Put": {"TableName": self._table, "Item": self._item(entry)}}

    def _item(self, entry: WheelEntry, more: list[WheelEntry] | None = None) -> dict[str, Any]:
        last_due = max([entry.due_ms, *(e.due_ms for e in more or [])])
        item: dict[str, Any] = {
            "pk": {"S": partition(entry.shard, entry.slot_ms)},
            "sk": {"S": entry.sk},
            "tenant": {"S": entry.tenant},
            "kind": {"S": entry.kind},
            "lane": {"S": entry.lane},
            "attempt": {"N": str(entry.attempt)},
            "expires_at": {"N": str(last_due // 1000 + ENTRY_TTL_S)},
        }
        if more:
            item["more"] = {"L": [{"S": e.sk} for e in more]}
        return item

    def load(
        self,
        shard: int,
        slot_ms: int,
        from_sk: str,
        upto_sk: str | None,
        skip: Collection[tuple[int, str]] = (),
    ) -> list[WheelEntry]:
        """Entries of one slot with ``from_sk <= sk`` (and ``sk <= upto_sk``), in due order; an item
        in the range comes whole (entries sharing it may lie a little beyond ``upto_sk``). Items whose
        key (slot, sort key) is in ``skip`` are left out: a tick re-reads its whole window every poll
        and has already taken most of it.

        With at least ``KEYS_FIRST_MIN`` items taken, the range is read for its sort keys alone first
        (DynamoDB bills the same units for it; botocore parses one attribute of each) and only the
        spans holding items not taken are read whole: one request more when anything is new, and
        none of the taken items parsed again."""
        if len(skip) < KEYS_FIRST_MIN:
            entries = [
                e
                for item in self._query(shard, slot_ms, from_sk, upto_sk)
                if (slot_ms, item["sk"]["S"]) not in skip
                for e in self._entries(shard, item)
            ]
        else:
            keys = [item["sk"]["S"] for item in self._query(shard, slot_ms, from_sk, upto_sk, keys_only=True)]
            entries = [
                e
                for lo, hi in new_spans(keys, lambda sk: (slot_ms, sk) in skip)
                for item in self._query(shard, slot_ms, lo, hi)
                if (slot_ms, item["sk"]["S"]) not in skip
                for e in self._entries(shard, item)
            ]
        # Items come in the order of their first entries; a shared item's others interleave.
        entries.sort(key=lambda e: e.sk)
        return entries

    def _query(
        self, shard: int, slot_ms: int, from_sk: str, upto_sk: str | None, *, keys_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        """The stored items of one slot in the range, page by page (only their sort keys: ``keys_only``)."""
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
        if keys_only:
            names["#sk"] = "sk"
            kwargs["ProjectionExpression"] = "#sk"
        while True:
            try:
                resp = self.client.query(**kwargs)
            except ClientError as exc:
                raise translate(exc, "reading the wheel") from exc
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    @staticmethod
    def _entries(shard: int, item: dict[str, Any]) -> list[WheelEntry]:
        """The entries one stored item holds: its own, then those it shares (``more``)."""
        head_sk = item["sk"]["S"]
        due, item_id = head_sk.split("#", 1)
        tenant = item["tenant"]["S"]
        kind = item["kind"]["S"] if "kind" in item else "task"
        lane = item["lane"]["S"] if "lane" in item else "default"
        attempt = int(item["attempt"]["N"]) if "attempt" in item else 1
        shared = item["more"]["L"] if "more" in item else None
        if not shared:
            return [WheelEntry(shard, int(due), item_id, tenant, kind, lane, attempt)]
        key = (slot_of(int(due)), head_sk)
        entries = [WheelEntry(shard, int(due), item_id, tenant, kind, lane, attempt, key)]
        for value in shared:
            due, item_id = value["S"].split("#", 1)
            entries.append(WheelEntry(shard, int(due), item_id, tenant, kind, lane, attempt, key))
        return entries

    # -- lease and cursor ------------------------------------------------------------------------
    def any_due(
        self, shard: int, start: tuple[int, str], horizon_ms: int, *, consistent: bool = False
    ) -> bool:
        """Whether any entry lies from ``start`` (slot, sort key; inclusive) up to ``horizon_ms``: one
        Query of at most one item per slot, stopping at the first found."""
        first_slot, first_sk = start
        last_slot = slot_of(horizon_ms)
        for slot in range(first_slot, last_slot + SLOT_WIDTH, SLOT_WIDTH):
            names = {"#pk": "pk", "#sk": "sk"}
            values: dict[str, Any] = {
                ":pk": {"S": partition(shard, slot)},
                ":upto": {"S": upto_key(horizon_ms)},
            }
            cond = "#pk = :pk AND #sk <= :upto"
            if slot == first_slot and first_sk:
                values[":from"] = {"S": first_sk}
                cond = "#pk = :pk AND #sk BETWEEN :from AND :upto"
            try:
                resp = self.client.query(
                    TableName=self._table,
                    KeyConditionExpression=cond,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    Limit=1,
                    ConsistentRead=consistent,
                )
            except ClientError as exc:
                raise translate(exc, "reading the wheel") from exc
            if resp.get("Items"):
                return True
        return False

    def acquire(
        self, shard: int, owner: str, now_ms: int, ttl_ms: int, runs_until: int | None = None
    ) -> Lease | None:
        """Take the shard's lease if it is free, expired or already ours; None when another tick holds it.
        ``runs_until`` says when this holder means to stop (newcomers before then need not wait)."""
        try:
            resp = self.client.update_item(
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression="SET #owner = :me, lease_until = :until, runs_until = :runs",
                # (a shard only checked so far has a resume point but no lease yet)
                ConditionExpression=(
                    "attribute_not_exists(pk) OR attribute_not_exists(lease_until) OR lease_until < :now"
                    " OR #owner = :me"
                ),
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={
                    ":me": {"S": owner},
                    ":until": {"N": str(now_ms + ttl_ms)},
                    ":now": {"N": str(now_ms)},
                    ":runs": {"N": str(runs_until if runs_until is not None else now_ms + ttl_ms)},
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

    def save(
        self,
        shard: int,
        owner: str,
        now_ms: int,
        ttl_ms: int,
        resume: tuple[int, str],
        lag_ms: int | None = None,
    ) -> bool:
        """Record the resume point (and the lag measured since the last save, when given) and extend
        the lease; False when the lease is no longer ours."""
        update = "SET lease_until = :until, resume_slot = :slot, resume_sk = :sk"
        values: dict[str, Any] = {
            ":me": {"S": owner},
            ":now": {"N": str(now_ms)},
            ":until": {"N": str(now_ms + ttl_ms)},
            ":slot": {"N": str(resume[0])},
            ":sk": {"S": resume[1]},
        }
        if lag_ms is not None:
            update += ", lag_ms = :lag, lag_at = :now"
            values[":lag"] = {"N": str(lag_ms)}
        return (
            unless_refused(
                "saving the wheel cursor",
                self.client.update_item,
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression=update,
                ConditionExpression="#owner = :me AND lease_until >= :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def advance_idle(self, shard: int, now_ms: int, resume: tuple[int, str]) -> bool:
        """Move the resume point of a shard no tick holds to ``resume`` (a check found nothing due
        behind it), so the next check reads from there; False when a tick holds the lease."""
        return (
            unless_refused(
                "saving the wheel cursor",
                self.client.update_item,
                TableName=self._control,
                Key=_lease_key(shard),
                UpdateExpression="SET resume_slot = :slot, resume_sk = :sk",
                ConditionExpression="attribute_not_exists(pk) OR attribute_not_exists(lease_until) OR lease_until < :now",
                ExpressionAttributeValues={
                    ":now": {"N": str(now_ms)},
                    ":slot": {"N": str(resume[0])},
                    ":sk": {"S": resume[1]},
                },
            )
            is not None
        )

    def release(self, shard: int, owner: str) -> None:
        """Give the lease up so the next tick can take over at once (no-op if it is not ours)."""
        unless_refused(
            "releasing the wheel lease",
            self.client.update_item,
            TableName=self._control,
            Key=_lease_key(shard),
            UpdateExpression="SET lease_until = :zero",
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": owner}, ":zero": {"N": "0"}},
        )

    @staticmethod
    def _lease(shard: int, item: dict[str, Any]) -> Lease:
        return Lease(
            shard=shard,
            owner=item.get("owner", {}).get("S", ""),
            until_ms=int(item.get("lease_until", {}).get("N", "0")),
            resume_slot=int(item["resume_slot"]["N"]) if "resume_slot" in item else None,
            resume_sk=item.get("resume_sk", {}).get("S", ""),
            runs_until=int(item["runs_until"]["N"]) if "runs_until" in item else None,
            lag_ms=int(item["lag_ms"]["N"]) if "lag_ms" in item else None,
            lag_at=int(item["lag_at"]["N"]) if "lag_at" in item else None,
        )


def new_spans(keys: list[str], taken: Callable[[str], bool]) -> list[tuple[str, str]]:
    """The (first, last) sort keys of each run of ``keys`` (in order) not ``taken``, at most MAX_SPANS of
    them (more become one span from the first new key to the last)."""
    spans: list[tuple[str, str]] = []
    run_start: str | None = None
    last = ""
    for sk in keys:
        if taken(sk):
            if run_start is not None:
                spans.append((run_start, last))
                run_start = None
        else:
            if run_start is None:
                run_start = sk
            last = sk
    if run_start is not None:
        spans.append((run_start, last))
    if len(spans) > MAX_SPANS:
        return [(spans[0][0], spans[-1][1])]
    return spans


def upto_key(due_ms: int) -> str:
    """The largest sort key with this due time (ids are base32, all below '~')."""
    return sort_key(due_ms, "~")
