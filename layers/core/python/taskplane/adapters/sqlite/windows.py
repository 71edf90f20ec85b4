"""Windows of windowed triggers on SQLite (the twin of ``adapters/windows.py``).

Tables (rows expire after retention, as the tasks table's items do):

- ``window_keys``: which window is open for a key of a tenant's trigger;
- ``window_marks``: an event the trigger counted already (its dedup id);
- ``window_heads``: a window (state OPEN -> CLOSING -> CLOSED, count, bytes, ends);
- ``window_events``: an event it holds (a debounce keeps one, ``sk = "e#last"``).

An event is taken in one transaction: its mark written only if absent (a redelivered event is
counted once), its event row, and the head's count and bytes, on the condition that the window is
still open, not past its end, and has room; a condition that fails writes nothing.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from taskplane.adapters.sqlite.db import Database
from taskplane.domain.windows import Collected, WindowHead

Taken = Literal["taken", "duplicate", "refused"]


class SqliteWindowStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reading ------------------------------------------------------------------------------------
    def current(self, tenant: str, trigger_id: str, digest: str) -> str | None:
        """The id of the window last opened for a key (open or not), or None."""
        row = self._db.one(
            "SELECT window_id FROM window_keys WHERE tenant = ? AND trigger_id = ? AND digest = ?",
            (tenant, trigger_id, digest),
        )
        return str(row["window_id"]) if row else None

    def head(self, tenant: str, trigger_id: str, window_id: str) -> WindowHead | None:
        row = self._db.one(
            "SELECT * FROM window_heads WHERE tenant = ? AND trigger_id = ? AND window_id = ?",
            (tenant, trigger_id, window_id),
        )
        if row is None:
            return None
        return WindowHead(
            window_id=window_id,
            key=row["key"],
            opened_at=int(row["opened_at"]),
            closes_at=int(row["closes_at"]),
            count=int(row["count"]),
            bytes=int(row["bytes"]),
            matched=frozenset(int(m) for m in json.loads(row["matched"])),
            last_at=int(row["last_at"]),
            state=row["state"],
            reason=row["reason"],
            task_id=row["task_id"],
        )

    def seen(self, tenant: str, trigger_id: str, dedup: str) -> bool:
        """Whether the trigger counted this event already."""
        row = self._db.one(
            "SELECT 1 FROM window_marks WHERE tenant = ? AND trigger_id = ? AND dedup = ?",
            (tenant, trigger_id, dedup),
        )
        return row is not None

    def events(self, tenant: str, trigger_id: str, window_id: str) -> list[Collected]:
        """Every event the window holds."""
        rows = self._db.query(
            "SELECT event_id, at, doc, patterns FROM window_events "
            "WHERE tenant = ? AND trigger_id = ? AND window_id = ? ORDER BY sk",
            (tenant, trigger_id, window_id),
        )
        return [
            Collected(
                at=int(r["at"]),
                event_id=r["event_id"],
                event=json.loads(r["doc"]),
                patterns=frozenset(int(p) for p in json.loads(r["patterns"])),
            )
            for r in rows
        ]

    # -- writing ------------------------------------------------------------------------------------
    def open(
        self,
        tenant: str,
        trigger_id: str,
        digest: str,
        head: WindowHead,
        previous: str | None,
        expires_at: int,
    ) -> bool:
        """Open ``head`` as the key's window, if the key's window is still ``previous`` (None: none
        yet); False when another event opened one first."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT window_id FROM window_keys WHERE tenant = ? AND trigger_id = ? AND digest = ?",
                (tenant, trigger_id, digest),
            ).fetchone()
            if (row["window_id"] if row else None) != previous:
                return False
            exists = conn.execute(
                "SELECT 1 FROM window_heads WHERE tenant = ? AND trigger_id = ? AND window_id = ?",
                (tenant, trigger_id, head.window_id),
            ).fetchone()
            if exists:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO window_keys (tenant, trigger_id, digest, window_id, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant, trigger_id, digest, head.window_id, expires_at),
            )
            conn.execute(
                "INSERT INTO window_heads (tenant, trigger_id, window_id, key, opened_at, closes_at, count, "
                "bytes, matched, last_at, state, expires_at) VALUES (?, ?, ?, ?, ?, ?, 0, 0, '[]', ?, 'OPEN', ?)",
                (
                    tenant,
                    trigger_id,
                    head.window_id,
                    head.key,
                    head.opened_at,
                    head.closes_at,
                    head.opened_at,
                    expires_at,
                ),
            )
        return True

    def take(
        self,
        tenant: str,
        trigger_id: str,
        head: WindowHead,
        *,
        dedup: str,
        event_id: str,
        doc: str,
        size: int,
        now_ms: int,
        max_count: int,
        room: int,
        pattern: int | None,
        closes_at: int | None,
        only: bool,
        expires_at: int,
    ) -> Taken:
        """Take one event into the open window ``head`` (see the module's docstring and
        ``adapters/windows.py``): "taken", "duplicate" (the trigger counted it before, in any of its
        windows) or "refused" (the window is no longer open, past its end, or full; nothing written)."""
        key = (tenant, trigger_id, head.window_id)
        with self._db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM window_marks WHERE tenant = ? AND trigger_id = ? AND dedup = ?",
                (tenant, trigger_id, dedup),
            ).fetchone():
                return "duplicate"
            row = conn.execute(
                "SELECT state, closes_at, count, bytes, matched FROM window_heads "
                "WHERE tenant = ? AND trigger_id = ? AND window_id = ?",
                key,
            ).fetchone()
            if row is None or row["state"] != "OPEN" or int(row["closes_at"]) <= now_ms:
                return "refused"
            count, stored_bytes = int(row["count"]), int(row["bytes"])
            if count >= max_count:
                return "refused"
            if not only and not (count == 0 or stored_bytes <= max(room - size, -1)):
                return "refused"
            conn.execute(
                "INSERT INTO window_marks (tenant, trigger_id, dedup, window_id, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (tenant, trigger_id, dedup, head.window_id, expires_at),
            )
            sk = "e#last" if only else f"e#{event_id}"
            if pattern is None:
                conn.execute(
                    "INSERT OR REPLACE INTO window_events (tenant, trigger_id, window_id, sk, event_id, at, "
                    "doc, patterns, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?)",
                    (*key, sk, event_id, now_ms, doc, expires_at),
                )
            else:
                # An event that matches two patterns arrives once per pattern: one row, both patterns.
                old = conn.execute(
                    "SELECT at, patterns FROM window_events "
                    "WHERE tenant = ? AND trigger_id = ? AND window_id = ? AND sk = ?",
                    (*key, sk),
                ).fetchone()
                at = int(old["at"]) if old else now_ms
                patterns = sorted(set(json.loads(old["patterns"]) if old else []) | {pattern})
                conn.execute(
                    "INSERT OR REPLACE INTO window_events (tenant, trigger_id, window_id, sk, event_id, at, "
                    "doc, patterns, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, sk, event_id, at, doc, json.dumps(patterns), expires_at),
                )
            matched = set(json.loads(row["matched"]))
            if pattern is not None:
                matched.add(pattern)
            conn.execute(
                "UPDATE window_heads SET count = ?, bytes = ?, last_at = ?, matched = ?, "
                "closes_at = ? WHERE tenant = ? AND trigger_id = ? AND window_id = ?",
                (
                    count + 1,
                    size if only else stored_bytes + size,
                    now_ms,
                    json.dumps(sorted(matched)),
                    closes_at if closes_at is not None else int(row["closes_at"]),
                    *key,
                ),
            )
        return "taken"

    def seal(
        self, tenant: str, trigger_id: str, window_id: str, reason: str, now_ms: int
    ) -> WindowHead | None:
        """OPEN -> CLOSING with ``reason`` (no event is taken after); the head as it then is, also
        when it was already CLOSING or CLOSED (a close tried again), None when there is none."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE window_heads SET state = 'CLOSING', reason = ?, sealed_at = ? "
                "WHERE tenant = ? AND trigger_id = ? AND window_id = ? AND state = 'OPEN'",
                (reason, now_ms, tenant, trigger_id, window_id),
            )
        return self.head(tenant, trigger_id, window_id)

    def finish(self, tenant: str, trigger_id: str, window_id: str, task_id: str | None) -> None:
        """CLOSING -> CLOSED, naming the task it started (if any)."""
        params: tuple[Any, ...]
        if task_id is None:
            sql = "UPDATE window_heads SET state = 'CLOSED' "
            params = ()
        else:
            sql = "UPDATE window_heads SET state = 'CLOSED', task_id = ? "
            params = (task_id,)
        with self._db.transaction() as conn:
            conn.execute(
                sql + "WHERE tenant = ? AND trigger_id = ? AND window_id = ? AND state = 'CLOSING'",
                (*params, tenant, trigger_id, window_id),
            )
