"""The run ledger in DynamoDB: run state, node results, outputs, compensations, gate tokens.

Item layout (one table):

==============================  =========  =====================================================
partition key ``pk``            sort key   holds
==============================  =========  =====================================================
``R#<tenant>#<run_id>``         ``#run``   state, phase, version, input, execution, error, times
``R#<tenant>#<run_id>``         ``C#<id>`` one compensation: state, attempts, times, error
``R#<tenant>#<run_id>``         ``N#<id>`` one node: state, attempts, times, error, output size and
                                           the output itself when small, the attempt's fence
                                           (``try``), the gate's task token and, per execution, the
                                           set of needs already done
``R#<tenant>#<run_id>``         ``O#<id>`` a larger output (JSON, up to 128 KiB), or ``ref``: where
                                           an output too large for an item is kept (the
                                           platform's bucket, ``domain/blobs.py``)
``L#<tenant>#<workflow>``       run id     the run in its workflow's listing (newest first)
==============================  =========  =====================================================

One Query (``sk < "O#"``) reads a whole run without its outputs. The tenant is part of every key,
so one tenant can never read another's run. Attempts are fenced: a node's attempt writes its
outcome only while the node still carries the attempt's ``try`` id, so an attempt that Step
Functions gave up on (timed out) cannot overwrite a later one.

Items carry ``expires_at`` (the table's TTL attribute) set by the caller: a run's items go some
retention period after the run ended, or could have ended.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import error_code, translate, unless_refused
from taskplane.adapters.workflow_store import deserialize, serialize
from taskplane.domain.blobs import BlobRef
from taskplane.domain.errors import Conflict
from taskplane.domain.workflow import NodeState, Phase, RunState
from taskplane.tracing import NULL_TRACING, Tracing

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RUN = "#run"
_NO_VALUE: Any = object()


def _used(names: dict[str, str], *expressions: str) -> dict[str, str]:
    """The attribute names the expressions use: DynamoDB refuses a request naming one it does not use."""
    used = {token for expression in expressions for token in re.findall(r"#\w+", expression)}
    return {key: value for key, value in names.items() if key in used}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: Any, default: Any = None) -> Any:
    return json.loads(text) if isinstance(text, str) else default


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class RunRecord:
    tenant: str
    run_id: str
    workflow: str
    version: int
    version_arn: str
    state: RunState
    phase: Phase
    input: Any
    created_at: int
    exec: int = 1
    execution_arn: str | None = None
    finished_at: int | None = None
    error: dict[str, Any] | None = None
    on_failure: str = "stop"
    resumes: int = 0
    compensation_started: bool = False
    updated_at: int | None = None


@dataclass(frozen=True)
class NodeRecord:
    id: str
    state: NodeState
    attempts: int = 0
    exec: int = 0
    started_at: int | None = None
    attempt_at: int | None = None
    finished_at: int | None = None
    error: dict[str, Any] | None = None
    out_bytes: int | None = None
    preview: Any = _NO_VALUE  # the output, when small; _NO_VALUE when not kept inline
    try_id: str | None = None

    @property
    def has_preview(self) -> bool:
        return self.preview is not _NO_VALUE


@dataclass(frozen=True)
class CompensationRecord:
    id: str
    state: NodeState
    attempts: int = 0
    started_at: int | None = None
    attempt_at: int | None = None
    finished_at: int | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    workflow: str
    version: int
    state: RunState
    created_at: int
    finished_at: int | None


class RunStore(AwsClient["DynamoDBClient"]):
    """Runs, nodes, outputs and compensations of every tenant."""

    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        session: Any = None,
        tracing: Tracing = NULL_TRACING,
    ):
        self._table = table
        super().__init__("dynamodb", client, session=session)
        #: a stored run is the root span of its trace
        self.tracing = tracing

    # -- keys ------------------------------------------------------------------------------------

    @staticmethod
    def _pk(tenant: str, run_id: str) -> str:
        return f"R#{tenant}#{run_id}"

    def _key(self, tenant: str, run_id: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": self._pk(tenant, run_id)}, "sk": {"S": sk}}

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(TableName=self._table, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, what) from exc

    def _if(self, what: str, method: str, **kwargs: Any) -> Any | None:
        """:meth:`_call` for a conditional write: None when its condition refused it."""
        return unless_refused(what, getattr(self.client, method), TableName=self._table, **kwargs)

    # -- runs ------------------------------------------------------------------------------------

    def create(self, run: RunRecord, *, expires_at: int | None = None) -> None:
        """Store a new run and its listing entry."""
        began = time.time_ns()
        item = {**run_item(run), "expires_at": expires_at}
        listing = {
            "pk": f"L#{run.tenant}#{run.workflow}",
            "sk": run.run_id,
            "version": run.version,
            "state": run.state.value,
            "created_at": run.created_at,
            "expires_at": expires_at,
        }
        try:
            self.client.put_item(
                TableName=self._table, Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise Conflict(f"run {run.run_id} already exists") from exc
            raise translate(exc, "storing the run") from exc
        except BotoCoreError as exc:
            raise translate(exc, "storing the run") from exc
        self._call("listing the run", "put_item", Item=serialize(listing))
        self.tracing.run_created(run.tenant, run.run_id, run.workflow, run.version, began)

    def get(self, tenant: str, run_id: str) -> RunRecord | None:
        found = self._call(
            "reading the run", "get_item", Key=self._key(tenant, run_id, RUN), ConsistentRead=True
        )
        item = found.get("Item")
        return run_from_item(tenant, deserialize(item)) if item else None

    def ledger(
        self, tenant: str, run_id: str
    ) -> tuple[RunRecord | None, dict[str, NodeRecord], dict[str, CompensationRecord]]:
        """The run, its nodes and its compensations in one Query (outputs are left out)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk < :o",
            "ExpressionAttributeValues": {":pk": {"S": self._pk(tenant, run_id)}, ":o": {"S": "O#"}},
            "ConsistentRead": True,
        }
        run: RunRecord | None = None
        nodes: dict[str, NodeRecord] = {}
        comps: dict[str, CompensationRecord] = {}
        while True:
            found = self._call("reading the run", "query", **kwargs)
            for raw in found.get("Items", []):
                item = deserialize(raw)
                sk: str = item["sk"]
                if sk == RUN:
                    run = run_from_item(tenant, item)
                elif sk.startswith("N#"):
                    nodes[sk[2:]] = node_from_item(sk[2:], item)
                elif sk.startswith("C#"):
                    comps[sk[2:]] = compensation_from_item(sk[2:], item)
            if "LastEvaluatedKey" not in found:
                return run, nodes, comps
            kwargs["ExclusiveStartKey"] = found["LastEvaluatedKey"]

    def update_run(
        self,
        run: RunRecord,
        *,
        states: Iterable[RunState],
        exec: int | None = None,
        phases: Iterable[Phase] | None = None,
        changes: dict[str, Any],
        remove: tuple[str, ...] = (),
        now_ms: int,
        expires_at: int | None = None,
    ) -> RunRecord | None:
        """Change the run if it is in one of ``states`` (and at ``exec``, in one of ``phases``).

        Answers the run as it is after the change, or None when the condition did not hold (a
        lost race: the caller decides again on a fresh read). The listing entry follows the state.
        """
        names = {"#state": "state", "#u": "updated_at"}
        values: dict[str, Any] = {":now": now_ms}
        sets = ["#u = :now"]
        if expires_at is not None:
            changes = {**changes, "expires_at": expires_at}
        for i, (name, value) in enumerate(sorted(changes.items())):
            names[f"#c{i}"] = name
            values[f":c{i}"] = stored_value(name, value)
            sets.append(f"#c{i} = :c{i}")
        expr = "SET " + ", ".join(sets)
        if remove:
            for i, name in enumerate(remove):
                names[f"#r{i}"] = name
            expr += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        allowed = sorted(s.value for s in states)
        condition = "#state IN (" + ", ".join(f":s{i}" for i in range(len(allowed))) + ")"
        values.update({f":s{i}": s for i, s in enumerate(allowed)})
        if exec is not None:
            condition += " AND #exec = :x"
            names["#exec"] = "exec"
            values[":x"] = exec
        if phases is not None:
            wanted = sorted(p.value for p in phases)
            names["#phase"] = "phase"
            condition += " AND #phase IN (" + ", ".join(f":p{i}" for i in range(len(wanted))) + ")"
            values.update({f":p{i}": p for i, p in enumerate(wanted)})
        resp = self._if(
            "updating the run",
            "update_item",
            Key=self._key(run.tenant, run.run_id, RUN),
            UpdateExpression=expr,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialize(values),
            ReturnValues="ALL_NEW",
        )
        if resp is None:
            return None
        after = run_from_item(run.tenant, deserialize(resp["Attributes"]))
        if after.state != run.state or "state" in changes:
            self._list_entry(after, expires_at)
        return after

    def _list_entry(self, run: RunRecord, expires_at: int | None) -> None:
        values: dict[str, Any] = {":s": run.state.value, ":v": run.version}
        expr = "SET #state = :s, #version = :v"
        if expires_at is not None:
            expr += ", expires_at = :e"
            values[":e"] = expires_at
        if run.finished_at is not None:
            expr += ", finished_at = :f"
            values[":f"] = run.finished_at
        else:
            expr += " REMOVE finished_at"
        self._call(
            "updating the run listing",
            "update_item",
            Key={"pk": {"S": f"L#{run.tenant}#{run.workflow}"}, "sk": {"S": run.run_id}},
            UpdateExpression=expr,
            ExpressionAttributeNames={"#state": "state", "#version": "version"},
            ExpressionAttributeValues=serialize(values),
        )

    def record_error(self, tenant: str, run_id: str, exec: int, error: dict[str, Any]) -> None:
        """Keep the first node failure of an execution as the run's error."""
        self._if(
            "recording the run's error",
            "update_item",
            Key=self._key(tenant, run_id, RUN),
            UpdateExpression="SET #e = if_not_exists(#e, :e)",
            ConditionExpression="#exec = :x",
            ExpressionAttributeNames={"#e": "error", "#exec": "exec"},
            ExpressionAttributeValues={":e": {"S": _json(error)}, ":x": {"N": str(exec)}},
        )

    def list_runs(
        self, tenant: str, workflow: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunSummary], str | None]:
        """A workflow's runs, newest first; ``cursor`` is the last run id of the previous page."""
        values: dict[str, Any] = {":pk": {"S": f"L#{tenant}#{workflow}"}}
        condition = "pk = :pk"
        if cursor:
            condition += " AND sk < :c"
            values[":c"] = {"S": cursor}
        found = self._call(
            "listing runs",
            "query",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit + 1,
        )
        items = [deserialize(i) for i in found.get("Items", [])]
        runs = [
            RunSummary(
                run_id=i["sk"],
                workflow=workflow,
                version=int(i["version"]),
                state=RunState(i["state"]),
                created_at=int(i["created_at"]),
                finished_at=_int(i.get("finished_at")),
            )
            for i in items[:limit]
        ]
        return runs, (runs[-1].run_id if len(items) > limit else None)

    # -- gates -----------------------------------------------------------------------------------

    def register_gate(
        self, tenant: str, run_id: str, node: str, token: str, exec: int, *, expires_at: int
    ) -> set[str]:
        """Keep the task token of ``node``'s gate; answers the needs already done in ``exec``."""
        resp = self._call(
            "registering a gate",
            "update_item",
            Key=self._key(tenant, run_id, f"N#{node}"),
            UpdateExpression="SET #t = :t, #tx = :x, expires_at = :e",
            ExpressionAttributeNames={"#t": "token", "#tx": "token_exec"},
            ExpressionAttributeValues={
                ":t": {"S": token},
                ":x": {"N": str(exec)},
                ":e": {"N": str(expires_at)},
            },
            ReturnValues="ALL_NEW",
        )
        return set(deserialize(resp["Attributes"]).get(f"done_{exec}", set()))

    def need_done(
        self, tenant: str, run_id: str, node: str, need: str, exec: int, *, expires_at: int
    ) -> tuple[str | None, set[str]]:
        """Record that ``need`` of ``node`` is done in ``exec``; answers the gate's token (if it is
        waiting in this execution) and every need done so far. Adding to a set is idempotent, so a
        repeated call cannot count a need twice."""
        resp = self._call(
            "recording a finished need",
            "update_item",
            Key=self._key(tenant, run_id, f"N#{node}"),
            UpdateExpression="SET expires_at = :e ADD #d :n",
            ExpressionAttributeNames={"#d": f"done_{exec}"},
            ExpressionAttributeValues={":n": {"SS": [need]}, ":e": {"N": str(expires_at)}},
            ReturnValues="ALL_NEW",
        )
        item = deserialize(resp["Attributes"])
        token = item.get("token") if _int(item.get("token_exec")) == exec else None
        return token, set(item.get(f"done_{exec}", set()))

    # -- node attempts ---------------------------------------------------------------------------

    def start_node(
        self, tenant: str, run_id: str, node: str, *, exec: int, try_id: str, now_ms: int, expires_at: int
    ) -> NodeRecord | None:
        """Begin an attempt of ``node``; answers the node as it is now, or None when it already
        succeeded (a resumed run skips it).

        The caller must then check that the run still lets nodes start (:meth:`node_inputs` reads
        the run after this write) and :meth:`withdraw_start` when it does not: of this write and
        the run's phase change, whichever comes second sees the other (transactions would be
        simpler, but moto copies whole tables for each one).
        """
        resp = self._begin(
            "starting a node",
            tenant,
            run_id,
            f"N#{node}",
            try_id=try_id,
            now_ms=now_ms,
            expires_at=expires_at,
            exec=exec,
        )
        if resp is None:
            return None
        return node_from_item(node, deserialize(resp["Attributes"]))

    def _begin(
        self,
        what: str,
        tenant: str,
        run_id: str,
        sk: str,
        *,
        try_id: str,
        now_ms: int,
        expires_at: int,
        exec: int | None = None,
    ) -> Any | None:
        """One more attempt of a node (``N#``, with its execution, clearing an earlier finish) or of a
        compensation (``C#``) unless it succeeded; the item after it, or None when it had succeeded."""
        sets = (
            "SET #state = :running, #try = :try, #aa = :now, expires_at = :e, #sa = if_not_exists(#sa, :now)"
        )
        names = {
            "#state": "state",
            "#try": "try",
            "#aa": "attempt_at",
            "#sa": "started_at",
            "#att": "attempts",
        }
        values = {
            ":running": {"S": NodeState.RUNNING.value},
            ":try": {"S": try_id},
            ":now": {"N": str(now_ms)},
            ":one": {"N": "1"},
            ":ok": {"S": NodeState.SUCCEEDED.value},
            ":e": {"N": str(expires_at)},
        }
        tail = ""
        if exec is not None:
            sets += ", #exec = :x"
            names |= {"#exec": "exec", "#fa": "finished_at"}
            values[":x"] = {"N": str(exec)}
            tail = " REMOVE #fa"
        return self._if(
            what,
            "update_item",
            Key=self._key(tenant, run_id, sk),
            UpdateExpression=f"{sets} ADD #att :one{tail}",
            ConditionExpression="attribute_not_exists(#state) OR #state <> :ok",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )

    def withdraw_start(self, tenant: str, run_id: str, node: str, *, try_id: str) -> None:
        """Undo :meth:`start_node` for an attempt that must not run after all."""
        self._if(
            "withdrawing a node's start",
            "update_item",
            Key=self._key(tenant, run_id, f"N#{node}"),
            UpdateExpression="SET #state = :pending ADD #att :minus REMOVE #try",
            ConditionExpression="#try = :try AND #state = :running",
            ExpressionAttributeNames={"#state": "state", "#try": "try", "#att": "attempts"},
            ExpressionAttributeValues={
                ":pending": {"S": NodeState.PENDING.value},
                ":running": {"S": NodeState.RUNNING.value},
                ":try": {"S": try_id},
                ":minus": {"N": "-1"},
            },
        )

    def node_inputs(
        self, tenant: str, run_id: str, needs: Iterable[str]
    ) -> tuple[RunRecord | None, dict[str, Any]]:
        """The run (its state and input) and the outputs of ``needs``, read consistently."""
        needs = list(needs)
        keys = [self._key(tenant, run_id, RUN)] + [self._key(tenant, run_id, f"N#{need}") for need in needs]
        run: RunRecord | None = None
        outputs: dict[str, Any] = {}
        large: list[str] = []
        for item in self._batch_get(keys, "reading a node's inputs"):
            if item["sk"] == RUN:
                run = run_from_item(tenant, item)
            elif item.get("state") == NodeState.SUCCEEDED.value:
                if "preview" in item:
                    outputs[item["sk"][2:]] = json.loads(item["preview"])
                else:
                    large.append(item["sk"][2:])
        if large:
            keys = [self._key(tenant, run_id, f"O#{need}") for need in large]
            for item in self._batch_get(keys, "reading a node's inputs"):
                outputs[item["sk"][2:]] = stored_output(item)
        return run, outputs

    def _batch_get(self, keys: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            for _ in range(8):
                try:
                    resp = self.client.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc, what) from exc
                found += [deserialize(i) for i in resp.get("Responses", {}).get(self._table, [])]
                pending = resp.get("UnprocessedKeys") or {}
                if not pending:
                    break
            else:
                raise translate(ClientError({"Error": {"Code": "ThrottlingException"}}, "BatchGetItem"), what)
        return found

    def node_succeeded(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str,
        attempt: int,
        now_ms: int,
        output_json: str,
        out_bytes: int,
        preview_json: str | None,
        expires_at: int,
        output_ref: BlobRef | None = None,
    ) -> bool:
        """Store the output and the success of the attempt ``try_id``; False when it was superseded.

        A small output (``preview_json`` given) lives in the node's item, written with the success in
        one fenced update. A larger one goes first to its own item (a node that reads SUCCEEDED finds
        it), never over the output of a later attempt. An output kept in the bucket (``output_ref``)
        has only its reference there; readers answer the :class:`BlobRef` in the output's place.
        """
        if preview_json is None:
            stored = self._if(
                "recording a node's output",
                "put_item",
                Item={
                    **self._key(tenant, run_id, f"O#{node}"),
                    **(
                        {"ref": {"S": output_ref.model_dump_json(exclude_none=True)}}
                        if output_ref is not None
                        else {"output": {"S": output_json}}
                    ),
                    "attempt": {"N": str(attempt)},
                    "expires_at": {"N": str(expires_at)},
                },
                ConditionExpression="attribute_not_exists(pk) OR attempt <= :n",
                ExpressionAttributeValues={":n": {"N": str(attempt)}},
            )
            if stored is None:
                return False
        sets = "SET #state = :ok, #fa = :now, #ob = :ob"
        values: dict[str, Any] = {
            ":ok": {"S": NodeState.SUCCEEDED.value},
            ":now": {"N": str(now_ms)},
            ":ob": {"N": str(out_bytes)},
            ":try": {"S": try_id},
            ":running": {"S": NodeState.RUNNING.value},
        }
        remove = ["#err"]
        if preview_json is not None:
            sets += ", #pv = :pv"
            values[":pv"] = {"S": preview_json}
        else:
            remove.append("#pv")
        return (
            self._if(
                "recording a node's success",
                "update_item",
                Key=self._key(tenant, run_id, f"N#{node}"),
                UpdateExpression=sets + " REMOVE " + ", ".join(remove),
                ConditionExpression="#try = :try AND #state = :running",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#fa": "finished_at",
                    "#ob": "out_bytes",
                    "#pv": "preview",
                    "#err": "error",
                    "#try": "try",
                },
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def node_failed(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str | None,
        state: NodeState,
        error: dict[str, Any],
        now_ms: int,
        expect: NodeState = NodeState.RUNNING,
    ) -> bool:
        """Record a failed attempt (``RETRYING``) or the node's failure (``FAILED``)."""
        # Only names the expressions use: DynamoDB refuses an unused one (ValidationException).
        names = {"#state": "state", "#err": "error"}
        values: dict[str, Any] = {
            ":st": {"S": state.value},
            ":e": {"S": _json(error)},
            ":exp": {"S": expect.value},
        }
        expr = "SET #state = :st, #err = :e"
        if state is NodeState.FAILED:
            expr += ", #fa = :now"
            names["#fa"] = "finished_at"
            values[":now"] = {"N": str(now_ms)}
        condition = "#state = :exp"
        if try_id is not None:
            condition += " AND #try = :try"
            names["#try"] = "try"
            values[":try"] = {"S": try_id}
        return (
            self._if(
                "recording a node's failure",
                "update_item",
                Key=self._key(tenant, run_id, f"N#{node}"),
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=_used(names, expr, condition),
                ExpressionAttributeValues=values,
            )
            is not None
        )

    def output(self, tenant: str, run_id: str, node: str) -> tuple[bool, Any]:
        """(found, the output of a node that succeeded)."""
        found = self._call(
            "reading a node's output",
            "get_item",
            Key=self._key(tenant, run_id, f"N#{node}"),
            ConsistentRead=True,
        ).get("Item")
        item = deserialize(found) if found else {}
        if item.get("state") != NodeState.SUCCEEDED.value:
            return False, None
        if "preview" in item:
            return True, json.loads(item["preview"])
        found = self._call("reading a node's output", "get_item", Key=self._key(tenant, run_id, f"O#{node}"))
        item = found.get("Item")
        if not item:
            return False, None
        return True, stored_output(deserialize(item))

    # -- compensations ---------------------------------------------------------------------------

    def start_compensation(
        self, tenant: str, run_id: str, node: str, *, try_id: str, now_ms: int, expires_at: int
    ) -> tuple[bool, int]:
        """Begin a compensation attempt; (False, attempts) when it already succeeded."""
        resp = self._begin(
            "starting a compensation",
            tenant,
            run_id,
            f"C#{node}",
            try_id=try_id,
            now_ms=now_ms,
            expires_at=expires_at,
        )
        if resp is None:
            return False, 0
        return True, int(deserialize(resp["Attributes"])["attempts"])

    def compensation_finished(
        self,
        tenant: str,
        run_id: str,
        node: str,
        *,
        try_id: str,
        state: NodeState,
        error: dict[str, Any] | None,
        now_ms: int,
    ) -> bool:
        # Only names the expressions use: DynamoDB refuses an unused one (ValidationException).
        names = {"#state": "state", "#try": "try", "#err": "error"}
        values: dict[str, Any] = {
            ":st": {"S": state.value},
            ":try": {"S": try_id},
            ":running": {"S": NodeState.RUNNING.value},
        }
        expr = "SET #state = :st"
        if state is not NodeState.RETRYING:
            expr += ", #fa = :now"
            names["#fa"] = "finished_at"
            values[":now"] = {"N": str(now_ms)}
        if error is not None:
            expr += ", #err = :e"
            values[":e"] = {"S": _json(error)}
        else:
            expr += " REMOVE #err"
        return (
            self._if(
                "recording a compensation",
                "update_item",
                Key=self._key(tenant, run_id, f"C#{node}"),
                UpdateExpression=expr,
                ConditionExpression="#try = :try AND #state = :running",
                ExpressionAttributeNames=_used(names, expr, "#try = :try AND #state = :running"),
                ExpressionAttributeValues=values,
            )
            is not None
        )


# -- item mapping ----------------------------------------------------------------------------------

_JSON_FIELDS = frozenset({"input", "error"})


def stored_value(name: str, value: Any) -> Any:
    if name in _JSON_FIELDS:
        return None if value is None else _json(value)
    if isinstance(value, RunState | Phase | NodeState):
        return value.value
    return value


def run_item(run: RunRecord) -> dict[str, Any]:
    return {
        "pk": RunStore._pk(run.tenant, run.run_id),
        "sk": RUN,
        "run_id": run.run_id,
        "workflow": run.workflow,
        "version": run.version,
        "version_arn": run.version_arn,
        "state": run.state.value,
        "phase": run.phase.value,
        "input": _json(run.input),
        "created_at": run.created_at,
        "exec": run.exec,
        "execution_arn": run.execution_arn,
        "finished_at": run.finished_at,
        "error": _json(run.error) if run.error is not None else None,
        "on_failure": run.on_failure,
        "resumes": run.resumes,
        "compensation_started": run.compensation_started,
        "updated_at": run.updated_at or run.created_at,
    }


def run_from_item(tenant: str, item: dict[str, Any]) -> RunRecord:
    return RunRecord(
        tenant=tenant,
        run_id=item["run_id"],
        workflow=item["workflow"],
        version=int(item["version"]),
        version_arn=item["version_arn"],
        state=RunState(item["state"]),
        phase=Phase(item["phase"]),
        input=_loads(item.get("input")),
        created_at=int(item["created_at"]),
        exec=int(item.get("exec", 1)),
        execution_arn=item.get("execution_arn"),
        finished_at=_int(item.get("finished_at")),
        error=_loads(item.get("error")),
        on_failure=item.get("on_failure", "stop"),
        resumes=int(item.get("resumes", 0)),
        compensation_started=bool(item.get("compensation_started", False)),
        updated_at=_int(item.get("updated_at")),
    )


def node_from_item(node_id: str, item: dict[str, Any]) -> NodeRecord:
    return NodeRecord(
        id=node_id,
        state=NodeState(item["state"]) if "state" in item else NodeState.PENDING,
        attempts=int(item.get("attempts", 0)),
        exec=int(item.get("exec", 0)),
        started_at=_int(item.get("started_at")),
        attempt_at=_int(item.get("attempt_at")),
        finished_at=_int(item.get("finished_at")),
        error=_loads(item.get("error")),
        out_bytes=_int(item.get("out_bytes")),
        preview=json.loads(item["preview"]) if "preview" in item else _NO_VALUE,
        try_id=item.get("try"),
    )


def compensation_from_item(node_id: str, item: dict[str, Any]) -> CompensationRecord:
    return CompensationRecord(
        id=node_id,
        state=NodeState(item["state"]) if "state" in item else NodeState.PENDING,
        attempts=int(item.get("attempts", 0)),
        started_at=_int(item.get("started_at")),
        attempt_at=_int(item.get("attempt_at")),
        finished_at=_int(item.get("finished_at")),
        error=_loads(item.get("error")),
    )


def stored_output(item: dict[str, Any]) -> Any:
    """An ``O#`` item's output: the JSON value, or the :class:`BlobRef` of one kept in the bucket."""
    if "ref" in item:
        return BlobRef.model_validate_json(item["ref"])
    return json.loads(item["output"])
