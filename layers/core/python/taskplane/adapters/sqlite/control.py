"""What the DynamoDB control table holds, on SQLite: circuit breakers (versioned records) and the
per-tenant in-flight counters (a check and a count in one write)."""

from __future__ import annotations

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.breaker import Breaker, BreakerState


class SqliteBreakerStore:
    """The twin of ``adapters/breakers.py``: a write lands only on the version it was computed from."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, key: str) -> Breaker:
        row = self._db.one("SELECT * FROM breakers WHERE target = ?", (key,))
        if row is None:
            return Breaker(key=key)
        return Breaker(
            key=key,
            state=BreakerState(row["state"]),
            failures=row["failures"],
            opened_at=row["opened_at"],
            probe_at=row["probe_at"],
            version=row["version"],
        )

    def replace(self, old: Breaker, new: Breaker) -> bool:
        """Write ``new`` if the record is absent or still at ``old.version``; False on a lost race."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT version FROM breakers WHERE target = ?", (new.key,)).fetchone()
            if row is not None and row["version"] != old.version:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO breakers (target, state, failures, opened_at, probe_at, version)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (new.key, new.state.value, new.failures, new.opened_at, new.probe_at, new.version),
            )
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
