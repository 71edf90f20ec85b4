"""Dead-letter records on SQLite (the twin of ``adapters/dead_letters.py``): one row per failed task,
keyed by tenant, so a tenant's listing never sees another's records."""

from __future__ import annotations

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.dead_letters import DeadLetter, DeadLetterStatus, RedriveMoves


class SqliteDeadLetterStore(RedriveMoves):
    """Per-tenant dead-letter records: put (idempotent), get, list newest first, claim for redrive."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, record: DeadLetter) -> None:
        """Write the record unless one for this task exists already (a repeated write changes nothing)."""
        record = record.model_copy(update={"reason": record.reason[:2000]})
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO dead_letters (tenant, task_id, status, doc) VALUES (?, ?, ?, ?)",
                (record.tenant, record.task_id, record.status, record.model_dump_json()),
            )

    def get(self, tenant: str, task_id: str) -> DeadLetter | None:
        row = self._db.one("SELECT doc FROM dead_letters WHERE tenant = ? AND task_id = ?", (tenant, task_id))
        return DeadLetter.model_validate_json(row["doc"]) if row else None

    def list(
        self, tenant: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[DeadLetter], str | None]:
        """This tenant's records, newest first; ``cursor`` is the last task id of the previous page."""
        rows = self._db.query(
            "SELECT doc FROM dead_letters WHERE tenant = ? AND (? IS NULL OR task_id < ?)"
            " AND (? IS NULL OR status = ?) ORDER BY task_id DESC LIMIT ?",
            (tenant, cursor or None, cursor or None, status or None, status or None, limit + 1),
        )
        page = [DeadLetter.model_validate_json(r["doc"]) for r in rows[:limit]]
        return page, (page[-1].task_id if page and len(rows) > limit else None)

    def _move(
        self,
        tenant: str,
        task_id: str,
        old: DeadLetterStatus,
        new: DeadLetterStatus,
        new_task_id: str,
        now_ms: int,
    ) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT doc FROM dead_letters WHERE tenant = ? AND task_id = ?", (tenant, task_id)
            ).fetchone()
            if row is None:
                return False
            record = DeadLetter.model_validate_json(row["doc"])
            if record.status != old or (old != "dead" and record.redriven_as != new_task_id):
                return False
            changes: dict[str, object] = {"status": new, "redriven_at": now_ms}
            if old == "dead":
                changes["redriven_as"] = new_task_id
            record = record.model_copy(update=changes)
            conn.execute(
                "UPDATE dead_letters SET status = ?, doc = ? WHERE tenant = ? AND task_id = ?",
                (new, record.model_dump_json(), tenant, task_id),
            )
        return True
