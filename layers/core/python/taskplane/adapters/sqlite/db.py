"""The SQLite database every SQLite adapter shares: one connection, the schema, transactions.

One connection per :class:`Database`, shared by every thread of the process (the gateway, the tick,
the pollers and in-process Lambda calls) behind one lock: SQLite runs one writer at a time anyway,
each statement takes microseconds, and a ``:memory:`` database exists only on the connection that
made it. A file database is in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives the process being killed (only a power cut can lose the last ones).

The adapters keep the conditional semantics of their DynamoDB twins by doing each conditional write
as one transaction (:meth:`Database.transaction`: ``BEGIN IMMEDIATE``, read, check, write, commit)
under the lock; a condition that does not hold is the same ordinary outcome as DynamoDB's
``ConditionalCheckFailedException`` (``False``, ``None``), never an error.

Expiry: rows with an ``expires_at`` (epoch seconds, like DynamoDB's TTL attribute) stay readable
after it, exactly as DynamoDB keeps serving expired items until its TTL process deletes them (days
later); :meth:`Database.purge_expired` is that process, run by the local runtime.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskplane.domain.errors import Unavailable

#: Bumped when the schema changes; a file written with another version is refused with a message.
SCHEMA_VERSION = 1

#: Every table (its rows are each store's items; columns that conditions and listings use are
#: columns, the rest of a record is JSON in ``doc``).
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    tenant TEXT NOT NULL, task_id TEXT NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL, expires_at INTEGER,
    PRIMARY KEY (tenant, task_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (tenant, state, task_id);
CREATE TABLE IF NOT EXISTS schedules (
    tenant TEXT NOT NULL, schedule_id TEXT NOT NULL, next_fire_at INTEGER, doc TEXT NOT NULL,
    PRIMARY KEY (tenant, schedule_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS triggers (
    tenant TEXT NOT NULL, trigger_id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (tenant, trigger_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workflows (
    tenant TEXT NOT NULL, name TEXT NOT NULL, latest INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (tenant, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workflow_versions (
    tenant TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    definition BLOB NOT NULL,
    PRIMARY KEY (tenant, name, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_items (
    tenant TEXT NOT NULL, run_id TEXT NOT NULL, sk TEXT NOT NULL, doc TEXT NOT NULL, expires_at INTEGER,
    PRIMARY KEY (tenant, run_id, sk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS run_listing (
    tenant TEXT NOT NULL, workflow TEXT NOT NULL, run_id TEXT NOT NULL, doc TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (tenant, workflow, run_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
    tenant TEXT NOT NULL, task_id TEXT NOT NULL, status TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (tenant, task_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, expiration INTEGER NOT NULL,
    in_progress_expiration INTEGER, validation TEXT, data TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_states (
    target TEXT PRIMARY KEY, doc TEXT NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaker_buckets (
    target TEXT NOT NULL, second INTEGER NOT NULL, calls INTEGER NOT NULL, errors INTEGER NOT NULL,
    PRIMARY KEY (target, second)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inflight (
    tenant TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_buses (
    name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event_rules (
    bus TEXT NOT NULL, name TEXT NOT NULL, pattern TEXT NOT NULL, lane TEXT, envelope TEXT,
    PRIMARY KEY (bus, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY, visibility_s INTEGER NOT NULL, delay_s INTEGER NOT NULL, dlq TEXT,
    max_receives INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    queue TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL, attributes TEXT, sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL, receives INTEGER NOT NULL, first_received_at INTEGER, receipt TEXT);
CREATE INDEX IF NOT EXISTS messages_due ON messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
CREATE TABLE IF NOT EXISTS wheel_leases (
    shard INTEGER PRIMARY KEY, owner TEXT NOT NULL, lease_until INTEGER NOT NULL, resume_slot INTEGER,
    resume_sk TEXT NOT NULL DEFAULT '', runs_until INTEGER);
CREATE TABLE IF NOT EXISTS wheel (
    shard INTEGER NOT NULL, slot INTEGER NOT NULL, sk TEXT NOT NULL, tenant TEXT NOT NULL,
    kind TEXT NOT NULL, lane TEXT NOT NULL, attempt INTEGER NOT NULL, expires_at INTEGER,
    PRIMARY KEY (shard, slot, sk)) WITHOUT ROWID;
"""

#: Tables whose rows expire (``expires_at``, epoch seconds), as the DynamoDB tables with a TTL.
EXPIRING = ("tasks", "run_items", "run_listing", "wheel")


class SchemaMismatch(RuntimeError):
    """The database file was written by another version of the schema."""


class Database:
    """One SQLite database (a file, or ``":memory:"``) shared by the adapters of one process."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        # isolation_level=None: no implicit transactions; every write that must be atomic with a
        # read opens one with BEGIN IMMEDIATE (the write lock first, so no upgrade can deadlock).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            has_tables = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if has_tables and version != SCHEMA_VERSION:
                self._conn.close()
                raise SchemaMismatch(
                    f"{path} holds taskplane schema version {version}; this taskplane needs "
                    f"{SCHEMA_VERSION}: start with another --db file (or delete this one)"
                )
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction on the shared connection: everything inside commits together or not at all.

        Nested use joins the outer transaction. A SQLite failure (disk full, a file locked by another
        process past the busy timeout) is :class:`~taskplane.domain.errors.Unavailable`, as a failed
        AWS call is for the DynamoDB adapters.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise Unavailable(f"the local database failed: {type(exc).__name__}: {exc}") from exc
            self._depth = 1
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise Unavailable(f"the local database failed: {type(exc).__name__}: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def query(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read (a single statement sees one consistent snapshot)."""
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise Unavailable(f"the local database failed: {type(exc).__name__}: {exc}") from exc

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def purge_expired(self, now_s: int) -> int:
        """Delete rows whose ``expires_at`` (epoch seconds) has passed: DynamoDB's TTL deletion.

        Returns how many rows went.
        """
        removed = 0
        with self.transaction() as conn:
            for table in EXPIRING:
                removed += conn.execute(
                    f"DELETE FROM {table} WHERE expires_at IS NOT NULL AND expires_at < ?", (now_s,)
                ).rowcount
        return removed

    def close(self) -> None:
        with self._lock:
            self._conn.close()
