"""Build the use cases from settings: the one place that joins adapters to services.

Handlers call :func:`platform` on their first invocation (never at import time), so moto or a test
can be in place before any client exists; tests may install their own with :func:`use`.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskplane.domain.blobs import MAX_RESULT_BYTES
from taskplane.domain.clock import Clock, SystemClock

if TYPE_CHECKING:  # pydantic: imported when the platform is built, not with the handler module
    from taskplane.settings import PlatformSettings


@dataclass
class Platform:
    settings: PlatformSettings
    tasks: Any  # services.tasks.TaskService
    executor: Any  # services.execute.Executor
    telemetry: Any  # observability.MetricsBuffer
    #: spans of tasks and runs (tracing.NULL_TRACING, or otlp.OtlpExport with an OTLP endpoint)
    tracing: Any = None
    ticker: Any = None  # services.tick.Ticker
    schedules: Any = None  # services.schedules.ScheduleService
    triggers: Any = None  # services.triggers.TriggerService
    workflows: Any = None  # services.workflows.WorkflowService
    steps: Any = None  # services.steps.StepService (the step function's use cases)
    dead_letters: Any = None  # services.dead_letters.DeadLetterService
    #: the triggers' dead-letter queue, for operators (services.trigger_dead_letters.TriggerDeadLetters;
    #: None when the settings name none)
    trigger_dead_letters: Any = None
    wakes: Any = None  # services.wakes.Wakes: who wakes an idle tick (the local runtime sets its own)
    #: where new wheel entries go (adapters.ring_store.CachedRing), and who changes it (the tick of
    #: shard 0: services.ring.RingKeeper)
    ring: Any = None
    keeper: Any = None
    events: Any = None  # services.events.EventService
    blobs: Any = None  # adapters.blobs.BlobStore (None: no bucket configured)
    uploads: Any = None  # services.uploads.UploadService
    #: set to make a running tick (and anything else that waits on it) stop early
    stop: threading.Event = field(default_factory=threading.Event)

    def close(self) -> None:
        """Export what is left and stop the exporters' threads (a platform replaced in this process)."""
        if self.tracing is not None:
            self.tracing.shutdown()

    def begin(self, context: Any) -> None:
        """A handler's invocation starts: what depends on its remaining time learns of it."""
        for service in (self.tasks, self.workflows, self.events, self.schedules, self.triggers):
            store = getattr(service, "idempotency", None)
            if store is not None:
                store.register(context)


@dataclass
class Stores:
    """One adapter set behind the ports the services use: where tasks, lanes, the wheel and every
    other record live. :func:`aws_stores` (DynamoDB, SQS, EventBridge) and :func:`sqlite_stores` (one
    SQLite database) make the two sets; nothing outside this module knows which one it runs on."""

    tasks: Any  # ports.TaskRecords
    #: the ``sqs`` client the lanes, the depth gauge and the event source mapping call
    sqs: Any
    wheel: Any  # adapters.wheel_store.WheelStore or its SQLite twin
    inflight: Any  # ports.InflightCounts
    breakers: Any  # ports.BreakerRecords
    dead_letters: Any  # ports.DeadLetterRecords
    schedules: Any  # ports.ScheduleRecords
    trigger_store: Any  # ports.TriggerRecords
    trigger_rules: Any  # ports.TriggerRuleSet
    #: the ``events`` client (``put_events``) of the platform bus, for EventBus and eventbridge targets
    events: Any
    workflows: Any  # ports.WorkflowRecords
    runs: Any  # ports.RunLedger
    #: a new idempotency store (one per decorated function: NOTES-AWS-LOCAL.md)
    idempotency: Any
    latency: Any  # ports.LatencyRecords (per-target duration sketches)
    rings: Any  # adapters.ring_store.RingStore or its SQLite twin (the wheel's versioned ring)
    windows: Any  # adapters.windows.WindowStore or its SQLite twin (windowed triggers' windows)
    #: the ``sqs`` client of ``sqs`` targets (the tenants' own queues; None: the runner makes its own)
    target_sqs: Any = None
    #: the ``events`` client of ``eventbridge`` targets (None: the runner makes its own)
    target_events: Any = None
    #: how often a process writes a target's durations (services/latency.py): every 30 s on DynamoDB,
    #: where each write is billed; at every batch's end on SQLite, where it costs nothing and
    #: ``GET /v1/stats`` of ``taskplane dev`` then shows a call's duration at once
    latency_flush_ms: int | None = None


