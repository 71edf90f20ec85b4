"""Idempotent submission through Powertools idempotency on DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer

from taskplane.domain.errors import Conflict, Unavailable

#: How long a key is remembered.
KEY_TTL_S = 24 * 3600


class PowertoolsIdempotency:
    """(tenant, key) -> the first result; the same key with another body is a conflict."""

    def __init__(
        self,
        table: str = "",
        client: Any = None,
        *,
        session: Any = None,
        persistence: Callable[[], BasePersistenceLayer] | None = None,
    ) -> None:
        """Records in the DynamoDB ``table``, or in the layer ``persistence`` makes (the SQLite one)."""
        self._table = table
        self._client = client
        self._session = session
        self._persistence = persistence
        self._layer: BasePersistenceLayer | None = None
        self._config = IdempotencyConfig(
            event_key_jmespath="[tenant, key]",
            payload_validation_jmespath="fingerprint",
            expires_after_seconds=KEY_TTL_S,
        )
        self._run: Callable[..., dict[str, Any]] | None = None

    def _runner(self) -> Callable[..., dict[str, Any]]:
        if self._run is None:
            # One persistence layer per decorated function (see NOTES-AWS-LOCAL.md); made on first
            # use so that no client exists at import time.
            self._layer = (
                self._persistence()
                if self._persistence is not None
                else DynamoDBPersistenceLayer(
                    table_name=self._table, boto3_client=self._client, boto3_session=self._session
                )
            )

            @idempotent_function(
                data_keyword_argument="request", persistence_store=self._layer, config=self._config
            )
            def run(
                *, request: dict[str, Any], action: Callable[[], dict[str, Any]], ran: list[bool]
            ) -> dict:
                ran.append(True)
                return action()

            self._run = run
        return self._run

    def register(self, context: Any) -> None:
        """The invocation now running: a key it leaves in progress (a timeout, a crash) expires with
        the invocation's remaining time instead of blocking retries with 409 for the key's 24 hours."""
        self._config.register_lambda_context(context)

    def once(
        self, tenant: str, key: str, fingerprint: Any, action: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        ran: list[bool] = []
        request = {"tenant": tenant, "key": key, "fingerprint": fingerprint}
        try:
            result = self._runner()(request=request, action=action, ran=ran)
        except IdempotencyValidationError as exc:
            raise Conflict(
                "this Idempotency-Key was already used with a different body",
                details=[{"field": "Idempotency-Key", "value": key}],
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress; retry shortly",
                details=[{"field": "Idempotency-Key", "value": key}],
            ) from exc
        except IdempotencyPersistenceLayerError as exc:
            raise Unavailable("the idempotency store failed; nothing was accepted") from exc
        return result, not ran
