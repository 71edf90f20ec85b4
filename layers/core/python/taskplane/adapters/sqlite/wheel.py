"""The timing wheel on SQLite (the twin of ``adapters/wheel_store.py``): entries keyed by shard, slot and
sort key (due time, then id), so one range read returns a slot in due order; one lease row per shard
holds its owner, expiry, planned end and resume point, taken and extended by conditional writes. Each
entry is its own row (the DynamoDB store shares one item among entries written together to save
write units; reads return the same entries either way)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection

from taskplane.adapters.sqlite.db import Database
from taskplane.adapters.sqlite.schedules import ENTRY_TTL_S, put_wheel_entry
from taskplane.adapters.wheel_store import Lease, upto_key
from taskplane.domain.wheel import SLOT_MS, WheelEntry, slot_of, sort_key


def _lease(shard: int, row: sqlite3.Row) -> Lease:
    return Lease(
        shard=shard,
        owner=row["owner"],
        until_ms=row["lease_until"],
        resume_slot=row["resume_slot"],
        resume_sk=row["resume_sk"],
        runs_until=row["runs_until"],
        lag_ms=row["lag_ms"],
        lag_at=row["lag_at"],
    )


class SqliteWheelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- entries ---------------------------------------------------------------------------------
    def put(self, entry: WheelEntry) -> None:
        """Write an entry; writing the same (shard, due, id) again overwrites it (idempotent)."""
        with self._db.transaction() as conn:
            put_wheel_entry(conn, entry, ENTRY_TTL_S)

    def put_many(self, entries: list[WheelEntry]) -> list[Exception | None]:
        """Write entries in one transaction; one outcome per entry, in order (None = written)."""
        with self._db.transaction() as conn:
            for entry in entries:
                put_wheel_entry(conn, entry, ENTRY_TTL_S)
        return [None] * len(entries)

    def delete(self, entry: WheelEntry) -> None:
        """Remove an entry that is no longer needed; absent is fine."""
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM wheel WHERE shard = ? AND slot = ? AND sk = ?",
                (entry.shard, entry.slot_ms, entry.sk),
            )

    def load(
        self,
        shard: int,
        slot_ms: int,
        from_sk: str,
        upto_sk: str | None,
        skip: Collection[tuple[int, str]] = (),
    ) -> list[WheelEntry]:
        """Entries of one slot with ``from_sk <= sk`` (and ``sk <= upto_sk``), in due order, less
        those whose key (slot, sort key) is in ``skip`` (as WheelStore.load)."""
        rows = self._db.query(
            "SELECT * FROM wheel WHERE shard = ? AND slot = ? AND sk >= ? AND (? IS NULL OR sk <= ?) ORDER BY sk",
            (shard, slot_ms, from_sk, upto_sk, upto_sk),
        )
        entries = []
        for r in rows:
            if (slot_ms, r["sk"]) in skip:
                continue
            due, item_id = r["sk"].split("#", 1)
            entries.append(
                WheelEntry(
                    shard=shard,
                    due_ms=int(due),
                    item_id=item_id,
                    tenant=r["tenant"],
                    kind=r["kind"],
                    lane=r["lane"],
                    attempt=r["attempt"],
                )
            )
        return entries

    def any_due(
        self, shard: int, start: tuple[int, str], horizon_ms: int, *, consistent: bool = False
    ) -> bool:
        """Whether any entry lies from ``start`` (slot, sort key; inclusive) up to ``horizon_ms``."""
        first_slot, first_sk = start
        lower = first_sk or sort_key(first_slot, "")
        row = self._db.one(
            "SELECT 1 FROM wheel WHERE shard = ? AND slot BETWEEN ? AND ? AND sk >= ? AND sk <= ? LIMIT 1",
            (shard, first_slot, slot_of(horizon_ms) + SLOT_MS - 1, lower, upto_key(horizon_ms)),
        )
        return row is not None

    # -- lease and cursor ------------------------------------------------------------------------
    def acquire(
        self, shard: int, owner: str, now_ms: int, ttl_ms: int, runs_until: int | None = None
    ) -> Lease | None:
        """Take the shard's lease if it is free, expired or already ours; None when another tick holds it.
        ``runs_until`` says when this holder means to stop (newcomers before then need not wait)."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM wheel_leases WHERE shard = ?", (shard,)).fetchone()
            if row is not None and not (row["lease_until"] < now_ms or row["owner"] == owner):
                return None
            conn.execute(
                "INSERT INTO wheel_leases (shard, owner, lease_until, runs_until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until,"
                " runs_until = excluded.runs_until",
                (shard, owner, now_ms + ttl_ms, runs_until if runs_until is not None else now_ms + ttl_ms),
            )
            return _lease(
                shard, conn.execute("SELECT * FROM wheel_leases WHERE shard = ?", (shard,)).fetchone()
            )

    def peek(self, shard: int) -> Lease | None:
        row = self._db.one("SELECT * FROM wheel_leases WHERE shard = ?", (shard,))
        return _lease(shard, row) if row else None

    def save(
        self,
        shard: int,
        owner: str,
        now_ms: int,
        ttl_ms: int,
        resume: tuple[int, str],
        lag_ms: int | None = None,
    ) -> bool:
        """Record the resume point (and the lag, when given) and extend the lease; False when the lease
        is no longer ours."""
        with self._db.transaction() as conn:
            return (
                conn.execute(
                    "UPDATE wheel_leases SET lease_until = ?, resume_slot = ?, resume_sk = ?,"
                    " lag_ms = COALESCE(?, lag_ms), lag_at = CASE WHEN ? IS NULL THEN lag_at ELSE ? END"
                    " WHERE shard = ? AND owner = ? AND lease_until >= ?",
                    (now_ms + ttl_ms, resume[0], resume[1], lag_ms, lag_ms, now_ms, shard, owner, now_ms),
                ).rowcount
                > 0
            )

    def advance_idle(self, shard: int, now_ms: int, resume: tuple[int, str]) -> bool:
        """Move the resume point of a shard no tick holds to ``resume``; False when a tick holds the lease."""
        with self._db.transaction() as conn:
            return (
                conn.execute(
                    "INSERT INTO wheel_leases (shard, owner, lease_until, resume_slot, resume_sk)"
                    " VALUES (?, '', 0, ?, ?) ON CONFLICT (shard) DO UPDATE SET"
                    " resume_slot = excluded.resume_slot, resume_sk = excluded.resume_sk"
                    " WHERE wheel_leases.lease_until < ?",
                    (shard, resume[0], resume[1], now_ms),
                ).rowcount
                > 0
            )

    def release(self, shard: int, owner: str) -> None:
        """Give the lease up so the next tick can take over at once (no-op if it is not ours)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE wheel_leases SET lease_until = 0 WHERE shard = ? AND owner = ?", (shard, owner)
            )