#: How often a busy tick renews its shard's lease (the same write saves its resume point and lag):
#: every 3 s, a third of the writes of once a second. The lease lasts 15 s from its last renewal
#: either way (Ticker.lease_ms), so a tick that dies is taken over at most 15 s after its death, as
#: before; a live tick loses its lease only after a 12 s stall (it was 14 s), and notices within 3 s;
#: after a takeover the successor resumes from a point at most 3 s older (what it sends twice, the
#: worker starts once).
TICK_RENEW_EVERY_MS = 3_000
#: Threads a tick fires schedules on (a fire's four calls cost ~2.7 ms of CPU: bench/tick_reads.py).
#: They share the tick's CPU share with its sends: more threads fire a burst sooner and hold back the
#: tasks due beside it longer (bench/wheel_lateness.py's fire bursts).
FIRE_THREADS = 4


def aws_stores(settings: PlatformSettings, session: Any, tracing: Any) -> Stores:
    """The AWS adapter set: DynamoDB tables, SQS lanes, the EventBridge bus (moto locally)."""
    from botocore.config import Config

    from taskplane.adapters.admission import InflightCounters
    from taskplane.adapters.breakers import BreakerStore
    from taskplane.adapters.dead_letters import DeadLetterStore
    from taskplane.adapters.idempotency import PowertoolsIdempotency
    from taskplane.adapters.latency import LatencyStore
    from taskplane.adapters.ring_store import RingStore
    from taskplane.adapters.run_store import RunStore
    from taskplane.adapters.schedule_store import ScheduleStore
    from taskplane.adapters.task_store import TaskStore
    from taskplane.adapters.triggers import TriggerRules, TriggerStore
    from taskplane.adapters.wheel_store import WheelStore
    from taskplane.adapters.windows import WindowStore
    from taskplane.adapters.workflow_store import WorkflowStore

    retries = Config(retries={"mode": "standard", "max_attempts": 3})
    ddb = session.client("dynamodb", config=retries)
    sqs = session.client("sqs", config=retries)
    events = session.client("events", config=retries)
    wheel = WheelStore(settings.wheel_table, settings.control_table, ddb)
    return Stores(
        tasks=TaskStore(settings.tasks_table, ddb, buckets=settings.task_buckets, tracing=tracing),
        sqs=sqs,
        wheel=wheel,
        inflight=InflightCounters(settings.control_table, ddb),
        breakers=BreakerStore(settings.control_table, ddb),
        dead_letters=DeadLetterStore(settings.tasks_table, ddb),
        schedules=ScheduleStore(settings.schedules_table, wheel, ddb),
        trigger_store=TriggerStore(settings.schedules_table, ddb),
        trigger_rules=TriggerRules(events, sqs, settings.queue_urls, settings.trigger_dlq_arn),
        events=events,
        workflows=WorkflowStore(settings.workflows_table, ddb),
        runs=RunStore(settings.runs_table, ddb, tracing=tracing),
        idempotency=lambda: PowertoolsIdempotency(settings.idempotency_table, ddb),
        latency=LatencyStore(settings.control_table, ddb),
        rings=RingStore(settings.control_table, ddb),
        windows=WindowStore(settings.tasks_table, ddb),
        target_sqs=sqs,
    )


@dataclass
class SqliteBackend:
    """The SQLite side of the local runtime: the database and the queues and bus on it."""

    db: Any  # adapters.sqlite.db.Database
    queues: Any  # adapters.sqlite.queues.SqliteQueues
    bridge: Any  # adapters.sqlite.events.SqliteEventBridge
    #: lane -> queue URL, where the bus's rules deliver (filled when the lanes are made)
    lane_urls: dict[str, str] = field(default_factory=dict)
    #: ``{"triggers": URL}``: where the bus puts an event a rule could not deliver (filled when the
    #: triggers' dead-letter queue is made; without it, a refused delivery fails the put)
    dead_letter_urls: dict[str, str] = field(default_factory=dict)


