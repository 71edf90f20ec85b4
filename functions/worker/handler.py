"""SQS lane consumer: runs each task delivery, takes each windowed trigger's event into its window, closes
each window whose end comes due, and reports partial batch failures."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskplane import init_phase, wiring
from taskplane.adapters.queues import TriggerMessage, WindowMessage, parse_body
from taskplane.domain.errors import EventRefused
from taskplane.domain.tracecontext import task_trace
from taskplane.observability import logger, tracer
from taskplane.services.holds import HoldBatch, RecordHold
from taskplane.settings import MAX_RECEIVE_COUNT

#: Outcomes logged at DEBUG only (see record_handler).
QUIET_OUTCOMES = frozenset({"succeeded", "duplicate", "requeued"})
#: A window's close that fails on its first delivery comes back this soon (a passing fault need not
#: wait out the lanes' visibility timeout, 90 minutes); later failures wait it out, so an outage still
#: takes hours, not seconds, to use up the deliveries before the DLQ.
CLOSE_RETRY_S = 1


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


@tracer.capture_method(capture_response=False)
def record_handler(record: SQSRecord, hold: RecordHold | None = None) -> str:
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
    if isinstance(message, WindowMessage):
        # A window's end, sent ahead by the tick: held until due, then the window closes (a close that
        # fails raises: the message comes back and the close, safe to repeat, is tried again).
        receives = int(record.attributes.approximate_receive_count or "1")
        try:
            # (on its last delivery before the DLQ, where nothing would close the window, a failed
            # close puts the end back into the wheel instead)
            closing = platform.triggers.windows.delivered(message, last_try=receives >= MAX_RECEIVE_COUNT)
        except Exception:
            if hold is not None and receives == 1:
                with contextlib.suppress(Exception):  # (else it comes back at the visibility timeout)
                    hold(CLOSE_RETRY_S)
            raise
        logger.debug("window end handled", extra={"window": message.window, "outcome": closing})
        return str(closing)
    if isinstance(message, TriggerMessage):
        try:
            started = platform.triggers.start(
                message.tenant, message.trigger_id, message.event, message.pattern
            )
        except EventRefused as exc:
            # No try can ever make its task: to the DLQ now, saying why, rather than failing every delivery.
            logger.error(
                "trigger event refused: dead-lettered",
                extra={"tenant": message.tenant, "trigger_id": message.trigger_id, "reason": str(exc)},
            )
            platform.executor.lanes.dead_letter_raw(record.body, str(exc), record.event_source_arn or "")
            platform.telemetry.count(
                "event_refused", tenant=message.tenant, target_type="none", lane="unknown"
            )
            return "dead-lettered"
        if started is None:
            return "duplicate"
        if isinstance(started, str):  # a windowed trigger's event, taken into its window (or seen before)
            logger.debug("event collected", extra={"trigger_id": message.trigger_id, "outcome": started})
            return "collected" if started == "taken" else "duplicate"
        delivery = started
    else:
        delivery = message
    # What the worker does for this delivery hangs under the span that sent it (its trace's).
    with platform.tracing.delivered(delivery):
        outcome = platform.executor.handle(delivery, hold=hold)
    # The task's own history records every move; a log line per uneventful delivery would only repeat
    # it, at ~440 bytes of CloudWatch Logs per task (~$0.22 per million). Retries, failures and
    # deliveries for missing tasks are logged; the rest at DEBUG.
    log = logger.debug if outcome.value in QUIET_OUTCOMES else logger.info
    extra = {"task_id": delivery.task_id, "tenant": delivery.tenant, "outcome": outcome.value}
    if platform.tracing.enabled:  # the line leads to the task's trace
        extra["trace_id"] = platform.tracing.trace_id(task_trace(delivery.tenant, delivery.task_id))
    log("delivery handled", extra=extra)
    return outcome.value


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch -> ``{"batchItemFailures": [...]}``."""
    # A processor per invocation: the local runtime runs several batches at once in one process.
    # An all-failed batch is reported item by item, which SQS treats the same as a raised error.
    platform = wiring.platform()  # built once, before the records' threads need it
    # A started task's message is held until the attempt would count as abandoned; the batch's
    # holds go out together (one ChangeMessageVisibilityBatch for up to 10 records).
    records = [SQSRecord(r) for r in event.get("Records") or []]
    holdable = {r.message_id for r in records if r.receipt_handle and r.event_source_arn}
    holds = HoldBatch(platform.executor.lanes.hold_many, size=len(holdable))

    def handle(record: SQSRecord) -> str:
        hold = None
        if record.message_id in holdable:
            hold = holds.hold_for(record.event_source_arn or "", record.receipt_handle)
        try:
            return record_handler(record, hold)
        finally:
            if hold is not None:
                hold.settle()

    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        return process_partial_response(
            event=event, record_handler=handle, processor=processor, context=context
        )
    finally:
        # The batch's durations: one write per target (and minute) for all of its attempts.
        platform.executor.flush()
        platform.telemetry.flush()


# Lambda's init phase (at a full vCPU on demand) builds the tracer and the platform; nothing else
# does at import (taskplane/init_phase.py says why this is the one exception to "never at import").
init_phase.warm_up()
