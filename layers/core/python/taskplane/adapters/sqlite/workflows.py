"""Workflow definitions and their versions on SQLite (the twin of ``adapters/workflow_store.py``)."""

from __future__ import annotations

import json
import sqlite3
import zlib
from dataclasses import asdict
from typing import Any

from taskplane.adapters.sqlite.db import Database
from taskplane.adapters.workflow_store import MAX_STORED_DEFINITION_BYTES, VersionRecord, WorkflowRecord
from taskplane.domain.errors import Conflict, PayloadTooLarge, Unavailable


def _workflow(row: sqlite3.Row) -> WorkflowRecord:
    doc = json.loads(row["doc"])
    doc["routing"] = {int(k): int(v) for k, v in doc.get("routing", {}).items()}
    return WorkflowRecord(**doc)


def _version(row: sqlite3.Row, *, with_definition: bool) -> VersionRecord:
    doc = json.loads(row["doc"])
    definition = json.loads(zlib.decompress(row["definition"])) if with_definition else None
    return VersionRecord(**{**doc, "gates": tuple(doc.get("gates", ())), "definition": definition})


class SqliteWorkflowStore:
    """Workflows and versions of every tenant. Versions never change, so reads need no cache here."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, tenant: str, name: str) -> WorkflowRecord | None:
        row = self._db.one("SELECT doc FROM workflows WHERE tenant = ? AND name = ?", (tenant, name))
        return _workflow(row) if row else None

    def list_workflows(
        self, tenant: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[WorkflowRecord], str | None]:
        """A tenant's workflows by name; ``cursor`` is the last name of the previous page."""
        rows = self._db.query(
            "SELECT doc FROM workflows WHERE tenant = ? AND (? IS NULL OR name > ?) ORDER BY name LIMIT ?",
            (tenant, cursor or None, cursor or None, limit + 1),
        )
        items = [_workflow(r) for r in rows[:limit]]
        return items, (items[-1].name if len(rows) > limit and items else None)

    def publish(self, before: WorkflowRecord | None, after: WorkflowRecord, version: VersionRecord) -> None:
        """Store a new version and move the workflow to it, unless someone published meanwhile.

        Raises ``Conflict`` when another publish won, ``PayloadTooLarge`` for a definition that would
        not fit the DynamoDB item either (the same limit on both backends).
        """
        assert version.definition is not None
        blob = zlib.compress(
            json.dumps(version.definition, separators=(",", ":")).encode("utf-8", "surrogatepass")
        )
        if len(blob) > MAX_STORED_DEFINITION_BYTES:
            raise PayloadTooLarge(
                f"the definition is {len(blob)} bytes compressed; the limit is {MAX_STORED_DEFINITION_BYTES}",
                [{"field": "body", "size": len(blob), "limit": MAX_STORED_DEFINITION_BYTES}],
            )
        workflow_doc = json.dumps({**asdict(after), "routing": {str(k): v for k, v in after.routing.items()}})
        version_doc = json.dumps({**asdict(version), "definition": None, "gates": list(version.gates)})
        conflict = Conflict(
            f"workflow {after.name!r} was changed by another request; send it again",
            [{"field": "name", "problem": "concurrent_update"}],
        )
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT latest FROM workflows WHERE tenant = ? AND name = ?", (after.tenant, after.name)
            ).fetchone()
            if (row is None) != (before is None) or (before is not None and row["latest"] != before.latest):
                raise conflict
            try:
                conn.execute(
                    "INSERT INTO workflow_versions (tenant, name, version, doc, definition) VALUES (?, ?, ?, ?, ?)",
                    (after.tenant, after.name, version.version, version_doc, blob),
                )
            except sqlite3.IntegrityError:
                raise conflict from None
            conn.execute(
                "INSERT OR REPLACE INTO workflows (tenant, name, latest, doc) VALUES (?, ?, ?, ?)",
                (after.tenant, after.name, after.latest, workflow_doc),
            )

    def set_routing(self, record: WorkflowRecord, routing: dict[int, int], now_ms: int) -> None:
        """Replace the canary split (empty: runs use the latest version)."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT doc FROM workflows WHERE tenant = ? AND name = ?", (record.tenant, record.name)
            ).fetchone()
            if row is None:
                # DynamoDB's failed condition here is an error too (the service checked it exists).
                raise Unavailable("routing the workflow failed: the workflow is gone")
            doc: dict[str, Any] = json.loads(row["doc"])
            doc.update(routing={str(k): v for k, v in routing.items()}, updated_at=now_ms)
            conn.execute(
                "UPDATE workflows SET doc = ? WHERE tenant = ? AND name = ?",
                (json.dumps(doc), record.tenant, record.name),
            )

    def versions(self, tenant: str, name: str) -> list[VersionRecord]:
        """Every version, oldest first, without definitions."""
        rows = self._db.query(
            "SELECT doc FROM workflow_versions WHERE tenant = ? AND name = ? ORDER BY version", (tenant, name)
        )
        return [_version(r, with_definition=False) for r in rows]

    def version(self, tenant: str, name: str, version: int) -> VersionRecord | None:
        """One version with its definition."""
        row = self._db.one(
            "SELECT doc, definition FROM workflow_versions WHERE tenant = ? AND name = ? AND version = ?",
            (tenant, name, version),
        )
        return _version(row, with_definition=True) if row else None

    def everything(self) -> list[tuple[WorkflowRecord, list[VersionRecord]]]:
        """Every tenant's workflows, each with its versions (definitions included), oldest first: what
        the local runtime publishes again into Step Functions when it reopens its file."""
        found = []
        for row in self._db.query("SELECT tenant, name, doc FROM workflows ORDER BY tenant, name"):
            versions = self._db.query(
                "SELECT doc, definition FROM workflow_versions WHERE tenant = ? AND name = ? ORDER BY version",
                (row["tenant"], row["name"]),
            )
            found.append((_workflow(row), [_version(v, with_definition=True) for v in versions]))
        return found
