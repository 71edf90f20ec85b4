"""Waking a shard's tick: an asynchronous invoke of the tick function (the caller does not wait)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from taskplane.adapters.aws import AwsClient
from taskplane.adapters.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class TickInvoker(AwsClient["LambdaClient"]):
    """``invoker(shard)`` invokes the tick function (name or alias ARN) for ``shard`` with
    InvocationType=Event: Lambda queues it and answers at once, the tick starts within moments."""

    def __init__(self, function: str, client: LambdaClient | None = None, *, session: Any = None) -> None:
        self._function = function
        super().__init__("lambda", client, session=session)

    def __call__(self, shard: int) -> None:
        try:
            self.client.invoke(
                FunctionName=self._function,
                InvocationType="Event",
                Payload=json.dumps({"shard": shard, "woken": True}).encode(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, "waking the tick") from exc
