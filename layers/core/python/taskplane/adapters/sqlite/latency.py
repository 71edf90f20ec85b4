"""Per-target duration sketches on SQLite (the twin of ``adapters/latency.py``): one row per tenant,
target and minute with its bucket counts, added to in one transaction per write (DynamoDB's ``ADD``),
and one row per tenant and measured target (the index ``GET /v1/stats`` lists)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from taskplane.adapters.sqlite.db import Database


class SqliteLatencyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, tenant: str, target: str, slice_ms: int, counts: Mapping[int, int], expires_at: int) -> int:
        """Add bucket counts to one target's minute (one write)."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT counts FROM sketches WHERE tenant = ? AND target = ? AND slice = ?",
                (tenant, target, slice_ms),
            ).fetchone()
            merged = {int(k): int(v) for k, v in json.loads(row["counts"]).items()} if row else {}
            for bucket, n in counts.items():
                merged[int(bucket)] = merged.get(int(bucket), 0) + int(n)
            conn.execute(
                "INSERT OR REPLACE INTO sketches (tenant, target, slice, counts, expires_at) VALUES (?, ?, ?, ?, ?)",
                (tenant, target, slice_ms, json.dumps(merged), expires_at),
            )
        return 1

    def read(self, tenant: str, target: str, slices_ms: list[int]) -> list[dict[int, int]]:
        return self.read_many(tenant, {target: slices_ms}).get(target, [])

    def read_many(self, tenant: str, wanted: Mapping[str, list[int]]) -> dict[str, list[dict[int, int]]]:
        """The bucket counts of the minutes that exist among each target's slices."""
        out: dict[str, list[dict[int, int]]] = {t: [] for t in wanted}
        for target, slices in wanted.items():
            if not slices:
                continue
            marks = ",".join("?" * len(slices))
            rows = self._db.query(
                f"SELECT counts FROM sketches WHERE tenant = ? AND target = ? AND slice IN ({marks})",
                (tenant, target, *slices),
            )
            out[target] = [{int(k): int(v) for k, v in json.loads(r["counts"]).items()} for r in rows]
        return out

    def remember(self, tenant: str, target: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO sketch_targets (tenant, target) VALUES (?, ?)", (tenant, target)
            )

    def targets(self, tenant: str) -> list[str]:
        rows = self._db.query("SELECT target FROM sketch_targets WHERE tenant = ? ORDER BY target", (tenant,))
        return [r["target"] for r in rows]
