"""Powertools idempotency records on SQLite: a ``BasePersistenceLayer`` with the DynamoDB layer's
conditional put, so ``PowertoolsIdempotency`` (and Powertools itself) work unchanged."""

from __future__ import annotations

import datetime as dt
import sqlite3

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord

from taskplane.adapters.sqlite.db import Database


def _record(row: sqlite3.Row) -> DataRecord:
    return DataRecord(
        idempotency_key=row["id"],
        status=row["status"],
        expiry_timestamp=row["expiration"],
        in_progress_expiry_timestamp=row["in_progress_expiration"],
        response_data=row["data"],
        payload_hash=row["validation"],
    )


class SqlitePersistenceLayer(BasePersistenceLayer):
    """One row per idempotency key (``id`` is Powertools' hashed key, already prefixed with the function)."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db

    def _get_record(self, idempotency_key: str) -> DataRecord:
        row = self._db.one("SELECT * FROM idempotency WHERE id = ?", (idempotency_key,))
        if row is None:
            raise IdempotencyItemNotFoundError
        return _record(row)

    def _put_record(self, data_record: DataRecord) -> None:
        """Insert unless a live record holds the key: the same three ways to win as the DynamoDB layer
        (no record; an expired one; one left in progress past its in-progress expiry)."""
        now = dt.datetime.now()
        now_s, now_ms = int(now.timestamp()), int(now.timestamp() * 1000)
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM idempotency WHERE id = ?", (data_record.idempotency_key,)
            ).fetchone()
            if row is not None:
                free = row["expiration"] < now_s or (
                    row["status"] == STATUS_CONSTANTS["INPROGRESS"]
                    and row["in_progress_expiration"] is not None
                    and row["in_progress_expiration"] < now_ms
                )
                if not free:
                    old = _record(row)
                    self._validate_payload(data_payload=data_record, stored_data_record=old)
                    self._save_to_cache(data_record=old)
                    raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            conn.execute(
                "INSERT OR REPLACE INTO idempotency"
                " (id, status, expiration, in_progress_expiration, validation, data) VALUES (?, ?, ?, ?, ?, NULL)",
                (
                    data_record.idempotency_key,
                    data_record.status,
                    data_record.expiry_timestamp,
                    data_record.in_progress_expiry_timestamp,
                    data_record.payload_hash
                    if self.payload_validation_enabled and data_record.payload_hash
                    else None,
                ),
            )

    def _update_record(self, data_record: DataRecord) -> None:
        # An upsert, as DynamoDB's UpdateItem is.
        validation = data_record.payload_hash if self.payload_validation_enabled else None
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO idempotency (id, status, expiration, validation, data) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET status = excluded.status, expiration = excluded.expiration,"
                " data = excluded.data, validation = coalesce(excluded.validation, validation)",
                (
                    data_record.idempotency_key,
                    data_record.status,
                    data_record.expiry_timestamp,
                    validation,
                    data_record.response_data,
                ),
            )

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM idempotency WHERE id = ?", (data_record.idempotency_key,))
