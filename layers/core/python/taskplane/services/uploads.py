"""Presigned uploads of payloads too large for a request (``POST /v1/uploads``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.domain.blobs import MAX_UPLOAD_BYTES, UPLOAD_URL_TTL_S, upload_key
from taskplane.domain.clock import Clock, to_rfc3339
from taskplane.domain.ids import new_id


@dataclass
class UploadService:
    blobs: BlobStore
    clock: Clock
    make_id: Callable[[int], str] = new_id

    def create(self, tenant: str) -> dict[str, Any]:
        """A URL that takes one ``PUT`` of a JSON payload, and the id a task names it by."""
        now = self.clock.now_ms()
        upload_id = f"up_{self.make_id(now)}"
        url = self.blobs.upload_url(upload_key(tenant, upload_id), UPLOAD_URL_TTL_S)
        return {
            "upload_id": upload_id,
            "upload_url": url,
            "method": "PUT",
            "headers": {"Content-Type": "application/json"},
            "expires_at": to_rfc3339(now + UPLOAD_URL_TTL_S * 1000),
            "max_bytes": MAX_UPLOAD_BYTES,
        }
