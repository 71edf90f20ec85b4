"""The run ledger on SQLite (the twin of ``adapters/run_store.py``).

Rows mirror the DynamoDB items one for one (the run, ``N#<node>``, ``C#<node>``, ``O#<node>`` under
one run; the listing entry per workflow), each item's attributes as JSON in ``doc``, read and
mapped by the same functions as the DynamoDB adapter's. Every conditional update is one transaction
that reads the item, checks the condition the DynamoDB adapter sends, and writes; a condition that
does not hold answers exactly what the DynamoDB adapter answers for ``ConditionalCheckFailed``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from taskplane.adapters.run_store import (
    RUN,
    CompensationRecord,
    NodeRecord,
    RunRecord,
    RunSummary,
    compensation_from_item,
    node_from_item,
    run_from_item,
    run_item,
    stored_output,
    stored_value,
)
from taskplane.adapters.sqlite.db import Database
from taskplane.domain.blobs import BlobRef
from taskplane.domain.errors import Conflict
from taskplane.domain.workflow import NodeState, Phase, RunState
from taskplane.tracing import NULL_TRACING, Tracing

Item = dict[str, Any]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _clean(item: Item) -> Item:
    """As DynamoDB keeps it: an attribute set to None is no attribute."""
    return {k: v for k, v in item.items() if v is not None}


def _read(conn: sqlite3.Connection, tenant: str, run_id: str, sk: str) -> Item | None:
    row = conn.execute(
        "SELECT doc FROM run_items WHERE tenant = ? AND run_id = ? AND sk = ?", (tenant, run_id, sk)
    ).fetchone()
    return json.loads(row["doc"]) if row else None


def _write(conn: sqlite3.Connection, tenant: str, run_id: str, sk: str, item: Item) -> None:
    item = _clean(item)
    conn.execute(
        "INSERT OR REPLACE INTO run_items (tenant, run_id, sk, doc, expires_at) VALUES (?, ?, ?, ?, ?)",
        (tenant, run_id, sk, _json(item), item.get("expires_at")),
    )


class SqliteRunStore:
    """Runs, nodes, outputs and compensations of every tenant."""

    def __init__(self, db: Database, *, tracing: Tracing = NULL_TRACING) -> None:
        self._db = db
        #: a stored run is the root span of its trace
        self.tracing = tracing

    def _update(
        self, tenant: str, run_id: str, sk: str, change: Callable[[Item | None], Item | None]
    ) -> Item | None:
        """Apply ``change`` to the item (None: absent) in one transaction; it answers the new item, or
        None when its condition does not hold (nothing is written)."""
        with self._db.transaction() as conn:
            after = change(_read(conn, tenant, run_id, sk))
            if after is not None:
                _write(conn, tenant, run_id, sk, after)
            return after

    # -- runs ------------------------------------------------------------------------------------

    def create(self, run: RunRecord, *, expires_at: int | None = None) -> None:
        """Store a new run and its listing entry."""
        began = time.time_ns()
        with self._db.transaction() as conn:
            if _read(conn, run.tenant, run.run_id, RUN) is not None:
                raise Conflict(f"run {run.run_id} already exists")
            _write(conn, run.tenant, run.run_id, RUN, {**run_item(run), "expires_at": expires_at})
            listing = {
                "version": run.version,
                "state": run.state.value,
                "created_at": run.created_at,
                "expires_at": expires_at,
            }
            self._put_listing(conn, run.tenant, run.workflow, run.run_id, listing)
        self.tracing.run_created(run.tenant, run.run_id, run.workflow, run.version, began)

    @staticmethod
    def _put_listing(conn: sqlite3.Connection, tenant: str, workflow: str, run_id: str, item: Item) -> None:
        item = _clean(item)
        conn.execute(
            "INSERT OR REPLACE INTO run_listing (tenant, workflow, run_id, doc, expires_at) VALUES (?, ?, ?, ?, ?)",
            (tenant, workflow, run_id, _json(item), item.get("expires_at")),
        )

    def get(self, tenant: str, run_id: str) -> RunRecord | None:
        with self._db.transaction() as conn:
            item = _read(conn, tenant, run_id, RUN)
        return run_from_item(tenant, item) if item else None

    def running(self) -> list[RunRecord]:
        """Every tenant's RUNNING runs (the local runtime relaunches them when it reopens its file)."""
        rows = self._db.query(
            "SELECT tenant, doc FROM run_items WHERE sk = ? AND json_extract(doc, '$.state') = ?",
            (RUN, RunState.RUNNING.value),
        )
        return [run_from_item(r["tenant"], json.loads(r["doc"])) for r in rows]

    def ledger(
        self, tenant: str, run_id: str
    ) -> tuple[RunRecord | None, dict[str, NodeRecord], dict[str, CompensationRecord]]:
        """The run, its nodes and its compensations in one read (outputs are left out)."""
        rows = self._db.query(
            "SELECT sk, doc FROM run_items WHERE tenant = ? AND run_id = ? AND sk < 'O#' ORDER BY sk",
            (tenant, run_id),
        )
        run: RunRecord | None = None
        nodes: dict[str, NodeRecord] = {}
        comps: dict[str, CompensationRecord] = {}
        for row in rows:
            sk, item = row["sk"], json.loads(row["doc"])
            if sk == RUN:
                run = run_from_item(tenant, item)
            elif sk.startswith("N#"):
                nodes[sk[2:]] = node_from_item(sk[2:], item)
            elif sk.startswith("C#"):
                comps[sk[2:]] = compensation_from_item(sk[2:], item)
        return run, nodes, comps

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
        """Change the run if it is in one of ``states`` (and at ``exec``, in one of ``phases``); the run
        after the change, or None when the condition did not hold. The listing entry follows the state."""
        allowed = {s.value for s in states}
        wanted = None if phases is None else {p.value for p in phases}
        if expires_at is not None:
            changes = {**changes, "expires_at": expires_at}
        with self._db.transaction() as conn:
            item = _read(conn, run.tenant, run.run_id, RUN)
            if (
                item is None
                or item.get("state") not in allowed
                or (exec is not None and item.get("exec") != exec)
                or (wanted is not None and item.get("phase") not in wanted)
            ):
                return None
            item["updated_at"] = now_ms
            for name, value in changes.items():
                item[name] = stored_value(name, value)
            for name in remove:
                item.pop(name, None)
            _write(conn, run.tenant, run.run_id, RUN, item)
            after = run_from_item(run.tenant, _clean(item))
            if after.state != run.state or "state" in changes:
                self._list_entry(conn, after, expires_at)
        return after

    def _list_entry(self, conn: sqlite3.Connection, run: RunRecord, expires_at: int | None) -> None:
        row = conn.execute(
            "SELECT doc FROM run_listing WHERE tenant = ? AND workflow = ? AND run_id = ?",
            (run.tenant, run.workflow, run.run_id),
        ).fetchone()
        item: Item = json.loads(row["doc"]) if row else {}
        item.update(state=run.state.value, version=run.version)
        if expires_at is not None:
            item["expires_at"] = expires_at
        item["finished_at"] = run.finished_at
        self._put_listing(conn, run.tenant, run.workflow, run.run_id, item)

    def record_error(self, tenant: str, run_id: str, exec: int, error: dict[str, Any]) -> None:
        """Keep the first node failure of an execution as the run's error."""

        def change(item: Item | None) -> Item | None:
            if item is None or item.get("exec") != exec:
                return None
            item.setdefault("error", _json(error))
            return item

        self._update(tenant, run_id, RUN, change)

    def list_runs(
        self, tenant: str, workflow: str, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[RunSummary], str | None]:
        """A workflow's runs, newest first; ``cursor`` is the last run id of the previous page."""
        rows = self._db.query(
            "SELECT run_id, doc FROM run_listing WHERE tenant = ? AND workflow = ?"
            " AND (? IS NULL OR run_id < ?) ORDER BY run_id DESC LIMIT ?",
            (tenant, workflow, cursor or None, cursor or None, limit + 1),
        )
        runs = []
        for row in rows[:limit]:
            item = json.loads(row["doc"])
            runs.append(
                RunSummary(
                    run_id=row["run_id"],
                    workflow=workflow,
                    version=int(item["version"]),
                    state=RunState(item["state"]),
                    created_at=int(item["created_at"]),
                    finished_at=item.get("finished_at"),
                )
            )
        return runs, (runs[-1].run_id if len(rows) > limit else None)

    # -- gates -----------------------------------------------------------------------------------

    def register_gate(
        self, tenant: str, run_id: str, node: str, token: str, exec: int, *, expires_at: int
    ) -> set[str]:
        """Keep the task token of ``node``'s gate; answers the needs already done in ``exec``."""

        def change(item: Item | None) -> Item:
            return {**(item or {}), "token": token, "token_exec": exec, "expires_at": expires_at}

        after = self._update(tenant, run_id, f"N#{node}", change) or {}
        return set(after.get(f"done_{exec}", []))

    def need_done(
        self, tenant: str, run_id: str, node: str, need: str, exec: int, *, expires_at: int
    ) -> tuple[str | None, set[str]]:
        """Record that ``need`` of ``node`` is done in ``exec`` (idempotent: a set); answers the gate's
        token (if it waits in this execution) and every need done so far."""

        def change(item: Item | None) -> Item:
            item = {**(item or {}), "expires_at": expires_at}
            item[f"done_{exec}"] = sorted({*item.get(f"done_{exec}", []), need})
            return item

        after = self._update(tenant, run_id, f"N#{node}", change) or {}
        token = after.get("token") if after.get("token_exec") == exec else None
        return token, set(after.get(f"done_{exec}", []))

    # -- node attempts ---------------------------------------------------------------------------

    def start_node(
        self, tenant: str, run_id: str, node: str, *, exec: int, try_id: str, now_ms: int, expires_at: int
    ) -> NodeRecord | None:
        """Begin an attempt of ``node``; the node as it is now, or None when it already succeeded."""

        def change(item: Item | None) -> Item | None:
            item = dict(item or {})
            if item.get("state") == NodeState.SUCCEEDED.value:
                return None
            item.update(state=NodeState.RUNNING.value, attempt_at=now_ms, exec=exec, expires_at=expires_at)
            item["try"] = try_id
            item.setdefault("started_at", now_ms)
            item["attempts"] = int(item.get("attempts", 0)) + 1
            item.pop("finished_at", None)
            return item

        after = self._update(tenant, run_id, f"N#{node}", change)
        return node_from_item(node, after) if after is not None else None

    def withdraw_start(self, tenant: str, run_id: str, node: str, *, try_id: str) -> None:
        """Undo :meth:`start_node` for an attempt that must not run after all."""

        def change(item: Item | None) -> Item | None:
            if item is None or item.get("try") != try_id or item.get("state") != NodeState.RUNNING.value:
                return None
            item["state"] = NodeState.PENDING.value
            item["attempts"] = int(item.get("attempts", 0)) - 1
            del item["try"]
            return item

        self._update(tenant, run_id, f"N#{node}", change)

    def node_inputs(
        self, tenant: str, run_id: str, needs: Iterable[str]
    ) -> tuple[RunRecord | None, dict[str, Any]]:
        """The run (its state and input) and the outputs of ``needs``, read together."""
        run: RunRecord | None = None
        outputs: dict[str, Any] = {}
        with self._db.transaction() as conn:
            item = _read(conn, tenant, run_id, RUN)
            if item is not None:
                run = run_from_item(tenant, item)
            for need in needs:
                node = _read(conn, tenant, run_id, f"N#{need}")
                if node is None or node.get("state") != NodeState.SUCCEEDED.value:
                    continue
                if "preview" in node:
                    outputs[need] = json.loads(node["preview"])
                else:
                    large = _read(conn, tenant, run_id, f"O#{need}")
                    if large is not None:
                        outputs[need] = stored_output(large)
        return run, outputs

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
        """Store the output and the success of the attempt ``try_id``; False when it was superseded."""
        with self._db.transaction() as conn:
            if preview_json is None:
                stored = _read(conn, tenant, run_id, f"O#{node}")
                if stored is not None and int(stored.get("attempt", 0)) > attempt:
                    return False
                kept = (
                    {"ref": output_ref.model_dump_json(exclude_none=True)}
                    if output_ref is not None
                    else {"output": output_json}
                )
                _write(
                    conn,
                    tenant,
                    run_id,
                    f"O#{node}",
                    {**kept, "attempt": attempt, "expires_at": expires_at},
                )
            item = _read(conn, tenant, run_id, f"N#{node}")
            if item is None or item.get("try") != try_id or item.get("state") != NodeState.RUNNING.value:
                return False
            item.update(state=NodeState.SUCCEEDED.value, finished_at=now_ms, out_bytes=out_bytes)
            item.pop("error", None)
            if preview_json is not None:
                item["preview"] = preview_json
            else:
                item.pop("preview", None)
            _write(conn, tenant, run_id, f"N#{node}", item)
        return True

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

        def change(item: Item | None) -> Item | None:
            if item is None or item.get("state") != expect.value:
                return None
            if try_id is not None and item.get("try") != try_id:
                return None
            item.update(state=state.value, error=_json(error))
            if state is NodeState.FAILED:
                item["finished_at"] = now_ms
            return item

        return self._update(tenant, run_id, f"N#{node}", change) is not None

    def output(self, tenant: str, run_id: str, node: str) -> tuple[bool, Any]:
        """(found, the output of a node that succeeded)."""
        with self._db.transaction() as conn:
            item = _read(conn, tenant, run_id, f"N#{node}") or {}
            if item.get("state") != NodeState.SUCCEEDED.value:
                return False, None
            if "preview" in item:
                return True, json.loads(item["preview"])
            large = _read(conn, tenant, run_id, f"O#{node}")
        if large is None:
            return False, None
        return True, stored_output(large)

    # -- compensations ---------------------------------------------------------------------------

    def start_compensation(
        self, tenant: str, run_id: str, node: str, *, try_id: str, now_ms: int, expires_at: int
    ) -> tuple[bool, int]:
        """Begin a compensation attempt; (False, 0) when it already succeeded."""

        def change(item: Item | None) -> Item | None:
            item = dict(item or {})
            if item.get("state") == NodeState.SUCCEEDED.value:
                return None
            item.update(state=NodeState.RUNNING.value, attempt_at=now_ms, expires_at=expires_at)
            item["try"] = try_id
            item.setdefault("started_at", now_ms)
            item["attempts"] = int(item.get("attempts", 0)) + 1
            return item

        after = self._update(tenant, run_id, f"C#{node}", change)
        return (True, int(after["attempts"])) if after is not None else (False, 0)

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
        def change(item: Item | None) -> Item | None:
            if item is None or item.get("try") != try_id or item.get("state") != NodeState.RUNNING.value:
                return None
            item["state"] = state.value
            if state is not NodeState.RETRYING:
                item["finished_at"] = now_ms
            if error is not None:
                item["error"] = _json(error)
            else:
                item.pop("error", None)
            return item

        return self._update(tenant, run_id, f"C#{node}", change) is not None
