"""The wheel's ring on SQLite (the twin of ``adapters/ring_store.py``): one versioned row, written
only on the condition that the version in place is the one the writer read (or, for the first
ring, that there is none), in one transaction."""

from __future__ import annotations

import json

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.ring import Ring


class SqliteRingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def read(self, *, consistent: bool = False) -> Ring | None:
        """The ring in place, or None when none was written yet (every read is consistent here)."""
        row = self._db.one("SELECT version, weights, draining, changed_at FROM wheel_ring WHERE id = 1")
        if row is None:
            return None
        return Ring(
            version=int(row["version"]),
            weights={int(s): float(w) for s, w in json.loads(row["weights"]).items()},
            draining={int(s): int(u) for s, u in json.loads(row["draining"]).items()},
            changed_at=int(row["changed_at"]),
        )

    def write(self, ring: Ring, *, expected_version: int | None) -> bool:
        """Put ``ring`` if the ring in place is still ``expected_version`` (None: if there is none);
        False when someone changed it first."""
        weights = json.dumps({str(s): w for s, w in ring.weights.items()})
        draining = json.dumps({str(s): u for s, u in ring.draining.items()})
        with self._db.transaction() as conn:
            row = conn.execute("SELECT version FROM wheel_ring WHERE id = 1").fetchone()
            if expected_version is None and row is not None:
                return False
            if expected_version is not None and (row is None or int(row["version"]) != expected_version):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO wheel_ring (id, version, weights, draining, changed_at) "
                "VALUES (1, ?, ?, ?, ?)",
                (ring.version, weights, draining, ring.changed_at),
            )
        return True
