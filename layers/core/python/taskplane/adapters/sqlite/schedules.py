"""Schedules on SQLite (the twin of ``adapters/schedule_store.py``): a tenant's schedules by id,
newest first; a schedule and its wheel entry are written in one transaction, or neither."""

from __future__ import annotations

import sqlite3

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.errors import Conflict
from taskplane.domain.schedules import Schedule
from taskplane.domain.wheel import WheelEntry


def put_wheel_entry(conn: sqlite3.Connection, entry: WheelEntry, ttl_s: int) -> None:
    """Write a wheel entry inside the caller's transaction (the same key again overwrites it)."""
    conn.execute(
        "INSERT OR REPLACE INTO wheel (shard, slot, sk, tenant, kind, lane, attempt, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.shard,
            entry.slot_ms,
            entry.sk,
            entry.tenant,
            entry.kind,
            entry.lane,
            entry.attempt,
            entry.due_ms // 1000 + ttl_s,
        ),
    )


#: Wheel entries are kept this long after they are due (the DynamoDB wheel's TTL).
ENTRY_TTL_S = 7 * 24 * 3600


class SqliteScheduleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, schedule: Schedule, entry: WheelEntry | None) -> None:
        """Store the schedule and its first wheel entry together, or neither."""
        with self._db.transaction() as conn:
            try:
                conn.execute(
                    "INSERT INTO schedules (tenant, schedule_id, next_fire_at, doc) VALUES (?, ?, ?, ?)",
                    (
                        schedule.tenant,
                        schedule.schedule_id,
                        schedule.next_fire_at,
                        schedule.model_dump_json(),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                # DynamoDB cancels the transaction (a 503 there, never a silent overwrite).
                raise Conflict(f"schedule {schedule.schedule_id} already exists") from exc
            if entry is not None:
                put_wheel_entry(conn, entry, ENTRY_TTL_S)

    def get(self, tenant: str, schedule_id: str) -> Schedule | None:
        row = self._db.one(
            "SELECT doc FROM schedules WHERE tenant = ? AND schedule_id = ?", (tenant, schedule_id)
        )
        return Schedule.model_validate_json(row["doc"]) if row else None

    def list(self, tenant: str, *, limit: int, cursor: str | None) -> tuple[list[Schedule], str | None]:
        rows = self._db.query(
            "SELECT doc FROM schedules WHERE tenant = ? AND (? IS NULL OR schedule_id < ?)"
            " ORDER BY schedule_id DESC LIMIT ?",
            (tenant, cursor or None, cursor or None, limit + 1),
        )
        page = [Schedule.model_validate_json(r["doc"]) for r in rows[:limit]]
        return page, (page[-1].schedule_id if len(rows) > limit and page else None)

    def update(
        self,
        schedule: Schedule,
        *,
        expected_next: int | None,
        entry: WheelEntry | None = None,
        expected_updated: int | None = None,
    ) -> bool:
        """Replace the schedule if its ``next_fire_at`` is still ``expected_next`` (and, when given, its
        ``updated_at`` still ``expected_updated``) and write ``entry`` in the same transaction; False
        when another writer got there first."""
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE schedules SET next_fire_at = ?, doc = ? WHERE tenant = ? AND schedule_id = ?"
                " AND next_fire_at IS ? AND (? IS NULL OR json_extract(doc, '$.updated_at') = ?)",
                (
                    schedule.next_fire_at,
                    schedule.model_dump_json(),
                    schedule.tenant,
                    schedule.schedule_id,
                    expected_next,
                    expected_updated,
                    expected_updated,
                ),
            ).rowcount
            if not changed:
                return False
            if entry is not None:
                put_wheel_entry(conn, entry, ENTRY_TTL_S)
        return True

    def delete(self, tenant: str, schedule_id: str) -> bool:
        with self._db.transaction() as conn:
            return (
                conn.execute(
                    "DELETE FROM schedules WHERE tenant = ? AND schedule_id = ?", (tenant, schedule_id)
                ).rowcount
                > 0
            )