def sqlite_backend(path: str, queue_urls: dict[str, str] | None = None) -> SqliteBackend:
    """Open (or create) the database at ``path`` (``":memory:"``: for this process only), with its
    queues and its event bus, whose rules deliver to the lanes named in ``queue_urls``."""
    from taskplane.adapters.sqlite.db import Database
    from taskplane.adapters.sqlite.events import SqliteEventBridge
    from taskplane.adapters.sqlite.queues import SqliteQueues

    db = Database(path)
    queues = SqliteQueues(db)
    urls = dict(queue_urls or {})

    dead: dict[str, str] = {}

    def deliver(lane: str, body: str) -> None:
        queues.send_message(QueueUrl=urls[lane], MessageBody=body)

    def dead_letter(body: str, attributes: dict[str, str]) -> None:
        if "triggers" not in dead:
            raise LookupError("no triggers' dead-letter queue")
        queues.send_message(
            QueueUrl=dead["triggers"],
            MessageBody=body,
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )

    bridge = SqliteEventBridge(db, deliver, dead_letter=dead_letter)
    return SqliteBackend(db=db, queues=queues, bridge=bridge, lane_urls=urls, dead_letter_urls=dead)


def sqlite_stores(backend: SqliteBackend, tracing: Any) -> Stores:
    """The SQLite adapter set (``adapters/sqlite``), every store on ``backend``'s one database."""
    from taskplane.adapters.idempotency import PowertoolsIdempotency
    from taskplane.adapters.sqlite.control import SqliteBreakerStore, SqliteInflightCounters
    from taskplane.adapters.sqlite.dead_letters import SqliteDeadLetterStore
    from taskplane.adapters.sqlite.events import SqliteEventsClient, SqliteTriggerRules
    from taskplane.adapters.sqlite.idempotency import SqlitePersistenceLayer
    from taskplane.adapters.sqlite.latency import SqliteLatencyStore
    from taskplane.adapters.sqlite.ring import SqliteRingStore
    from taskplane.adapters.sqlite.runs import SqliteRunStore
    from taskplane.adapters.sqlite.schedules import SqliteScheduleStore
    from taskplane.adapters.sqlite.tasks import SqliteTaskStore
    from taskplane.adapters.sqlite.triggers import SqliteTriggerStore
    from taskplane.adapters.sqlite.wheel import SqliteWheelStore
    from taskplane.adapters.sqlite.windows import SqliteWindowStore
    from taskplane.adapters.sqlite.workflows import SqliteWorkflowStore

    db = backend.db
    return Stores(
        tasks=SqliteTaskStore(db, tracing=tracing),
        sqs=backend.queues,
        wheel=SqliteWheelStore(db),
        inflight=SqliteInflightCounters(db),
        breakers=SqliteBreakerStore(db),
        dead_letters=SqliteDeadLetterStore(db),
        schedules=SqliteScheduleStore(db),
        trigger_store=SqliteTriggerStore(db),
        trigger_rules=SqliteTriggerRules(backend.bridge),
        events=SqliteEventsClient(backend.bridge),
        # a target that puts on the platform bus must reach the triggers' rules, which live here
        target_events=SqliteEventsClient(backend.bridge),
        workflows=SqliteWorkflowStore(db),
        runs=SqliteRunStore(db, tracing=tracing),
        idempotency=lambda: PowertoolsIdempotency(persistence=lambda: SqlitePersistenceLayer(db)),
        latency=SqliteLatencyStore(db),
        latency_flush_ms=0,
        rings=SqliteRingStore(db),
        windows=SqliteWindowStore(db),
    )


def latencies(stores: Stores, clock: Clock) -> Any:
    """The per-target duration sketches on ``stores.latency`` (services.latency.Latencies)."""
    from taskplane.services.latency import FLUSH_EVERY_MS, Latencies

    every = FLUSH_EVERY_MS if stores.latency_flush_ms is None else stores.latency_flush_ms
    return Latencies(stores.latency, clock.now_ms, flush_every_ms=every)


def breakers(settings: PlatformSettings, store: Any, clock: Clock) -> Any:
    """The per-target circuit breakers on ``store`` (ports.BreakerRecords; None when
    ``breaker_timeouts`` is 0: breakers off), with the platform's default rules for tasks and nodes
    whose retry policy names none."""
    from taskplane.domain.breaker import BreakerConfig
    from taskplane.domain.retry import BreakerPolicy
    from taskplane.services.breakers import CircuitBreakers

    if settings.breaker_timeouts <= 0:
        return None
    default = BreakerPolicy(consecutive_timeouts=settings.breaker_timeouts, open_ms=settings.breaker_open_ms)
    return CircuitBreakers(store, clock.now_ms, BreakerConfig(default=default))


