"""What the DynamoDB control table holds, on SQLite: circuit breakers (versioned records) and the
per-tenant in-flight counters (a check and a count in one write)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.breaker import Breaker, BreakerState, Tally


class SqliteBreakerStore:
    """The twin of ``adapters/breakers.py``: a change of state lands only on the version it was computed
    from; counting a call adds to its second's bucket and the timeout streak, whatever the version."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def _read(conn: sqlite3.Connection, key: str) -> Breaker:
        row = conn.execute("SELECT doc FROM breaker_states WHERE target = ?", (key,)).fetchone()
        doc = json.loads(row["doc"]) if row is not None else {}
        buckets = {
            r["second"]: (r["calls"], r["errors"])
            for r in conn.execute(
                "SELECT second, calls, errors FROM breaker_buckets WHERE target = ?", (key,)
            )
        }
        return Breaker(
            key=key,
            state=BreakerState(doc.get("state", "closed")),
            opened_at=doc.get("opened_at", 0),
            probe_at=doc.get("probe_at", 0),
            version=doc.get("version", 0),
            since_s=doc.get("since_s", 0),
            timeouts=doc.get("timeouts", 0),
            buckets=buckets,
            reason=doc.get("reason", ""),
        )

    @staticmethod
    def _write(conn: sqlite3.Connection, b: Breaker) -> None:
        doc = {
            "state": b.state.value,
            "opened_at": b.opened_at,
            "probe_at": b.probe_at,
            "version": b.version,
            "since_s": b.since_s,
            "timeouts": b.timeouts,
            "reason": b.reason,
        }
        conn.execute(
            "INSERT OR REPLACE INTO breaker_states (target, doc, version) VALUES (?, ?, ?)",
            (b.key, json.dumps(doc), b.version),
        )

    def get(self, key: str) -> Breaker:
        with self._db.transaction() as conn:
            return self._read(conn, key)

    def count(self, key: str, tally: Tally, stale: list[int]) -> Breaker:
        with self._db.transaction() as conn:
            conn.executemany(
                "DELETE FROM breaker_buckets WHERE target = ? AND second = ?",
                [(key, s) for s in stale if s not in tally.buckets],
            )
            conn.executemany(
                "INSERT INTO breaker_buckets (target, second, calls, errors) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (target, second) DO UPDATE SET calls = calls + excluded.calls,"
                " errors = errors + excluded.errors",
                [(key, s, c, e) for s, (c, e) in sorted(tally.buckets.items())],
            )
            b = self._read(conn, key)
            run = tally.timeouts if tally.answered else b.timeouts + tally.timeouts
            b = replace(b, timeouts=run)
            self._write(conn, b)
            return b

    def replace(self, old: Breaker, new: Breaker) -> bool:
        """Write ``new``'s state if the record is absent or still at ``old.version``; False on a lost race."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT version FROM breaker_states WHERE target = ?", (new.key,)).fetchone()
            if row is not None and row["version"] != old.version:
                return False
            self._write(conn, new)
        return True


class SqliteInflightCounters:
    """The twin of ``adapters/admission.InflightCounters``: accepted tasks not yet ended, per tenant."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def acquire(self, tenant: str, n: int, quota: int) -> bool:
        """Count ``n`` more tasks for ``tenant`` unless that passes ``quota``; False when it would."""
        if n > quota:
            return False
        with self._db.transaction() as conn:
            row = conn.execute("SELECT count FROM inflight WHERE tenant = ?", (tenant,)).fetchone()
            if row is not None and row["count"] > quota - n:
                return False
            conn.execute(
                "INSERT INTO inflight (tenant, count) VALUES (?, ?)"
                " ON CONFLICT (tenant) DO UPDATE SET count = count + excluded.count",
                (tenant, n),
            )
        return True

    def release(self, tenant: str, n: int = 1) -> None:
        """Count ``n`` tasks as ended (never below zero: a release past zero changes nothing)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE inflight SET count = count - ? WHERE tenant = ? AND count >= ?", (n, tenant, n)
            )

    def current(self, tenant: str) -> int:
        row = self._db.one("SELECT count FROM inflight WHERE tenant = ?", (tenant,))
        return int(row["count"]) if row else 0
