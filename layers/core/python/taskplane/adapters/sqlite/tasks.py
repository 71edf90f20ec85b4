"""Tasks on SQLite (the twin of ``adapters/task_store.py``): one row per task, keyed by tenant and
the time-ordered id (newest first is ``ORDER BY task_id DESC``, the cursor the last id seen), the
task as JSON. Every move is one transaction that checks what the DynamoDB adapter's condition checks
(the expected state, the attempt, the due time) and appends the moves to the history."""

from __future__ import annotations

import builtins
import sqlite3
import time
from typing import Any

from taskplane.adapters.sqlite.db import Database
from taskplane.adapters.task_store import SETTABLE, TransitionResult
from taskplane.domain.errors import Conflict
from taskplane.domain.models import HistoryEntry, Task, TaskErrorInfo
from taskplane.domain.states import TaskState, check_path
from taskplane.tracing import NULL_TRACING, Tracing


def _doc(task: Task) -> str:
    return task.model_dump_json(exclude_defaults=True)


def _entry(state: TaskState, at_ms: int, detail: str | None) -> HistoryEntry:
    # As the DynamoDB item keeps it: an empty detail reads back as none.
    return HistoryEntry(state=state, at=at_ms, detail=detail or None)


class SqliteTaskStore:
    def __init__(self, db: Database, *, tracing: Tracing = NULL_TRACING) -> None:
        self._db = db
        #: a stored task is the root span of its trace, whichever door it came in by
        self.tracing = tracing

    @staticmethod
    def _read(conn: sqlite3.Connection, tenant: str, task_id: str) -> tuple[Task, int | None] | None:
        row = conn.execute(
            "SELECT doc, expires_at FROM tasks WHERE tenant = ? AND task_id = ?", (tenant, task_id)
        ).fetchone()
        return (Task.model_validate_json(row["doc"]), row["expires_at"]) if row else None

    @staticmethod
    def _write(conn: sqlite3.Connection, task: Task, expires_at: int | None) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO tasks (tenant, task_id, state, doc, expires_at) VALUES (?, ?, ?, ?, ?)",
            (task.tenant, task.task_id, task.state.value, _doc(task), expires_at),
        )

    def create(self, task: Task) -> None:
        """Store a new task; Conflict when its id exists."""
        began = time.time_ns()
        with self._db.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO tasks (tenant, task_id, state, doc) VALUES (?, ?, ?, ?)",
                    (task.tenant, task.task_id, task.state.value, _doc(task)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"task {task.task_id} already exists") from None
        self.tracing.tasks_created([task], began)

    def create_many(self, tasks: list[Task]) -> list[Exception | None]:
        """Store tasks (as BatchWriteItem does: an id that exists is overwritten); one outcome each."""
        began = time.time_ns()
        with self._db.transaction() as conn:
            for task in tasks:
                self._write(conn, task, None)
        self.tracing.tasks_created(tasks, began)
        return [None] * len(tasks)

    def get(self, tenant: str, task_id: str) -> Task | None:
        row = self._db.one("SELECT doc FROM tasks WHERE tenant = ? AND task_id = ?", (tenant, task_id))
        return Task.model_validate_json(row["doc"]) if row else None

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, state: TaskState | None = None
    ) -> tuple[list[Task], str | None]:
        """A tenant's tasks, newest first; ``cursor`` is the last task id of the previous page."""
        rows = self._db.query(
            "SELECT doc FROM tasks WHERE tenant = ? AND (? IS NULL OR task_id < ?) AND (? IS NULL OR state = ?)"
            " ORDER BY task_id DESC LIMIT ?",
            (tenant, cursor or None, cursor or None, state and state.value, state and state.value, limit + 1),
        )
        page = [Task.model_validate_json(r["doc"]) for r in rows[:limit]]
        return page, (page[-1].task_id if page and len(rows) > limit else None)

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
        """Move a task from ``expected`` through ``path`` in one transaction; a task not in ``expected``
        (or not at ``expected_attempts``, or not yet due) is a lost race: ``ok=False`` with the task."""
        check_path(expected, path)
        fields = dict(fields or {})
        unknown = set(fields) - SETTABLE
        if unknown:
            raise ValueError(f"cannot set {sorted(unknown)} in a transition")
        with self._db.transaction() as conn:
            found = self._read(conn, tenant, task_id)
            if found is None:
                return TransitionResult(ok=False, task=None)
            task, expires_at = found
            due = getattr(task, due_field, None) if due_field is not None else None
            if (
                task.state is not expected
                or (expected_attempts is not None and task.attempts != expected_attempts)
                or (due_field is not None and due_by is not None and (due is None or due > due_by))
            ):
                return TransitionResult(ok=False, task=task)
            changes: dict[str, Any] = {name: None for name in remove if name != "expires_at"}
            if "expires_at" in remove:
                expires_at = None
            if "expires_at" in fields:
                expires_at = int(fields.pop("expires_at"))
            if isinstance(fields.get("error"), dict):
                fields["error"] = TaskErrorInfo(**fields["error"])
            changes.update(fields)
            changes["state"] = path[-1]
            changes["history"] = [
                *task.history,
                *(_entry(s, at_ms, detail if i == len(path) - 1 else None) for i, s in enumerate(path)),
            ]
            if add_attempt:
                changes["attempts"] = task.attempts + 1
            after = task.model_copy(update=changes)
            self._write(conn, after, expires_at)
        return TransitionResult(ok=True, task=after if return_task else None)

    def claim_fallback(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool:
        """The twin of the DynamoDB store's: at most one fallback per task, by a RUNNING attempt."""
        with self._db.transaction() as conn:
            found = self._read(conn, tenant, task_id)
            if found is None:
                return False
            task, expires_at = found
            if task.fallback is not None or task.state is not TaskState.RUNNING or task.attempts != attempts:
                return False
            self._write(
                conn, task.model_copy(update={"fallback": {"state": "RUNNING", "at": at_ms}}), expires_at
            )
        return True

    def heartbeat(self, tenant: str, task_id: str, attempts: int, at_ms: int) -> bool:
        """Record that the running attempt ``attempts`` is alive; False when it is not running any more."""
        with self._db.transaction() as conn:
            found = self._read(conn, tenant, task_id)
            if found is None or found[0].state is not TaskState.RUNNING or found[0].attempts != attempts:
                return False
            self._write(conn, found[0].model_copy(update={"heartbeat_at": at_ms}), found[1])
        return True

    def note(self, tenant: str, task_id: str, state: TaskState, *, at_ms: int, detail: str) -> bool:
        """Append a history note to a task still in ``state``; False when it moved on (or is gone)."""
        with self._db.transaction() as conn:
            found = self._read(conn, tenant, task_id)
            if found is None or found[0].state is not state:
                return False
            task = found[0]
            history = [*task.history, _entry(state, at_ms, detail)]
            self._write(conn, task.model_copy(update={"history": history}), found[1])
        return True

    def delete_unstarted(self, tenant: str, task_id: str) -> None:
        """Remove a task that never started (PENDING or SCHEDULED); anything else stays."""
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM tasks WHERE tenant = ? AND task_id = ? AND state IN ('PENDING', 'SCHEDULED')",
                (tenant, task_id),
            )
