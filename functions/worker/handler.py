"""SQS lane consumer: runs each task delivery and reports partial batch failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import wiring
from taskplane.adapters.queues import TriggerMessage, parse_body
from taskplane.observability import logger, tracer


class PoisonMessage(Exception):
    """A lane message that is not a task delivery; it fails until SQS moves it to the DLQ."""


class ConcurrentBatchProcessor(BatchProcessor):
    """Runs a batch's records at the same time (each mostly waits on its target), so a batch of 10
    takes as long as its slowest record, not the sum: batches of 10 fit the worker's 15 minutes
    whatever the tasks' ``timeout_s``. Outcomes are reported per record as BatchProcessor does."""

    def process(self) -> list[tuple[Any, ...]]:
        if len(self.records) <= 1:
            return super().process()
        with ThreadPoolExecutor(max_workers=len(self.records), thread_name_prefix="record") as pool:
            return list(pool.map(self._process_record, self.records))


def _hold(record: SQSRecord) -> Any:
    """A callable keeping this record's message invisible for N seconds, or None without a receipt."""
    receipt, source = record.receipt_handle, record.event_source_arn
    if not receipt or not source:
        return None
    lanes = wiring.platform().executor.lanes
    return lambda seconds: lanes.hold(source, receipt, seconds)


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord) -> str:
    try:
        message = parse_body(record.body)
    except ValueError as exc:
        logger.error("unreadable lane message", extra={"message_id": record.message_id, "reason": str(exc)})
        platform = wiring.platform()
        try:
            # Straight to the DLQ and acknowledged: it never blocks its batch or waits out five
            # receives. Only if the DLQ refuses it does it fail, and SQS's redrive moves it later.
            platform.executor.lanes.dead_letter_raw(record.body, str(exc), record.event_source_arn or "")
        except Exception as dlq_exc:
            raise PoisonMessage(str(exc)) from dlq_exc
        platform.telemetry.count("poison", tenant="unknown", target_type="none", lane="unknown")
        return "poison"
    platform = wiring.platform()
    if isinstance(message, TriggerMessage):
        delivery = platform.triggers.start(message.tenant, message.trigger_id, message.event)
        if delivery is None:
            return "duplicate"
    else:
        delivery = message
    outcome = platform.executor.handle(delivery, hold=_hold(record))
    logger.info(
        "delivery handled",
        extra={"task_id": delivery.task_id, "tenant": delivery.tenant, "outcome": outcome.value},
    )
    return outcome.value


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch -> ``{"batchItemFailures": [...]}``."""
    # A processor per invocation: the local runtime runs several batches at once in one process.
    # An all-failed batch is reported item by item, which SQS treats the same as a raised error.
    platform = wiring.platform()  # built once, before the records' threads need it
    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        platform.telemetry.flush()
