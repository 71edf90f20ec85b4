"""The platform's bucket: large payloads, results and node outputs (``domain/blobs.py``).

``presign_client`` signs the URLs handed to clients; in AWS it is the same S3 client, locally one
pointed at the local S3 endpoint (a moto server sharing the runtime's in-process state), because a
client outside the process cannot reach the in-process mock.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.errors import error_code, translate
from taskplane.domain.blobs import EXPIRY_TAG, BlobRef, digest


class BlobStore:
    def __init__(self, bucket: str, client: Any, presign_client: Any = None) -> None:
        self.bucket = bucket
        self._client = client
        self._presign = presign_client or client

    def put(
        self, key: str, data: bytes, *, expire_days: int, content_type: str = "application/json"
    ) -> BlobRef:
        """Store ``data`` under ``key``, tagged to expire after ``expire_days`` (``domain.blobs``)."""
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Tagging=f"{EXPIRY_TAG}={expire_days}",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "storing a large value") from exc
        return BlobRef(key=key, size=len(data), sha256=digest(data))

    def copy(self, source: str, key: str, *, expire_days: int) -> None:
        """A server-side copy of ``source`` to ``key`` (an upload taken by a task), with its own tag."""
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": source},
                TaggingDirective="REPLACE",
                Tagging=f"{EXPIRY_TAG}={expire_days}",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "taking the upload") from exc

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        try:
            return bytes(self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise translate(exc, "reading a large value") from exc
        except BotoCoreError as exc:
            raise translate(exc, "reading a large value") from exc

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is no such object."""
        try:
            return int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise translate(exc, "looking up a large value") from exc
        except BotoCoreError as exc:
            raise translate(exc, "looking up a large value") from exc

    def upload_url(self, key: str, expires_s: int, content_type: str = "application/json") -> str:
        """A URL that takes one ``PUT`` of the object, with this Content-Type, until it expires."""
        return str(
            self._presign.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_s,
            )
        )

    def download_url(self, key: str, expires_s: int) -> str:
        """A URL that reads the object until it expires."""
        return str(
            self._presign.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
            )
        )
