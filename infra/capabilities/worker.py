"""The worker: consumes the lanes through event source mappings and calls task targets.

Memory and timeout: the worker mostly waits on targets (HTTP, Lambda, SQS) and on due times (a delivery
comes in a lead ahead), so CPU matters little and 256 MB (``worker_memory_mb``) keeps the GB-seconds it
is billed for while waiting low (its clients and tracer are built in the init phase, at a full vCPU;
payloads read from the bucket wait for room in its memory); more suits CPU-heavy targets. Its timeout is Lambda's maximum,
15 minutes, because a task may ask for ``timeout_s`` up to 900. Concurrency is bounded per lane by the
mapping's MaximumConcurrency (so a flood of low-priority work cannot take the high lane's workers),
and optionally by a reservation that guarantees those workers exist (see ``ReservedConcurrency``).
A batch is up to 10 records (``worker_batch_size``), run at the same time, so a lane runs at most
MaximumConcurrency x batch size tasks at once. A started task's message is held invisible until the
attempt would count as abandoned (ChangeMessageVisibility, granted with the event source), so a
dead worker's delivery comes back then and is timed out.
"""

from __future__ import annotations

from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.capabilities.function import PlatformFunction, Shared
from infra.capabilities.queues import WORKER_TIMEOUT, Queues
from infra.capabilities.storage import WORKER_CONTROL_READS, WORKER_CONTROL_WRITES, Storage, grant_items
from infra.capabilities.targets import grant_task_targets
from taskplane.settings import LANES


class Worker(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, shared: Shared, storage: Storage, queues: Queues
    ) -> None:
        super().__init__(scope, construct_id)
        cfg = shared.cfg
        self.fn = PlatformFunction(
            self,
            "Worker",
            shared=shared,
            name="worker",
            description="taskplane worker: runs task deliveries from the SQS lanes",
            memory_size=cfg.worker_memory_mb,
            timeout=WORKER_TIMEOUT,
            reserved_concurrency=cfg.reserved_concurrency.worker,
        )
        role = self.fn.role
        grant_items(storage.tasks, role)
        # A retry whose backoff is longer than SQS DelaySeconds waits in the wheel, and a finished
        # attempt's watch is deleted from it (never read back here).
        grant_items(storage.wheel, role, read=False, delete=True)
        # A task that ends gives its tenant's in-flight slot back; circuit breakers and duration
        # sketches (control table; timeout_s "auto" reads a window of sketches in one BatchGetItem);
        # the ring and the shards' leases are read to place and wake a retry's tick. It never writes a
        # lease nor the ring.
        grant_items(storage.control, role, write=False, batch_get=True, items=WORKER_CONTROL_READS)
        grant_items(storage.control, role, read=False, items=WORKER_CONTROL_WRITES)
        for lane in LANES:
            queue = queues.lanes[lane]
            # A delivery that is not due yet, or a retry, goes back onto its lane.
            queue.grant(role, "sqs:SendMessage")
            self.fn.alias.add_event_source(
                sources.SqsEventSource(
                    queue,
                    batch_size=cfg.worker_batch_size,
                    # Due work should start at once; waiting to fill a batch would add lateness.
                    max_batching_window=None,
                    report_batch_item_failures=True,
                    max_concurrency=cfg.lane_concurrency[lane],
                )
            )
        queues.dlq.grant(role, "sqs:SendMessage")
        grant_task_targets(role, cfg)
