"""The boto3 client an adapter calls, made on first use: never at import (cold starts, tests)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

C = TypeVar("C")


class AwsClient(Generic[C]):
    """Base of the adapters that call one AWS service: ``client`` is the client they were given, or
    one made from ``session`` (a default session without one) the first time it is needed."""

    def __init__(self, service: str, client: C | None = None, *, session: Any = None) -> None:
        self._service = service
        self._client = client
        self._session = session

    @property
    def client(self) -> C:
        if self._client is None:
            import boto3

            session: Any = self._session or boto3.session.Session()
            self._client = session.client(self._service)
        return self._client
