"""DynamoDB task store.

Item layout (one table, no index): partition key ``pk = "<tenant>#<bucket>"``, sort key ``sk = task_id``.
Task ids are time-ordered, so a tenant's tasks come back newest first with ``ScanIndexForward=False``
and the pagination cursor is simply the last task id seen. ``bucket`` is derived from the id's random
part, so a get needs no lookup; more buckets spread a busy tenant over more partitions (the count is
fixed for the life of the table). Payloads and results are kept as JSON strings so that every JSON
value round-trips exactly (DynamoDB has no floats and no empty sets).
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.batch import batch_put
from taskplane.adapters.dynamo_codec import deserialize_value, serialize_value, utf8_json
from taskplane.adapters.errors import error_code, translate, unless_refused
from taskplane.domain.adaptive import AutoTimeout
from taskplane.domain.blobs import BlobRef
from taskplane.domain.models import HistoryEntry, Task, TaskErrorInfo
from taskplane.domain.retry import RetryPolicy
from taskplane.domain.states import TaskState, check_path
from taskplane.tracing import NULL_TRACING, Tracing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


#: Fields a transition may set besides state and history.
SETTABLE = frozenset(
    {
        "dispatched_at",
        "started_at",
        "finished_at",
        "next_attempt_at",
        "result",
        "result_ref",
        "error",
        "expires_at",
        "run_at",
        "fallback",
    }
)


@dataclass(frozen=True)
class TransitionResult:
    """Outcome of a conditional move: ``ok`` False is a lost race, with the current task if it exists."""

    ok: bool
    task: Task | None


def bucket_of(task_id: str, buckets: int) -> int:
    return 0 if buckets <= 1 else int.from_bytes(task_id[-4:].encode(), "big") % buckets


def _pk(tenant: str, task_id: str, buckets: int) -> str:
    return f"{tenant}#{bucket_of(task_id, buckets)}"


def _history_item(h: HistoryEntry) -> str:
    # "STATE|epoch_ms|detail": a third of the bytes of a map per entry, and one node to parse.
    return f"{h.state.value}|{h.at}|{h.detail or ''}"


def _history_entry(text: str) -> HistoryEntry:
    state, at, detail = text.split("|", 2)
    return HistoryEntry(state=TaskState(state), at=int(at), detail=detail or None)


#: Values a task item leaves out when they are the defaults (every write is billed per KB, and the
#: item is kept for the retention period): read back as these when absent.
DEFAULT_TIMEOUT_S = 300
DEFAULT_RETRY = RetryPolicy()


def _to_item(task: Task, buckets: int) -> dict[str, Any]:
    # The tenant is the partition key's first part: not stored twice.
    item: dict[str, Any] = {
        "pk": _pk(task.tenant, task.task_id, buckets),
        "sk": task.task_id,
        "state": task.state.value,
        "target": utf8_json(task.target),
        "payload": utf8_json(task.payload),
        "run_at": task.run_at,
        "created_at": task.created_at,
        "attempts": task.attempts,
        "history": [_history_item(h) for h in task.history],
    }
    if task.timeout_s != DEFAULT_TIMEOUT_S:
        item["timeout_s"] = task.timeout_s
    if task.retry != DEFAULT_RETRY:
        item["retry"] = utf8_json(task.retry.model_dump(mode="json", exclude_none=True))
    if task.auto_timeout is not None:
        item["auto_timeout"] = utf8_json(task.auto_timeout.model_dump())
    if task.fallback is not None:
        item["fallback"] = utf8_json(task.fallback)
    if task.priority != "default":
        item["priority"] = task.priority
    if task.labels:
        item["labels"] = utf8_json(task.labels)
    if task.counted:
        item["counted"] = True
    if task.route:
        item["route"] = utf8_json(task.route)
    if task.payload_ref:
        item["payload_ref"] = task.payload_ref.model_dump_json(exclude_none=True)
    if task.result_ref:
        item["result_ref"] = task.result_ref.model_dump_json(exclude_none=True)
    for name in (
        "dispatched_at",
        "started_at",
        "finished_at",
        "next_attempt_at",
        "deadline",
        "idempotency_key",
        "schedule_id",
        "fire_at",
        "trigger_id",
    ):
        value = getattr(task, name)
        if value is not None:
            item[name] = value
    return item


def _num(value: Any) -> int | None:
    return None if value is None else int(value)


def _from_item(item: dict[str, Any]) -> Task:
    error = item.get("error")
    return Task(
        task_id=item["sk"],
        # (items written before the tenant was left out carry it; otherwise it is the key's first part)
        tenant=item.get("tenant") or item["pk"].rsplit("#", 1)[0],
        state=TaskState(item["state"]),
        target=json.loads(item["target"]),
        payload=json.loads(item["payload"]) if "payload" in item else None,
        run_at=int(item["run_at"]),
        created_at=int(item["created_at"]),
        dispatched_at=_num(item.get("dispatched_at")),
        started_at=_num(item.get("started_at")),
        finished_at=_num(item.get("finished_at")),
        next_attempt_at=_num(item.get("next_attempt_at")),
        heartbeat_at=_num(item.get("heartbeat_at")),
        attempts=int(item.get("attempts", 0)),
        timeout_s=int(item.get("timeout_s", DEFAULT_TIMEOUT_S)),
        retry=RetryPolicy.model_validate(json.loads(item["retry"])) if "retry" in item else DEFAULT_RETRY,
        auto_timeout=AutoTimeout(**json.loads(item["auto_timeout"])) if "auto_timeout" in item else None,
        fallback=json.loads(item["fallback"]) if "fallback" in item else None,
        priority=item.get("priority", "default"),
        labels=json.loads(item.get("labels", "{}")),
        deadline=_num(item.get("deadline")),
        result=json.loads(item["result"]) if "result" in item else None,
        error=TaskErrorInfo(**error) if error else None,
        history=[_history_entry(h) for h in item.get("history", [])],
        idempotency_key=item.get("idempotency_key"),
        schedule_id=item.get("schedule_id"),
        fire_at=_num(item.get("fire_at")),
        trigger_id=item.get("trigger_id"),
        counted=bool(item.get("counted", False)),
        route=json.loads(item["route"]) if "route" in item else None,
        payload_ref=BlobRef.model_validate_json(item["payload_ref"]) if "payload_ref" in item else None,
        result_ref=BlobRef.model_validate_json(item["result_ref"]) if "result_ref" in item else None,
    )


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: serialize_value(v) for k, v in item.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: deserialize_value(v) for k, v in item.items()}


class TaskStore(AwsClient["DynamoDBClient"]):
    """Tasks in DynamoDB: create, get, list newest first, and conditional state transitions."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        buckets: int = 1,
        session: Any = None,
        tracing: Tracing = NULL_TRACING,
    ):
        self._table = table
        super().__init__("dynamodb", client, session=session)
        self._buckets = buckets
        #: a stored task is the root span of its trace, whichever door it came in by
        self.tracing = tracing

    def create(self, task: Task) -> None:
        """Store a new task; an existing id is a :class:`~taskplane.domain.errors.Conflict`."""
        began = time.time_ns()
        self._put(task)
        self.tracing.tasks_created([task], began)

    def _put(self, task: Task) -> None:
        try:
            self.client.put_item(
                TableName=self._table,
                Item=_serialize(_to_item(task, self._buckets)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                from taskplane.domain.errors import Conflict

                raise Conflict(f"task {task.task_id} already exists") from exc
            raise translate(exc, "storing the task") from exc

    def create_many(self, tasks: list[Task]) -> list[Exception | None]:
        """Store tasks 25 per BatchWriteItem; one outcome per task, in order (None = stored)."""
        began = time.time_ns()
        items = [_serialize(_to_item(t, self._buckets)) for t in tasks]
        outcomes = batch_put(self.client, self._table, items, lambda item: item["sk"]["S"], "storing tasks")
        self.tracing.tasks_created([t for t, err in zip(tasks, outcomes, strict=True) if err is None], began)
        return outcomes

    def get(self, tenant: str, task_id: str) -> Task | None:
        try:
            resp = self.client.get_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise translate(exc, "reading the task") from exc
        item = resp.get("Item")
        return _from_item(_deserialize(item)) if item else None

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, state: TaskState | None = None
    ) -> tuple[list[Task], str | None]:
        """A tenant's tasks, newest first; ``cursor`` is the last task id of the previous page."""
        per_bucket: list[list[Task]] = []
        exhausted = True
        for bucket in range(self._buckets):
            tasks, more = self._query_bucket(f"{tenant}#{bucket}", limit, cursor, state)
            per_bucket.append(tasks)
            exhausted = exhausted and not more
        merged = sorted((t for ts in per_bucket for t in ts), key=lambda t: t.task_id, reverse=True)
        page = merged[:limit]
        has_more = len(merged) > limit or not exhausted
        return page, (page[-1].task_id if page and has_more else None)

    def _query_bucket(
        self, pk: str, limit: int, cursor: str | None, state: TaskState | None
    ) -> tuple[builtins.list[Task], bool]:
        names = {"#pk": "pk"}
        values: dict[str, Any] = {":pk": {"S": pk}}
        key_cond = "#pk = :pk"
        if cursor:
            names["#sk"] = "sk"
            values[":cursor"] = {"S": cursor}
            key_cond += " AND #sk < :cursor"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": key_cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if state is not None:
            names["#state"] = "state"
            values[":state"] = {"S": state.value}
            kwargs["FilterExpression"] = "#state = :state"
        found: list[Task] = []
        # Read one more than asked so the caller knows whether another page exists; a filter may
        # need several pages of raw items to fill it (reads are cheap; bounded to 20 pages).
        for _ in range(20):
            kwargs["Limit"] = max(limit + 1, 25) if state is not None else limit + 1
            try:
                resp = self.client.query(**kwargs)
            except ClientError as exc:
                raise translate(exc, "listing tasks") from exc
            found.extend(_from_item(_deserialize(i)) for i in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if len(found) > limit or not last:
                return found, len(found) > limit
            kwargs["ExclusiveStartKey"] = last
        return found, True

    def transition(
        self,
        tenant: str,
        task_id: str,
        expected: TaskState,
        path: builtins.list[TaskState],
        *,
        at_ms: int,
        detail: str | None = None,
        fields: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
        add_attempt: bool = False,
        expected_attempts: int | None = None,
        return_task: bool = True,
        due_field: str | None = None,
        due_by: int | None = None,
    ) -> TransitionResult:
        """Move a task from ``expected`` through ``path`` in one conditional write.

        Every move is appended to the history with ``at_ms``. A task that is not in ``expected``
        (or not at ``expected_attempts``) is a lost race: the result is ``ok=False`` with the task
        as it is now, never an exception. ``return_task=False`` skips returning the new item
        (``task`` is then None on success), for callers that need nothing more from it.
        """
        check_path(expected, path)
        fields = dict(fields or {})
        unknown = set(fields) - SETTABLE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} in a transition")
        names = {"#state": "state", "#history": "history", "#pk": "pk"}
        values: dict[str, Any] = {
            ":expected": expected.value,
            ":new": path[-1].value,
            ":h": [
                _history_item(HistoryEntry(state=s, at=at_ms, detail=detail if i == len(path) - 1 else None))
                for i, s in enumerate(path)
            ],
        }
        sets = ["#state = :new", "#history = list_append(#history, :h)"]
        for i, (name, value) in enumerate(sorted(fields.items())):
            names[f"#f{i}"] = name
            if name in ("result", "fallback"):
                value = utf8_json(value)
            elif name == "result_ref":
                value = value.model_dump_json(exclude_none=True)
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        expr = "SET " + ", ".join(sets)
        if add_attempt:
            expr += " ADD attempts :one"
            values[":one"] = 1
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            expr += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = "attribute_exists(#pk) AND #state = :expected"
        if expected_attempts is not None:
            values[":attempts"] = expected_attempts
            condition += " AND attempts = :attempts"
        if due_field is not None and due_by is not None:
            # Never start before the task is due by this writer's clock.
            names["#due"] = due_field
            values[":due_by"] = due_by
            condition += " AND #due <= :due_by"
        try:
            resp = self.client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_serialize(values),
                ReturnValues="ALL_NEW" if return_task else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                item = cast(dict[str, Any] | None, exc.response.get("Item"))
                current = _from_item(_deserialize(item)) if item else self.get(tenant, task_id)
                return TransitionResult(ok=False, task=current)
            raise translate(exc, "updating the task") from exc
        if not return_task:
            return TransitionResult(ok=True, task=None)
        return TransitionResult(ok=True, task=_from_item(_deserialize(resp["Attributes"])))

    def heartbeat(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool:
        """Record that attempt ``attempts`` is alive; False when the task moved on (no longer that attempt)."""
        return (
            unless_refused(
                "recording a heartbeat",
                self.client.update_item,
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
                UpdateExpression="SET heartbeat_at = :now",
                ConditionExpression="attribute_exists(#pk) AND #state = :running AND attempts = :n",
                ExpressionAttributeNames={"#pk": "pk", "#state": "state"},
                ExpressionAttributeValues=_serialize({":now": at_ms, ":running": "RUNNING", ":n": attempts}),
            )
            is not None
        )

    def claim_fallback(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool:
        """Mark that attempt ``attempts`` (still RUNNING) calls the fallback; False when a fallback was
        claimed already or the attempt moved on (so a fallback runs at most once)."""
        return (
            unless_refused(
                "claiming the fallback",
                self.client.update_item,
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
                UpdateExpression="SET fallback = :f",
                ConditionExpression=(
                    "attribute_exists(#pk) AND attribute_not_exists(fallback) AND #state = :running "
                    "AND attempts = :n"
                ),
                ExpressionAttributeNames={"#pk": "pk", "#state": "state"},
                ExpressionAttributeValues=_serialize(
                    {
                        ":f": utf8_json({"state": "RUNNING", "at": at_ms}),
                        ":running": "RUNNING",
                        ":n": attempts,
                    }
                ),
            )
            is not None
        )

    def note(self, tenant: str, task_id: str, state: TaskState, *, at_ms: int, detail: str) -> bool:
        """Append a history entry to a task that stays in ``state`` (no move; e.g. a FAILED task's
        redrive). False when the task is not in ``state``."""
        return (
            unless_refused(
                "updating the task",
                self.client.update_item,
                TableName=self._table,
                Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
                UpdateExpression="SET #history = list_append(#history, :h)",
                ConditionExpression="attribute_exists(#pk) AND #state = :state",
                ExpressionAttributeNames={"#history": "history", "#pk": "pk", "#state": "state"},
                ExpressionAttributeValues=_serialize(
                    {
                        ":h": [_history_item(HistoryEntry(state=state, at=at_ms, detail=detail))],
                        ":state": state.value,
                    }
                ),
            )
            is not None
        )

    def delete_unstarted(self, tenant: str, task_id: str) -> None:
        """Remove a task that was stored but could not be queued (only while nothing has started it)."""
        unless_refused(
            "withdrawing the task",
            self.client.delete_item,
            TableName=self._table,
            Key={"pk": {"S": _pk(tenant, task_id, self._buckets)}, "sk": {"S": task_id}},
            ConditionExpression="#state IN (:p, :s)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":p": {"S": "PENDING"}, ":s": {"S": "SCHEDULED"}},
        )
