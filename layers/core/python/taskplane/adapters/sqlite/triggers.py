"""Trigger records on SQLite (the twin of ``adapters/triggers.TriggerStore``); their rules live on the
SQLite event bus (``events.py``)."""

from __future__ import annotations

import builtins

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.triggers import Trigger


class SqliteTriggerStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, trigger: Trigger) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO triggers (tenant, trigger_id, doc) VALUES (?, ?, ?)",
                (trigger.tenant, trigger.trigger_id, trigger.model_dump_json()),
            )

    def get(self, tenant: str, trigger_id: str) -> Trigger | None:
        row = self._db.one(
            "SELECT doc FROM triggers WHERE tenant = ? AND trigger_id = ?", (tenant, trigger_id)
        )
        return Trigger.model_validate_json(row["doc"]) if row else None

    def list(self, tenant: str) -> list[Trigger]:
        """Every trigger of the tenant, newest first."""
        rows = self._db.query("SELECT doc FROM triggers WHERE tenant = ? ORDER BY trigger_id DESC", (tenant,))
        return [Trigger.model_validate_json(r["doc"]) for r in rows]

    def all(self, segment: int = 0, segments: int = 1) -> builtins.list[Trigger]:
        rows = self._db.query("SELECT doc FROM triggers ORDER BY tenant, trigger_id DESC")
        found = [Trigger.model_validate_json(r["doc"]) for r in rows]
        return found[segment::segments]  # (parts as a parallel Scan's: each trigger in exactly one)

    def delete(self, tenant: str, trigger_id: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM triggers WHERE tenant = ? AND trigger_id = ?", (tenant, trigger_id))
