"""The SQLite foundation (adapters/sqlite/db.py): transactions, a file that survives its process,
the schema version guard, TTL purging, and one connection shared safely by many threads."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taskplane.adapters.sqlite.control import SqliteInflightCounters
from taskplane.adapters.sqlite.db import SCHEMA_VERSION, Database, SchemaMismatch
from taskplane.domain.errors import Unavailable

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_a_transaction_commits_whole_or_not_at_all():
    db = Database()
    with db.transaction() as conn:
        conn.execute("INSERT INTO inflight (tenant, count) VALUES ('a', 1)")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("UPDATE inflight SET count = 9 WHERE tenant = 'a'")
        with db.transaction() as inner:  # nested: joins the outer one
            inner.execute("INSERT INTO inflight (tenant, count) VALUES ('b', 1)")
        raise RuntimeError("crash mid-way")
    assert [tuple(r) for r in db.query("SELECT tenant, count FROM inflight")] == [("a", 1)]


def test_a_sqlite_failure_is_unavailable_and_rolls_back():
    db = Database()
    with pytest.raises(Unavailable, match="local database failed"), db.transaction() as conn:
        conn.execute("INSERT INTO inflight (tenant, count) VALUES ('a', 1)")
        conn.execute("INSERT INTO no_such_table VALUES (1)")
    assert db.query("SELECT * FROM inflight") == []


def test_a_file_database_keeps_what_a_killed_process_committed(tmp_path):
    # Given a process that commits in a WAL file and is then killed without closing anything
    path = tmp_path / "state.db"
    code = (
        "import os, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'layers/core/python')!r})\n"
        "from taskplane.adapters.sqlite.db import Database\n"
        "from taskplane.adapters.sqlite.control import SqliteInflightCounters\n"
        f"c = SqliteInflightCounters(Database({str(path)!r}))\n"
        "assert c.acquire('acme', 3, 10)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert run.returncode == -9, run.stderr
    # When the file is opened again, Then the count is there
    db = Database(str(path))
    assert db.one("PRAGMA journal_mode")[0] == "wal"
    assert SqliteInflightCounters(db).current("acme") == 3


def test_a_file_of_another_schema_version_is_refused_with_a_message(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE tasks (x)")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaMismatch, match="another --db file"):
        Database(str(path))


def test_purge_deletes_only_rows_past_their_expiry():
    db = Database()
    with db.transaction() as conn:
        for sk, expires in (("old", 100), ("new", 300), ("kept", None)):
            conn.execute(
                "INSERT INTO run_items (tenant, run_id, sk, doc, expires_at) VALUES ('t', 'r', ?, '{}', ?)",
                (sk, expires),
            )
    assert db.purge_expired(200) == 1
    assert sorted(r["sk"] for r in db.query("SELECT sk FROM run_items")) == ["kept", "new"]


def test_one_database_serves_many_threads_without_losing_a_write():
    counters = SqliteInflightCounters(Database())
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(200):
            assert counters.acquire("acme", 1, 10**6)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counters.current("acme") == 1600


def test_a_reopened_file_gives_back_what_a_dead_process_had_received(tmp_path: Path) -> None:
    from taskplane.adapters.sqlite.queues import SqliteQueues

    # Given a lane (16-minute visibility) with a received message, a waiting one and a delayed one
    now = [1_000_000]
    path = str(tmp_path / "dev.db")
    queues = SqliteQueues(Database(path), now_ms=lambda: now[0])
    url = queues.create_queue(QueueName="lane", Attributes={"VisibilityTimeout": "960"})["QueueUrl"]
    queues.send_message(QueueUrl=url, MessageBody="taken")
    (taken,) = queues.receive_message(QueueUrl=url)["Messages"]
    queues.send_message(QueueUrl=url, MessageBody="waiting")
    queues.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=60)
    # When another process opens the file and releases what was in flight
    reopened = SqliteQueues(Database(path), now_ms=lambda: now[0])
    assert reopened.release_in_flight() == 1
    # Then the received message is visible at once, its receive count kept, and its old receipt void
    got = {m["Body"]: m for m in reopened.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]}
    assert set(got) == {"taken", "waiting"}
    assert got["taken"]["Attributes"]["ApproximateReceiveCount"] == "2"
    reopened.delete_message(QueueUrl=url, ReceiptHandle=taken["ReceiptHandle"])
    assert (
        reopened.get_queue_attributes(QueueUrl=url)["Attributes"]["ApproximateNumberOfMessagesNotVisible"]
        == "2"
    )
    # And the delayed message still waits for its time
    assert (
        reopened.get_queue_attributes(QueueUrl=url)["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    )