def build(
    settings: PlatformSettings,
    *,
    session: Any = None,
    clock: Clock | None = None,
    sqlite: SqliteBackend | None = None,
) -> Platform:
    """Wire adapters and services for ``settings``; ``session`` is an optional boto3 session.

    The stores are the AWS set, or with ``sqlite`` the SQLite set on its database (the local runtime's
    default); Step Functions, Lambda targets and the bucket of large values are AWS's (moto's) either way.
    """
    import boto3
    from botocore.config import Config

    from taskplane.adapters.admission import LaneDepthGauge
    from taskplane.adapters.events import EventBus
    from taskplane.adapters.queues import Lanes
    from taskplane.adapters.ring_store import CachedRing
    from taskplane.adapters.targets import TargetRunners
    from taskplane.domain.blobs import MAX_API_PAYLOAD_BYTES
    from taskplane.domain.gray import RouteRule
    from taskplane.domain.models import MAX_PAYLOAD_BYTES
    from taskplane.domain.triggers import ExternalEvents
    from taskplane.observability import MetricsBuffer
    from taskplane.services.admission import Admission
    from taskplane.services.dead_letters import DeadLetterService
    from taskplane.services.events import EventService
    from taskplane.services.execute import Executor
    from taskplane.services.ring import RingKeeper
    from taskplane.services.schedules import ScheduleService
    from taskplane.services.tasks import TaskService, delivery_for
    from taskplane.services.tick import Ticker
    from taskplane.services.triggers import TriggerService
    from taskplane.services.uploads import UploadService
    from taskplane.services.wakes import Wakes
    from taskplane.services.windows import WindowService

    session = session or boto3.session.Session()
    clock = clock or SystemClock()
    tracing = observability_export(settings)
    stores = sqlite_stores(sqlite, tracing) if sqlite is not None else aws_stores(settings, session, tracing)
    sqs = stores.sqs
    store = stores.tasks
    lanes = Lanes(settings.queue_urls, settings.dlq_url, sqs, tracing=tracing)
    wheel = stores.wheel
    wakes = Wakes(wheel, _tick_invoker(settings, session))
    # Every writer of wheel entries in this process places them with the same cached ring.
    ring = CachedRing(stores.rings, clock.now_ms, settings.wheel_shards)
    telemetry = MetricsBuffer(sink=tracing if tracing.enabled else None)
    stop = threading.Event()
    # One target policy for every door work enters by, and for the worker and the step function
    # that check it again before each call (domain/entry.py).
    targets = target_policy(settings)
    blobs = _blob_store(settings, session)
    admission = Admission(
        depths=LaneDepthGauge(settings.queue_urls, sqs, clock.now_ms),
        max_lane_depth=settings.max_lane_depth,
        counters=stores.inflight,
        tenant_quota=settings.tenant_inflight_quota,
    )
    tasks = TaskService(
        routes={
            tenant: [RouteRule.model_validate(r) for r in rules]
            for tenant, rules in settings.task_routes.items()
        },
        targets=targets,
        admission=admission,
        store=store,
        lanes=lanes,
        clock=clock,
        idempotency=stores.idempotency(),
        telemetry=telemetry,
        wheel=wheel,
        shards=ring,
        wakes=wakes,
        blobs=blobs,
        retention_days=settings.retention_days,
        max_payload_bytes=MAX_API_PAYLOAD_BYTES if blobs is not None else MAX_PAYLOAD_BYTES,
    )
    budget = payload_budget()
    runners = TargetRunners(
        session=session,
        allow_private_http=settings.allow_private_http,
        # A Lambda target may run up to the task's timeout (900 s at most): don't cut it short.
        lambda_client=session.client(
            "lambda", config=Config(read_timeout=910, connect_timeout=10, retries={"max_attempts": 0})
        ),
        sqs_client=stores.target_sqs,
        events_client=stores.target_events,
        platform_bus=settings.event_bus,
        tracing=tracing,
        # As many large answers checked at once as the payload budget holds 6 MiB answers (at least one).
        large_answers_at_once=max(1, budget.limit // MAX_RESULT_BYTES) if budget is not None else None,
    )
    dead_letter_records = stores.dead_letters
    executor = Executor(
        store=store,
        lanes=lanes,
        runners=runners,
        clock=clock,
        telemetry=telemetry,
        retention_days=settings.retention_days,
        wheel=wheel,
        shards=ring,
        dead_letters=dead_letter_records,
        admission=admission,
        targets=targets,
        wakes=wakes,
        # a test clock's own wait, so a worker waiting for a due time moves simulated time
        sleep_until=getattr(clock, "sleep_until", None),
        blobs=blobs,
        tracing=tracing,
        breakers=breakers(settings, stores.breakers, clock),
        latencies=latencies(stores, clock),
        payload_budget=budget,
    )
    dead_letters = DeadLetterService(
        records=dead_letter_records,
        tasks=store,
        clock=clock,
        queue=lambda task: lanes.send_one(delivery_for(task, clock.now_ms())),
        targets=targets,
        blobs=blobs,
        retention_days=settings.retention_days,
        admission=admission,
        route=tasks.routed,
    )
    schedules = ScheduleService(
        store=stores.schedules,
        tasks=store,
        lanes=lanes,
        clock=clock,
        shards=ring,
        telemetry=telemetry,
        targets=targets,
        wakes=wakes,
        route=tasks.routed,
        idempotency=stores.idempotency(),
    )
    triggers = TriggerService(
        store=stores.trigger_store,
        rules=stores.trigger_rules,
        tasks=store,
        clock=clock,
        targets=targets,
        event_bus=settings.event_bus,
        rule_prefix=settings.trigger_rule_prefix,
        external={
            tenant: [ExternalEvents.model_validate(e) for e in entries]
            for tenant, entries in settings.external_events.items()
        },
        blobs=blobs,
        retention_days=settings.retention_days,
        max_rules=settings.max_trigger_rules,
        max_wildcard_rules=settings.max_wildcard_rules,
        route=tasks.routed,
        idempotency=stores.idempotency(),
    )
    triggers.windows = WindowService(
        records=stores.windows,
        triggers=triggers.store,
        tasks=store,
        lanes=lanes,
        wheel=wheel,
        clock=clock,
        shards=ring,
        wakes=wakes,
        offload=triggers.offload,
        has_bucket=blobs is not None,
        blobs=blobs,
        retention_days=settings.retention_days,
        telemetry=telemetry,
        route=tasks.routed,
        wait_until=executor.wait_until,
        payload_budget=budget,
    )
    events = EventService(
        EventBus(settings.event_bus, stores.events),
        admission=admission,
        trigger_lanes=triggers.lanes,
        idempotency=stores.idempotency(),
    )
    ticker = Ticker(
        wheel=wheel,
        lanes=lanes,
        clock=clock,
        wait=stop.wait,
        save_every_ms=TICK_RENEW_EVERY_MS,
        telemetry=telemetry,
        fire_schedule=schedules.fire,
        firers=ThreadPoolExecutor(max_workers=FIRE_THREADS),
        handover=wakes.wake_now,
    )
    trigger_dead_letters = None
    if settings.trigger_dlq_url:
        from taskplane.adapters.dead_events import DeadEventQueue
        from taskplane.services.trigger_dead_letters import TriggerDeadLetters

        trigger_dead_letters = TriggerDeadLetters(
            queue=DeadEventQueue(settings.trigger_dlq_url, sqs),
            triggers=stores.trigger_store,
            rules=stores.trigger_rules,
            lanes=lanes,
            rule_prefix=settings.trigger_rule_prefix,
        )
    workflows, steps = _build_workflows(
        settings, session, clock, stores, runners, telemetry, targets, tracing, blobs
    )
    return Platform(
        tracing=tracing,
        dead_letters=dead_letters,
        trigger_dead_letters=trigger_dead_letters,
        workflows=workflows,
        steps=steps,
        settings=settings,
        tasks=tasks,
        executor=executor,
        telemetry=telemetry,
        ticker=ticker,
        stop=stop,
        schedules=schedules,
        triggers=triggers,
        wakes=wakes,
        ring=ring,
        # (wakes through the platform's Wakes, so the local runtime's own waker is used when it sets one)
        keeper=RingKeeper(stores.rings, wheel, ring, clock, settings.wheel_shards, wake=wakes.wake_now),
        events=events,
        blobs=blobs,
        uploads=UploadService(blobs, clock) if blobs is not None else None,
    )


def _tick_invoker(settings: PlatformSettings, session: Any) -> Any:
    """What wakes an idle tick: an asynchronous invoke of the tick function, when one is named."""
    if not settings.tick_function:
        return None
    from taskplane.adapters.tick_waker import TickInvoker

    return TickInvoker(settings.tick_function, session=session)


def _blob_store(settings: PlatformSettings, session: Any) -> Any:
    """The bucket of large values, or None when the deployment has none."""
    if not settings.blob_bucket:
        return None
    from botocore.config import Config

    from taskplane.adapters.blobs import BlobStore

    s3 = session.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    presign = None
    if settings.blob_url_endpoint:  # the local runtime: URLs its clients can reach
        presign = session.client(
            "s3",
            endpoint_url=settings.blob_url_endpoint,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
    return BlobStore(settings.blob_bucket, s3, presign)


def observability_export(settings: PlatformSettings) -> Any:
    """The tracing port and metrics sink: OTLP export when an endpoint is set (the OpenTelemetry SDK
    is imported here, on a function's first invocation, and only then), else nothing at all."""
    if not settings.otlp_endpoint:
        from taskplane.tracing import NULL_TRACING

        return NULL_TRACING
    from taskplane.otlp import OtlpExport

    return OtlpExport(settings.otlp_endpoint, sample_ratio=settings.otlp_sample_ratio)


def target_policy(settings: PlatformSettings) -> Any:
    """The tenants' target policy (domain.allowlist.TargetPolicy) the settings describe."""
    from taskplane.domain.allowlist import TargetPolicy

    return TargetPolicy(
        allowlists=settings.target_allowlists,
        allow_by_default=settings.targets_allowed_by_default,
        allow_private_http=settings.allow_private_http,
    )


def _build_workflows(
    settings: PlatformSettings,
    session: Any,
    clock: Clock,
    stores: Stores,
    runners: Any,
    telemetry: Any,
    targets: Any,
    tracing: Any,
    blobs: Any = None,
) -> tuple[Any, Any]:
    """The workflow service (API) and the step service (step function), sharing their stores."""
    from botocore.config import Config

    from taskplane.adapters.stepfunctions import StepFunctions
    from taskplane.services.steps import StepService
    from taskplane.services.workflows import WorkflowService

    sfn = StepFunctions(
        settings.state_machine_role_arn,
        settings.state_machine_prefix,
        session.client("stepfunctions", config=Config(retries={"mode": "standard", "max_attempts": 3})),
        log_group_arn=settings.state_machine_log_group_arn,
        tracing=tracing,
    )
    store = stores.workflows
    runs = stores.runs
    workflows = WorkflowService(
        targets=targets,
        blobs=blobs,
        store=store,
        runs=runs,
        sfn=sfn,
        clock=clock,
        step_function_arn=settings.step_function_arn,
        # Its own persistence layer: one per decorated function (NOTES-AWS-LOCAL.md).
        idempotency=stores.idempotency(),
        retention_days=settings.retention_days,
        max_workflows=settings.max_workflows,
    )
    steps = StepService(
        store=store,
        runs=runs,
        sfn=sfn,
        runners=runners,
        clock=clock,
        retention_days=settings.retention_days,
        telemetry=telemetry,
        targets=targets,
        blobs=blobs,
        breakers=breakers(settings, stores.breakers, clock),
        latencies=latencies(stores, clock),
    )
    return workflows, steps


def payload_budget(environ: Any = None) -> Any:
    """The worker's budget of payload bytes in flight (services/payload_budget.py), sized from the
    function's memory in Lambda (``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``); None elsewhere (taskplane dev,
    tests: no Lambda memory to keep within)."""
    from taskplane.services.payload_budget import PayloadBudget, budget_bytes

    memory = (os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return PayloadBudget(budget_bytes(int(memory))) if memory.isdigit() else None


_current: Platform | None = None


def platform() -> Platform:
    """The process-wide platform, built from the environment on first use."""
    global _current
    if _current is None:
        from taskplane.settings import PlatformSettings

        _current = build(PlatformSettings.from_env(os.environ))
    return _current


def use(p: Platform | None) -> None:
    """Install ``p`` as the process-wide platform (None: rebuild from the environment next time).
    The platform it replaces is closed (its exports flushed), unless it is ``p`` itself."""
    global _current
    previous, _current = _current, p
    if previous is not None and previous is not p:
        previous.close()
