"""Workflow use cases: publish definitions, start, watch, resume and cancel runs (the API side; each
Step Functions task of a run is :mod:`taskplane.services.steps`).

How a run moves
===============
The API stores the run (``RUNNING``, phase ``nodes``) and starts an execution of the workflow
version's state machine (see :mod:`taskplane.domain.asl` for its shape). Each node task calls
:meth:`StepService.handle` with ``action: run``: the attempt starts only while the run lets nodes
start (checked right after the attempt is recorded), the node's ``deps`` are read from the ledger, the target
runs with the node's timeout, and the outcome is written fenced by the attempt's id. A success then
tells every gated dependant that this need is done; the last need to finish (or the gate itself,
when it registers after its needs) sends the gate's task token, and the dependant starts.

When a node fails for good, its branch fails the Parallel state, whose Catch calls ``action:
failed``: the phase moves to ``settling`` (no node starts any more), attempts still running are
waited for (or given up on once past their timeout), and then either the run ends ``FAILED``
(``on_failure: stop``) or the completed nodes are compensated in reverse topological order and the
run ends ``COMPENSATED`` (or ``FAILED`` when a compensation failed too).
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.run_store import CompensationRecord, NodeRecord, RunRecord
from taskplane.adapters.stepfunctions import StepFunctions
from taskplane.adapters.workflow_store import VersionRecord, WorkflowRecord
from taskplane.domain import history
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.asl import GRACE_S, RESUME_COMPENSATION, compile_asl, gated, to_json
from taskplane.domain.blobs import (
    DOWNLOAD_URL_TTL_S,
    BlobRef,
)
from taskplane.domain.clock import Clock, to_rfc3339
from taskplane.domain.errors import (
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NodeAttemptFailed,
    NodeFailed,
    NotFound,
    PayloadTooLarge,
)
from taskplane.domain.ids import is_valid_id, new_id
from taskplane.domain.mermaid import to_mermaid
from taskplane.domain.models import payload_size
from taskplane.domain.workflow import (
    FATAL_ERROR,
    MAX_INPUT_BYTES,
    RESUMABLE,
    RETRYABLE_ERROR,
    RUN_TERMINAL,
    NodeState,
    Phase,
    RunStart,
    RunState,
    Workflow,
    check_weights,
    choose_version,
    parse_workflow,
    workflow_from_canonical,
)
from taskplane.services.ports import Idempotency, RunLedger, WorkflowRecords

#: Outputs up to this size are shown inline in ``GET /v1/runs/{id}``; larger ones have their own route.
PREVIEW_BYTES = 2048
#: State machine versions kept after each publish besides the ones routing or a running execution
#: uses (Step Functions refuses to publish past 1,000 per machine). A failed run can be resumed while
#: its version is among them.
KEEP_VERSIONS = 100


assert NodeAttemptFailed.__name__ == RETRYABLE_ERROR and NodeFailed.__name__ == FATAL_ERROR


# -- shared: versions as parsed workflows ----------------------------------------------------------


class Catalog:
    """Published versions as parsed :class:`Workflow` objects (cached: versions never change)."""

    def __init__(self, store: WorkflowRecords, size: int = 128) -> None:
        self.store = store
        self._cache: OrderedDict[tuple[str, str, int], tuple[Workflow, VersionRecord]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def load(self, tenant: str, name: str, version: int) -> tuple[Workflow, VersionRecord]:
        key = (tenant, name, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        record = self.store.version(tenant, name, version)
        if record is None or record.definition is None:
            raise NotFound(f"workflow {name!r} has no version {version}")
        loaded = (workflow_from_canonical(record.definition), record)
        with self._lock:
            self._cache[key] = loaded
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return loaded


# -- views -------------------------------------------------------------------------------------------


def _summary(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "latest_version": record.latest,
        "nodes": record.node_count,
        "routing": {str(k): v for k, v in record.routing.items()},
        "created_at": to_rfc3339(record.created_at),
        "updated_at": to_rfc3339(record.updated_at),
    }


def _graph(workflow: Workflow) -> dict[str, Any]:
    return {"nodes": [n.id for n in workflow.nodes], "edges": [list(e) for e in workflow.edges]}


def _node_view(node_id: str, record: NodeRecord | None, run: RunRecord) -> dict[str, Any]:
    state = record.state if record else NodeState.PENDING
    # A node not yet tried in a resumed run's current execution waits to run again.
    if record and record.exec < run.exec and state is not NodeState.SUCCEEDED:
        state = NodeState.PENDING
    if state is NodeState.PENDING and run.state in RUN_TERMINAL:
        state = NodeState.SKIPPED
    view: dict[str, Any] = {
        "id": node_id,
        "state": state.value,
        "attempts": record.attempts if record else 0,
        "started_at": to_rfc3339(record.started_at) if record else None,
        "finished_at": to_rfc3339(record.finished_at) if record and state is not NodeState.RUNNING else None,
        "error": record.error if record else None,
    }
    if record and record.state is NodeState.SUCCEEDED:
        view["output_bytes"] = record.out_bytes
        if record.has_preview:
            view["output"] = record.preview
    return view


def _compensation_view(record: CompensationRecord) -> dict[str, Any]:
    return {
        "node": record.id,
        "state": record.state.value,
        "attempts": record.attempts,
        "started_at": to_rfc3339(record.started_at),
        "finished_at": to_rfc3339(record.finished_at),
        "error": record.error,
    }


def run_view(
    run: RunRecord,
    workflow: Workflow,
    nodes: dict[str, NodeRecord],
    compensations: dict[str, CompensationRecord],
) -> dict[str, Any]:
    """The run resource of the HTTP contract."""
    position = {node_id: i for i, node_id in enumerate(workflow.order)}
    ran = sorted(compensations.values(), key=lambda c: (c.started_at or 0, position[c.id]))
    return {
        "run_id": run.run_id,
        "workflow": run.workflow,
        "version": run.version,
        "state": run.state.value,
        "phase": run.phase.value,
        "input": run.input,
        "created_at": to_rfc3339(run.created_at),
        "finished_at": to_rfc3339(run.finished_at),
        "executions": run.exec,
        "error": run.error,
        "nodes": [_node_view(node_id, nodes.get(node_id), run) for node_id in workflow.order],
        "compensations": [_compensation_view(c) for c in ran],
    }


# -- the API side --------------------------------------------------------------------------------------


@dataclass
class WorkflowService:
    """Definitions, versions, routing and runs, for the HTTP API."""

    store: WorkflowRecords
    runs: RunLedger
    sfn: StepFunctions
    clock: Clock
    step_function_arn: str
    idempotency: Idempotency | None = None
    make_id: Callable[[int], str] = new_id
    draw: Callable[[], float] = random.random
    retention_days: int = 30
    #: The tenant's target allow-list, as for tasks: a workflow is no way around it.
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: where outputs too large for the ledger are (URLs to read them)
    blobs: BlobStore | None = None
    #: Each tenant's share of the account's state machines (settings ``max_workflows``).
    max_workflows: int = 500
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.store)

    # -- definitions ---------------------------------------------------------------------------

    def put(
        self, tenant: str, name: str, body: Any, content_type: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Publish a definition; an unchanged one publishes nothing. Answers (view, created)."""
        workflow = parse_workflow(body, name=name, content_type=content_type)
        self._check_targets(tenant, workflow)
        history.check(workflow)  # one run must fit Step Functions' 25,000 history events
        digest = workflow.digest()
        current = self.store.get(tenant, name)
        if current is None:
            self._check_share(tenant)
        if current is not None and current.digest == digest:
            return {
                **_summary(current),
                "version": current.latest,
                "published": False,
                **_graph(workflow),
            }, False
        version = current.latest + 1 if current else 1
        definition = to_json(compile_asl(workflow, self.step_function_arn, version=version))
        machine_arn, version_arn = self.sfn.publish(
            current.machine_arn if current else None,
            self.sfn.machine_name(tenant, name),
            definition,
            description=f"taskplane {name} v{version} ({digest[:12]})",
            tags={"taskplane:tenant": tenant, "taskplane:workflow": name},
        )
        now = self.clock.now_ms()
        after = WorkflowRecord(
            tenant=tenant,
            name=name,
            latest=version,
            digest=digest,
            machine_arn=machine_arn,
            created_at=current.created_at if current else now,
            updated_at=now,
            routing=dict(current.routing) if current else {},
            description=workflow.spec.description,
            node_count=len(workflow.nodes),
        )
        record = VersionRecord(
            version=version,
            digest=digest,
            version_arn=version_arn,
            created_at=now,
            node_count=len(workflow.nodes),
            gates=tuple(sorted(gated(workflow))),
            definition=workflow.canonical(),
        )
        self.store.publish(current, after, record)
        if not after.routing:
            self._mirror_alias(after, {version_arn: 100})
        self._prune(tenant, after, version_arn)
        return {**_summary(after), "version": version, "published": True, **_graph(workflow)}, current is None

    def _check_share(self, tenant: str) -> None:
        """Refuse a new workflow (a new state machine) past the tenant's share of the account's: Step
        Functions allows 100,000 an account, shared by every tenant. Counted from the tenant's own
        records, so two first publishes at the same instant can both pass at the last free place."""
        held, cursor = 0, None
        while held < self.max_workflows:
            page, cursor = self.store.list_workflows(tenant, limit=100, cursor=cursor)
            held += len(page)
            if cursor is None:
                break
        if held >= self.max_workflows:
            raise LimitExceeded(
                f"this tenant already holds the {self.max_workflows} workflow(s) it may hold (each is a Step "
                "Functions state machine, and an account holds 100,000 for every tenant): publish a new "
                "version of an existing workflow instead, or ask the operator to raise TASKPLANE_MAX_WORKFLOWS",
                [{"field": "name", "problem": "too_many_workflows", "limit": self.max_workflows}],
            )

    def _prune(self, tenant: str, record: WorkflowRecord, latest_arn: str) -> None:
        """Delete versions past the newest :data:`KEEP_VERSIONS` that nothing routes to or runs on."""
        from taskplane.observability import logger

        try:
            keep = {latest_arn}
            if record.routing:
                arns = {v.version: v.version_arn for v in self.store.versions(tenant, record.name)}
                keep |= {arns[v] for v in record.routing if v in arns}
            deleted = self.sfn.prune(record.machine_arn, keep=keep, newest=KEEP_VERSIONS)
        except Exception as exc:  # the next publish tries again; the PUT itself succeeded
            logger.warning("could not prune old versions", extra={"workflow": record.name, "error": str(exc)})
            return
        if deleted:
            logger.info("pruned old versions", extra={"workflow": record.name, "versions": deleted})

    def _check_targets(self, tenant: str, workflow: Workflow) -> None:
        """Every target and compensation must be one the tenant's allow-list lets it call."""
        details = []
        for i, node in enumerate(workflow.nodes):
            fallback = node.retry.fallback.model_dump() if node.retry.fallback is not None else None
            for role, target in (
                ("target", node.target),
                ("compensate", node.compensate),
                ("retry.fallback", fallback),
            ):
                why = self.targets.refusal(tenant, target) if target else None
                if why is not None:
                    details.append(
                        {
                            "node": node.id,
                            "field": f"nodes.{i}.{role}",
                            "problem": "target_refused",
                            "message": why,
                        }
                    )
        if details:
            first = details[0]
            raise InvalidRequest(f"target refused: node {first['node']!r}: {first['message']}", details)

    def _mirror_alias(self, record: WorkflowRecord, weights: dict[str, int]) -> None:
        # The alias only mirrors the split the API makes; runs never depend on it.
        from taskplane.observability import logger

        try:
            self.sfn.route(record.machine_arn, weights)
        except Exception as exc:
            logger.warning(
                "could not update the live alias", extra={"workflow": record.name, "error": str(exc)}
            )

    def _record(self, tenant: str, name: str) -> WorkflowRecord:
        record = self.store.get(tenant, name)
        if record is None:
            raise NotFound(f"workflow {name!r} not found")
        return record

    def list_workflows(self, tenant: str, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        items, next_cursor = self.store.list_workflows(tenant, limit=limit, cursor=cursor)
        return {"items": [_summary(r) for r in items], "next_cursor": next_cursor}

    def get(self, tenant: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The definition of ``version`` (default: the latest), every version, the routing and the ASL."""
        record = self._record(tenant, name)
        workflow, shown = self.catalog.load(tenant, name, version or record.latest)
        return {
            **_summary(record),
            "version": shown.version,
            "versions": [
                {
                    "version": v.version,
                    "created_at": to_rfc3339(v.created_at),
                    "digest": v.digest,
                    "nodes": v.node_count,
                }
                for v in self.store.versions(tenant, name)
            ],
            "on_failure": workflow.on_failure,
            "definition": workflow.canonical(),
            **_graph(workflow),
            # A pruned version is gone from Step Functions; its definition compiles to the same ASL.
            "asl": self.sfn.definition(shown.version_arn)
            or compile_asl(workflow, self.step_function_arn, version=shown.version),
        }

    def mermaid(self, tenant: str, name: str, version: int | None = None) -> str:
        record = self._record(tenant, name)
        workflow, _ = self.catalog.load(tenant, name, version or record.latest)
        return to_mermaid(workflow)

    def set_routing(self, tenant: str, name: str, weights: dict[str, Any]) -> dict[str, Any]:
        """Split new runs between (at most two) versions; ``{}`` sends them all to the latest."""
        record = self._record(tenant, name)
        versions = {v.version: v for v in self.store.versions(tenant, name)}
        routing = check_weights(weights, versions)
        self.store.set_routing(record, routing, self.clock.now_ms())
        after = self._record(tenant, name)
        live = routing or {after.latest: 100}
        self._mirror_alias(after, {versions[v].version_arn: w for v, w in live.items()})
        return _summary(after)

    # -- runs ------------------------------------------------------------------------------------

    def start_run(
        self, tenant: str, name: str, body: RunStart, idempotency_key: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Start a run; answers (run view, created). A replayed idempotency key answers the first run."""
        size = payload_size(body.input)
        if size > MAX_INPUT_BYTES:
            raise PayloadTooLarge(
                f"input is {size} bytes; the limit is {MAX_INPUT_BYTES} bytes",
                [{"field": "input", "size": size, "limit": MAX_INPUT_BYTES}],
            )
        key = idempotency_key or body.idempotency_key
        if key is None or self.idempotency is None:
            return self._start(tenant, name, body), True
        fingerprint = {"workflow": name, **body.model_dump(mode="json", exclude={"idempotency_key"})}
        result, replayed = self.idempotency.once(
            tenant,
            f"run:{name}:{key}",
            fingerprint,
            lambda: {"run_id": self._start(tenant, name, body)["run_id"]},
        )
        return self.get_run(tenant, result["run_id"]), not replayed

    def _start(self, tenant: str, name: str, body: RunStart) -> dict[str, Any]:
        record = self._record(tenant, name)
        version = body.version or choose_version(record.routing, record.latest, self.draw())
        try:
            workflow, chosen = self.catalog.load(tenant, name, version)
        except NotFound:
            raise InvalidRequest(
                f"workflow {name!r} has no version {version}",
                [{"field": "version", "problem": "unknown_version"}],
            ) from None
        self._check_targets(tenant, workflow)  # the allow-list may have changed since the PUT
        now = self.clock.now_ms()
        run = RunRecord(
            tenant=tenant,
            run_id=self.make_id(now),
            workflow=name,
            version=version,
            version_arn=chosen.version_arn,
            state=RunState.RUNNING,
            phase=Phase.NODES,
            input=body.input,
            created_at=now,
            on_failure=workflow.on_failure,
        )
        self.runs.create(run, expires_at=now // 1000 + workflow.timeout_s + self.retention_days * 86400)
        run = self._launch(run, workflow)
        return run_view(run, workflow, {}, {})

    def _launch(self, run: RunRecord, workflow: Workflow, resume: dict[str, Any] | None = None) -> RunRecord:
        """Start the execution for ``run.exec``; on failure the run ends FAILED and the caller gets 503."""
        payload: dict[str, Any] = {
            **(resume or {}),
            "run": {
                "tenant": run.tenant,
                "run_id": run.run_id,
                "workflow": run.workflow,
                "version": run.version,
                "exec": run.exec,
            },
        }
        try:
            arn = self.sfn.start(run.version_arn, f"{run.run_id}-{run.exec}", payload)
        except Exception as exc:
            now = self.clock.now_ms()
            self.runs.update_run(
                run,
                states={RunState.RUNNING},
                exec=run.exec,
                changes={
                    "state": RunState.FAILED,
                    "phase": Phase.DONE,
                    "finished_at": now,
                    "error": {"type": "StartFailed", "message": f"the execution could not start: {exc}"},
                },
                now_ms=now,
                expires_at=now // 1000 + self.retention_days * 86400,
            )
            raise
        return (
            self.runs.update_run(
                run,
                states=set(RunState),
                exec=run.exec,
                changes={"execution_arn": arn},
                now_ms=self.clock.now_ms(),
            )
            or run
        )

    def _ledger(
        self, tenant: str, run_id: str
    ) -> tuple[RunRecord, dict[str, NodeRecord], dict[str, CompensationRecord]]:
        if not is_valid_id(run_id):
            raise NotFound(f"run {run_id!r} not found")
        run, nodes, comps = self.runs.ledger(tenant, run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found")
        return run, nodes, comps

    def get_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        run, nodes, comps = self._ledger(tenant, run_id)
        if run.state is RunState.RUNNING:
            run = self._reconcile(run)
        workflow, _ = self.catalog.load(tenant, run.workflow, run.version)
        return run_view(run, workflow, nodes, comps)

    def run_graph(self, tenant: str, run_id: str) -> str:
        """The run's workflow as Mermaid, boxes coloured by node state."""
        view = self.get_run(tenant, run_id)
        workflow, _ = self.catalog.load(tenant, view["workflow"], view["version"])
        return to_mermaid(workflow, {n["id"]: n["state"] for n in view["nodes"]})

    def _reconcile(self, run: RunRecord) -> RunRecord:
        """A run whose execution ended without telling the ledger (a crashed step function, a
        stopped execution) takes the execution's outcome."""
        if run.execution_arn is None:
            return run
        status = self.sfn.status(run.execution_arn)
        if status is None or status.status in ("RUNNING", "PENDING_REDRIVE"):
            return run
        now = self.clock.now_ms()
        state = RunState.CANCELLED if status.status == "ABORTED" else RunState.FAILED
        error = run.error or {
            "type": f"Execution{status.status.title().replace('_', '')}",
            "message": f"the execution ended {status.status}: {status.error or ''} {(status.cause or '')[:500]}".strip(),
        }
        after = self.runs.update_run(
            run,
            states={RunState.RUNNING},
            exec=run.exec,
            changes={"state": state, "phase": Phase.DONE, "finished_at": now, "error": error},
            now_ms=now,
            expires_at=now // 1000 + self.retention_days * 86400,
        )
        return after or self.runs.get(run.tenant, run.run_id) or run

    def node_output(self, tenant: str, run_id: str, node: str) -> dict[str, Any]:
        run, nodes, _ = self._ledger(tenant, run_id)
        workflow, _ = self.catalog.load(tenant, run.workflow, run.version)
        if node not in workflow.by_id:
            raise NotFound(f"run {run_id} has no node {node!r}")
        record = nodes.get(node)
        found, output = (
            self.runs.output(tenant, run_id, node)
            if record and record.state is NodeState.SUCCEEDED
            else (False, None)
        )
        view = {
            "run_id": run_id,
            "node": node,
            "state": _node_view(node, record, run)["state"],
            "output": output if found and not isinstance(output, BlobRef) else None,
            "output_bytes": record.out_bytes if found and record else None,
        }
        if found and isinstance(output, BlobRef) and self.blobs is not None:
            view["output_url"] = self.blobs.download_url(output.key, DOWNLOAD_URL_TTL_S)
        return view

    def list_runs(
        self, tenant: str, name: str, *, limit: int = 50, cursor: str | None = None
    ) -> dict[str, Any]:
        self._record(tenant, name)
        if cursor is not None and not is_valid_id(cursor):
            raise InvalidRequest("cursor is not one this API returned", [{"field": "cursor"}])
        items, next_cursor = self.runs.list_runs(tenant, name, limit=limit, cursor=cursor)
        return {
            "items": [
                {
                    "run_id": r.run_id,
                    "workflow": r.workflow,
                    "version": r.version,
                    "state": r.state.value,
                    "created_at": to_rfc3339(r.created_at),
                    "finished_at": to_rfc3339(r.finished_at),
                }
                for r in items
            ],
            "next_cursor": next_cursor,
        }

    def resume(self, tenant: str, run_id: str) -> dict[str, Any]:
        """Run a failed or cancelled run again in a new execution; succeeded nodes are skipped.

        A run whose compensation started and did not finish (an undo failed, or it was cancelled
        while compensating) resumes its compensation instead: only the undos that have not
        succeeded run again, and no node does. Undos must therefore be idempotent.
        """
        run, nodes, comps = self._ledger(tenant, run_id)
        if run.state is RunState.RUNNING:
            run = self._reconcile(run)
        if run.state not in RESUMABLE:
            raise Conflict(
                f"run {run_id} is {run.state.value}; only FAILED or CANCELLED runs can be resumed",
                [{"field": "state", "value": run.state.value}],
            )
        if run.compensation_started or comps:
            return self._resume_compensation(run)
        workflow, _ = self.catalog.load(tenant, run.workflow, run.version)
        self._check_targets(tenant, workflow)  # the allow-list may have changed since the run started
        now = self.clock.now_ms()
        for record in nodes.values():
            if record.state is NodeState.RUNNING and record.attempt_at is not None:
                deadline = record.attempt_at + (workflow.by_id[record.id].timeout_s + GRACE_S) * 1000
                if now < deadline:
                    raise Conflict(
                        f"node {record.id!r} of run {run_id} is still running; resume once it has finished",
                        [{"node": record.id, "problem": "still_running"}],
                    )
        return self._relaunch(run, workflow, phase=Phase.NODES, error=None)

    def _resume_compensation(self, run: RunRecord) -> dict[str, Any]:
        """A new execution that goes straight to the compensation plan (``asl.BEGIN``)."""
        workflow, _ = self.catalog.load(run.tenant, run.workflow, run.version)
        self._check_targets(run.tenant, workflow)
        # The run's error goes back to what failed the run (a CompensationFailed keeps it as its cause).
        cause = (
            run.error.get("cause")
            if run.error and run.error.get("type") == "CompensationFailed"
            else run.error
        )
        resume = {
            "resume": RESUME_COMPENSATION,
            "error": {"Error": "taskplane.ResumeCompensation", "Cause": "resumed: retry the failed undos"},
        }
        return self._relaunch(run, workflow, phase=Phase.SETTLING, error=cause, resume=resume)

    def _relaunch(
        self,
        run: RunRecord,
        workflow: Workflow,
        *,
        phase: Phase,
        error: dict[str, Any] | None,
        resume: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a resumed run's next execution, from ``phase``, its error set to ``error``."""
        if run.version_arn and self.sfn.definition(run.version_arn) is None:
            raise Conflict(
                f"run {run.run_id} ran version {run.version} of {run.workflow!r}, which was pruned (the newest "
                f"{KEEP_VERSIONS} versions and those in use are kept); start a new run instead",
                [{"field": "version", "value": run.version, "problem": "version_pruned"}],
            )
        now = self.clock.now_ms()
        after = self.runs.update_run(
            run,
            states={run.state},
            exec=run.exec,
            changes={
                "state": RunState.RUNNING,
                "phase": phase,
                "exec": run.exec + 1,
                "resumes": run.resumes + 1,
                **({"error": error} if error else {}),
            },
            remove=("finished_at", "execution_arn", *(() if error else ("error",))),
            now_ms=now,
            expires_at=now // 1000 + workflow.timeout_s + self.retention_days * 86400,
        )
        if after is None:
            raise Conflict(f"run {run.run_id} changed meanwhile; try again")
        self._launch(after, workflow, resume=resume)
        return self.get_run(run.tenant, run.run_id)

    def cancel(self, tenant: str, run_id: str) -> dict[str, Any]:
        """Stop a running run: no node starts any more and nothing is compensated."""
        run, _, _ = self._ledger(tenant, run_id)
        if run.state is not RunState.RUNNING:
            raise Conflict(
                f"run {run_id} is {run.state.value} and can no longer be cancelled",
                [{"field": "state", "value": run.state.value}],
            )
        now = self.clock.now_ms()
        # Ledger first: from here on no node starts; then the execution stops.
        after = self.runs.update_run(
            run,
            states={RunState.RUNNING},
            exec=run.exec,
            changes={"state": RunState.CANCELLED, "phase": Phase.DONE, "finished_at": now},
            now_ms=now,
            expires_at=now // 1000 + self.retention_days * 86400,
        )
        if after is None:
            current = self.runs.get(tenant, run_id)
            state = current.state.value if current else "gone"
            raise Conflict(
                f"run {run_id} is {state} and can no longer be cancelled",
                [{"field": "state", "value": state}],
            )
        if run.execution_arn:
            self.sfn.stop(run.execution_arn, "cancelled through the API")
        return self.get_run(tenant, run_id)


__all__ = [
    "Catalog",
    "NodeAttemptFailed",
    "NodeFailed",
    "WorkflowService",
    "run_view",
]
