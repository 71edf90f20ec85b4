"""The step function's side of a workflow run: what each Step Functions task of a run does.

Each node task calls :meth:`StepService.handle` with ``action: run``: the attempt starts only while
the run lets nodes start (checked right after the attempt is recorded), the node's ``deps`` are read
from the ledger, the target runs with the node's timeout, and the outcome is written fenced by the
attempt's id. ``action: failed`` settles the run and compensates (see
:mod:`taskplane.services.workflows` for how a run moves, and :mod:`taskplane.domain.asl` for the
state machine's shape).
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from taskplane.adapters.blobs import BlobStore
from taskplane.adapters.stepfunctions import StepFunctions
from taskplane.adapters.targets import TargetFailure, TargetRunners
from taskplane.adapters.workflow_store import VersionRecord
from taskplane.domain.allowlist import TargetPolicy
from taskplane.domain.asl import END_GATE, GRACE_S
from taskplane.domain.blobs import MAX_RESULT_BYTES as MAX_BLOB_RESULT_BYTES
from taskplane.domain.blobs import (
    BlobRef,
    expiry_days,
    inline_limit,
    output_key,
    tenant_prefix,
)
from taskplane.domain.breaker import classify
from taskplane.domain.clock import Clock
from taskplane.domain.entry import TARGET_REFUSED, refusal_failure_message
from taskplane.domain.errors import (
    NodeAttemptFailed,
    NodeFailed,
)
from taskplane.domain.models import MAX_PAYLOAD_DEPTH, payload_depth, payload_size
from taskplane.domain.results import valued
from taskplane.domain.retry import skip_by_context
from taskplane.domain.workflow import (
    MAX_OUTPUT_BYTES,
    Node,
    NodeState,
    Phase,
    RunState,
    Workflow,
    compensation_waves,
)
from taskplane.services.breakers import CircuitBreakers, Guard
from taskplane.services.fallback import call_fallback, fallback_note
from taskplane.services.latency import Latencies
from taskplane.services.ports import NullTelemetry, RunLedger, Telemetry, WorkflowRecords

#: Outputs up to this size are shown inline in ``GET /v1/runs/{id}``; larger ones have their own route.
from taskplane.services.workflows import PREVIEW_BYTES, Catalog


@dataclass(frozen=True)
class RunRef:
    """Which run (and which of its executions) a Step Functions task belongs to."""

    tenant: str
    run_id: str
    workflow: str
    version: int
    exec: int

    @classmethod
    def of(cls, event: dict[str, Any]) -> RunRef:
        run = event.get("run")
        if not isinstance(run, dict):
            raise ValueError("the task has no run")
        return cls(
            tenant=str(run["tenant"]),
            run_id=str(run["run_id"]),
            workflow=str(run["workflow"]),
            version=int(run["version"]),
            exec=int(run["exec"]),
        )


@dataclass
class StepService:
    """What the step function does for one Step Functions task of a run."""

    store: WorkflowRecords
    runs: RunLedger
    sfn: StepFunctions
    runners: TargetRunners
    clock: Clock
    retention_days: int = 30
    telemetry: Telemetry = field(default_factory=NullTelemetry)
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=64, thread_name_prefix="node")
    )
    #: checked again before every node and undo: the policy may have changed since the run started
    targets: TargetPolicy = field(default_factory=TargetPolicy.permissive)
    #: outputs too large for the ledger (None: such outputs fail the node with OutputTooLarge)
    blobs: BlobStore | None = None
    #: per-tenant, per-target circuit breakers (the same as the worker's; None: off)
    breakers: CircuitBreakers | None = None
    #: duration sketches for ``timeout_s: "auto"`` (the same as the worker's)
    latencies: Latencies | None = None
    catalog: Catalog = field(init=False)

    def __post_init__(self) -> None:
        self.catalog = Catalog(self.store)

    def _keep(self, workflow: Workflow) -> int:
        """``expires_at`` for items written while a run goes on: past the longest it can run."""
        return self.clock.now_ms() // 1000 + workflow.timeout_s + self.retention_days * 86400

    def _done_keep(self, now_ms: int) -> int:
        """``expires_at`` of a run that has ended."""
        return now_ms // 1000 + self.retention_days * 86400

    def _end(
        self, run: Any, ref: RunRef, now: int, *, phases: set[Phase] | None = None, **changes: Any
    ) -> None:
        """End a running run of this execution (``changes``: its state, and its error if any)."""
        self.runs.update_run(
            run,
            states={RunState.RUNNING},
            exec=ref.exec,
            phases=phases,
            changes={**changes, "phase": Phase.DONE, "finished_at": now},
            now_ms=now,
            expires_at=self._done_keep(now),
        )

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """Dispatch one task by its ``action``."""
        action = event.get("action")
        ref = RunRef.of(event)
        workflow, version = self.catalog.load(ref.tenant, ref.workflow, ref.version)
        if action == "gate":
            return self.gate(ref, workflow, str(event["node"]), str(event["token"]))
        if action == "run":
            return self.run_node(ref, workflow, version, str(event["node"]), int(event.get("retry") or 0))
        if action == "failed":
            return self.failed(ref, workflow, event.get("error") or {})
        if action == "compensate":
            return self.compensate(ref, workflow, str(event["node"]), int(event.get("retry") or 0))
        if action == "compensated":
            return self.compensated(ref)
        if action == "succeeded":
            return self.succeeded(ref)
        raise ValueError(f"unknown action {action!r}")

    # -- gates ------------------------------------------------------------------------------------

    def gate(self, ref: RunRef, workflow: Workflow, node: str, token: str) -> dict[str, Any]:
        needs = set(workflow.sinks) if node == END_GATE else set(workflow.by_id[node].needs)
        done = self.runs.register_gate(
            ref.tenant, ref.run_id, node, token, ref.exec, expires_at=self._keep(workflow)
        )
        if needs <= done:
            self.sfn.send_success(token)
        return {}

    def _notify(self, ref: RunRef, workflow: Workflow, version: VersionRecord, node: str) -> None:
        """Tell the gated dependants of ``node`` (and the end gate, for a sink) that it is done."""
        waiting = [(d, set(workflow.by_id[d].needs)) for d in workflow.dependants[node] if d in version.gates]
        if not workflow.dependants[node]:
            waiting.append((END_GATE, set(workflow.sinks)))
        keep = self._keep(workflow)
        for dependant, needs in waiting:
            token, done = self.runs.need_done(
                ref.tenant, ref.run_id, dependant, node, ref.exec, expires_at=keep
            )
            if token and needs <= done:
                self.sfn.send_success(token)

    # -- nodes ------------------------------------------------------------------------------------

    def run_node(
        self, ref: RunRef, workflow: Workflow, version: VersionRecord, node_id: str, retry: int
    ) -> dict[str, Any]:
        node = workflow.by_id[node_id]
        try_id = uuid.uuid4().hex
        record = self.runs.start_node(
            ref.tenant,
            ref.run_id,
            node_id,
            exec=ref.exec,
            try_id=try_id,
            now_ms=self.clock.now_ms(),
            expires_at=self._keep(workflow),
        )
        if record is None:  # a resumed run: this node succeeded before
            self._notify(ref, workflow, version, node_id)
            return {"node": node_id, "skipped": True}
        # Read after the start: a failure elsewhere that moved the phase before it is seen here.
        run, deps = self.runs.node_inputs(ref.tenant, ref.run_id, node.needs)
        if (
            run is None
            or run.state is not RunState.RUNNING
            or run.exec != ref.exec
            or run.phase is not Phase.NODES
        ):
            self.runs.withdraw_start(ref.tenant, ref.run_id, node_id, try_id=try_id)
            raise NodeFailed(f"{node_id}: not started: the run no longer lets nodes start")
        missing = [need for need in node.needs if need not in deps]
        if missing:
            failure = TargetFailure(
                "InputsMissing", f"outputs of {missing} are not in the ledger", retryable=False
            )
            return self._node_failed(ref, node_id, try_id, failure, final=True, attempt=record.attempts)
        try:
            deps = self._readable(ref.tenant, deps, node.target, node.timeout_s)
        except TargetFailure as failure:
            return self._node_failed(ref, node_id, try_id, failure, final=True, attempt=record.attempts)
        envelope = {
            "run_id": ref.run_id,
            "workflow": ref.workflow,
            "node": node_id,
            "attempt": record.attempts,
            "input": run.input,
            "deps": deps,
            "payload": node.payload,
        }
        limit_s, notes = self._limit(ref.tenant, node)
        try:
            output = self._guarded_call(ref, node, envelope, limit_s, notes)
            text = _output_json(output, MAX_OUTPUT_BYTES if self.blobs is None else MAX_BLOB_RESULT_BYTES)
        except TargetFailure as failure:
            final = not failure.retryable or retry + 1 >= node.retry.max_attempts
            deadline = run.created_at + workflow.timeout_s * 1000
            if not final and skip_by_context(node.retry, self.clock.now_ms(), deadline):
                # The seed's context-aware rule: a non-critical node short of the run's time is not retried.
                final = True
                self._count("retry_skipped", ref, node.target, record.attempts, failure)
                notes.append(
                    f"retry skipped: not critical, {max(0, deadline - self.clock.now_ms())} ms left before "
                    f"the run's timeout (min_remaining_ms={node.retry.min_remaining_ms})"
                )
            return self._node_failed(
                ref,
                node_id,
                try_id,
                failure,
                final=final,
                attempt=record.attempts,
                notes=notes,
                envelope=envelope,
            )
        size = len(text.encode("utf-8", "surrogatepass"))
        kept = None
        if size > MAX_OUTPUT_BYTES and self.blobs is not None:
            # Too large for the ledger's item: in the bucket, for as long as the run's items live.
            kept = self.blobs.put(
                output_key(ref.tenant, ref.run_id, node_id, try_id),
                text.encode("utf-8", "surrogatepass"),
                expire_days=expiry_days(workflow.timeout_s * 1000, self.retention_days),
            )
        stored = self.runs.node_succeeded(
            ref.tenant,
            ref.run_id,
            node_id,
            try_id=try_id,
            attempt=record.attempts,
            now_ms=self.clock.now_ms(),
            output_json=text if kept is None else "",
            out_bytes=size,
            preview_json=text if size <= PREVIEW_BYTES else None,
            expires_at=self._keep(workflow),
            output_ref=kept,
        )
        if stored:
            self._notify(ref, workflow, version, node_id)
        self._count("node_succeeded", ref, node.target, record.attempts)
        return {"node": node_id}

    def _limit(self, tenant: str, node: Node) -> tuple[float, list[str]]:
        """This attempt's hard timeout (seconds), and for "auto" a note saying how it was chosen."""
        if node.auto_timeout is None or self.latencies is None:
            return float(node.timeout_s), []
        chosen = self.latencies.timeout_for(tenant, node.target, node.auto_timeout)
        return chosen.seconds, [chosen.describe(node.auto_timeout)]

    def _guarded_call(
        self, ref: RunRef, node: Node, envelope: dict[str, Any], limit_s: float, notes: list[str]
    ) -> Any:
        """The node's call under its target's breaker, its duration kept for adaptive timeouts."""
        guard: Guard | None = None
        if self.breakers is not None:
            try:
                guard = self.breakers.before(ref.tenant, node.target, node.retry.breaker)
            except TargetFailure:
                self._count("breaker_open", ref, node.target)
                raise
            if guard is not None and guard.probe:
                self._count("breaker_half_open", ref, node.target)
                notes.append(f"circuit breaker for {guard.target} half-open: this attempt is its probe")
        began = time.perf_counter()
        failure: TargetFailure | None = None
        try:
            return self._call(ref.tenant, node.target, envelope, limit_s)
        except TargetFailure as failed:
            failure = failed
            raise
        finally:
            timed_out = failure is not None and failure.error_type == "Timeout"
            if self.latencies is not None and not timed_out:
                self.latencies.record(ref.tenant, node.target, (time.perf_counter() - began) * 1000)
                self.latencies.flush()
            if self.breakers is not None:
                probed = self.breakers.after(
                    guard, classify(failure.retryable if failure else None, timed_out), lane="workflow"
                )
                # A node is its own batch: its count is written now, and a trip is the node's to note.
                _, tripped = self.breakers.flush()
                for change in [probed, *tripped] if probed is not None else tripped:
                    self.telemetry.count(
                        change.metric, tenant=change.tenant, target_type=change.target_type, lane="workflow"
                    )
                    if guard is not None and change.key == guard.key:
                        notes.append(change.note)

    def _readable(
        self, tenant: str, outputs: dict[str, Any], target: dict[str, Any], timeout_s: int
    ) -> dict[str, Any]:
        """Outputs kept in the bucket, read back while the node's call stays within what its target
        takes in one call (smallest first); the rest as ``{"output_url", "output_size"}``."""
        refs = {k: v for k, v in outputs.items() if isinstance(v, BlobRef)}
        if not refs:
            return outputs
        if self.blobs is None:
            raise TargetFailure(
                "InputsMissing", "outputs are in a bucket this deployment has no access to", retryable=False
            )
        out = dict(outputs)
        budget = inline_limit(target) - payload_size({k: v for k, v in outputs.items() if k not in refs})
        for name, ref in sorted(refs.items(), key=lambda kv: kv[1].size):
            if not ref.key.startswith(tenant_prefix(tenant)):
                raise TargetFailure(
                    "InputsMissing", f"the output of {name} is not this tenant's", retryable=False
                )
            data = self.blobs.get(ref.key) if ref.size <= budget else None
            if data is not None:
                out[name] = json.loads(data)
                budget -= ref.size
            else:
                out[name] = {
                    "output_url": self.blobs.download_url(ref.key, timeout_s + 300),
                    "output_size": ref.size,
                }
        return out

    def _count(
        self,
        name: str,
        ref: RunRef,
        target: dict[str, Any],
        attempt: int | None = None,
        failure: TargetFailure | None = None,
    ) -> None:
        # The platform's metric dimensions, with the lane standing for "a workflow node".
        self.telemetry.count(
            name,
            tenant=ref.tenant,
            target_type=str(target.get("type")),
            lane="workflow",
            attempt=attempt,
            error_type=failure.error_type if failure is not None else None,
        )

    def _node_failed(
        self,
        ref: RunRef,
        node_id: str,
        try_id: str,
        failure: TargetFailure,
        *,
        final: bool,
        attempt: int | None = None,
        notes: list[str] | None = None,
        envelope: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        error: dict[str, Any] = {"type": failure.error_type, "message": failure.message[:2000]}
        if notes:
            error["notes"] = list(notes)
        state = NodeState.FAILED if final else NodeState.RETRYING
        node = self.catalog.load(ref.tenant, ref.workflow, ref.version)[0].by_id[node_id]
        fallback = final and node.retry.fallback is not None
        if fallback:
            error["fallback"] = {"state": "RUNNING", "at": self.clock.now_ms()}
        # The final record (fenced by this attempt's try id) is the fallback's claim: one call at most.
        recorded = self.runs.node_failed(
            ref.tenant,
            ref.run_id,
            node_id,
            try_id=try_id,
            state=state,
            error=error,
            now_ms=self.clock.now_ms(),
        )
        if fallback and recorded:
            error = self._node_fallback(ref, node, try_id, error, envelope or {})
        if final and recorded:
            self.runs.record_error(ref.tenant, ref.run_id, ref.exec, {**error, "node": node_id})
        self._count("node_failed" if final else "node_retried", ref, node.target, attempt, failure)
        text = f"{node_id}: {failure.error_type}: {failure.message[:500]}"
        raise NodeFailed(text) if final else NodeAttemptFailed(text)

    def _node_fallback(
        self, ref: RunRef, node: Node, try_id: str, error: dict[str, Any], envelope: dict[str, Any]
    ) -> dict[str, Any]:
        """Call the node's fallback once and record its outcome in the node's error."""
        assert node.retry.fallback is not None
        outcome = call_fallback(
            runners=self.runners,
            pool=self.pool,
            targets=self.targets,
            tenant=ref.tenant,
            target=node.retry.fallback.model_dump(),
            envelope={
                **envelope,
                "fallback": True,
                "error": {"type": error["type"], "message": error["message"]},
            },
            timeout_s=node.timeout_s,
        )
        self._count(f"fallback_{outcome['state'].lower()}", ref, node.target)
        error = {
            **error,
            "fallback": {**outcome, "at": self.clock.now_ms()},
            "notes": [*error.get("notes", []), fallback_note(outcome)],
        }
        self.runs.node_failed(
            ref.tenant,
            ref.run_id,
            node.id,
            try_id=try_id,
            state=NodeState.FAILED,
            error=error,
            now_ms=self.clock.now_ms(),
            expect=NodeState.FAILED,
        )
        return error

    def _call(self, tenant: str, target: dict[str, Any], envelope: dict[str, Any], timeout_s: float) -> Any:
        why = self.targets.refusal(tenant, target)
        if why is not None:
            raise TargetFailure(TARGET_REFUSED, refusal_failure_message(why), retryable=False)
        cancel = threading.Event()
        future = self.pool.submit(
            # In this step's context (its span: an HTTP target's traceparent).
            contextvars.copy_context().run,
            self.runners.run,
            target,
            envelope,
            timeout_s,
            cancel,
            tenant=tenant,
        )
        try:
            # A node's output is read (its size, the next nodes' input): a large answer is built.
            return valued(future.result(timeout=timeout_s))
        except FutureTimeout:
            cancel.set()
            raise TargetFailure("Timeout", f"no answer within {timeout_s:g} s", retryable=True) from None
        except TargetFailure:
            raise
        except Exception as exc:  # a runner bug must fail the attempt, not the step function
            raise TargetFailure(type(exc).__name__, str(exc) or repr(exc), retryable=True) from exc

    # -- failure and compensation -----------------------------------------------------------------

    def failed(self, ref: RunRef, workflow: Workflow, error: dict[str, Any]) -> dict[str, Any]:
        """After a branch failed: stop new starts, wait for running attempts, plan what comes next."""
        nothing = {"wait": False, "compensate": False}
        run = self.runs.get(ref.tenant, ref.run_id)
        if run is None or run.state is not RunState.RUNNING or run.exec != ref.exec:
            return nothing  # cancelled meanwhile, or a stale execution
        now = self.clock.now_ms()
        if run.phase is Phase.NODES:
            run = self.runs.update_run(
                run,
                states={RunState.RUNNING},
                exec=ref.exec,
                phases={Phase.NODES},
                changes={"phase": Phase.SETTLING},
                now_ms=now,
            ) or self.runs.get(ref.tenant, ref.run_id)
            if run is None or run.state is not RunState.RUNNING:
                return nothing
        if run.phase is not Phase.SETTLING:
            return nothing  # already compensating (a retried task): the plan was answered before
        # Read after the phase change: every attempt that started before it is visible now.
        _, nodes, _ = self.runs.ledger(ref.tenant, ref.run_id)
        wait = False
        for record in nodes.values():
            if record.exec != ref.exec:
                continue
            if record.state is NodeState.RUNNING:
                deadline = (record.attempt_at or 0) + (workflow.by_id[record.id].timeout_s + GRACE_S) * 1000
                if now < deadline:
                    wait = True
                else:
                    self.runs.node_failed(
                        ref.tenant,
                        ref.run_id,
                        record.id,
                        try_id=record.try_id,
                        state=NodeState.FAILED,
                        error={
                            "type": "Abandoned",
                            "message": "the attempt gave no answer within its timeout",
                        },
                        now_ms=now,
                    )
            elif record.state is NodeState.RETRYING:
                # It was waiting for a retry the failed run will never make.
                self.runs.node_failed(
                    ref.tenant,
                    ref.run_id,
                    record.id,
                    try_id=None,
                    state=NodeState.FAILED,
                    error=record.error or {"type": "Stopped", "message": "the run failed before its retry"},
                    now_ms=now,
                    expect=NodeState.RETRYING,
                )
        if wait:
            return {"wait": True, "compensate": False}
        cause = run.error or _execution_error(error, workflow)
        completed = [r.id for r in nodes.values() if r.state is NodeState.SUCCEEDED]
        if workflow.on_failure == "compensate":
            waves = compensation_waves(workflow, completed)
            if waves:
                self.runs.update_run(
                    run,
                    states={RunState.RUNNING},
                    exec=ref.exec,
                    changes={"phase": Phase.COMPENSATING, "error": cause, "compensation_started": True},
                    now_ms=now,
                )
                return {"wait": False, "compensate": True, "waves": waves}
            final = RunState.COMPENSATED  # nothing completed that has an undo: the rollback is trivially done
        else:
            final = RunState.FAILED
        self._end(run, ref, now, state=final, error=cause)
        return nothing

    def compensate(self, ref: RunRef, workflow: Workflow, node_id: str, retry: int) -> dict[str, Any]:
        node = workflow.by_id[node_id]
        assert node.compensate is not None
        try_id = uuid.uuid4().hex
        started, attempts = self.runs.start_compensation(
            ref.tenant,
            ref.run_id,
            node_id,
            try_id=try_id,
            now_ms=self.clock.now_ms(),
            expires_at=self._keep(workflow),
        )
        if not started:
            return {"node": node_id, "skipped": True}
        run = self.runs.get(ref.tenant, ref.run_id)
        _, output = self.runs.output(ref.tenant, ref.run_id, node_id)
        try:
            output = self._readable(ref.tenant, {"o": output}, node.compensate, node.timeout_s)["o"]
        except TargetFailure:
            output = None
        envelope = {
            "run_id": ref.run_id,
            "workflow": ref.workflow,
            "node": node_id,
            "attempt": attempts,
            "input": run.input if run else None,
            "output": output,
            "payload": node.payload,
        }
        try:
            self._call(ref.tenant, node.compensate, envelope, node.timeout_s)
        except TargetFailure as failure:
            final = not failure.retryable or retry + 1 >= workflow.spec.defaults.retry.max_attempts
            error = {"type": failure.error_type, "message": failure.message[:2000]}
            self.runs.compensation_finished(
                ref.tenant,
                ref.run_id,
                node_id,
                try_id=try_id,
                state=NodeState.FAILED if final else NodeState.RETRYING,
                error=error,
                now_ms=self.clock.now_ms(),
            )
            self._count(
                "compensation_failed" if final else "compensation_retried",
                ref,
                node.compensate,
                attempts,
                failure,
            )
            text = f"compensation of {node_id}: {failure.error_type}: {failure.message[:500]}"
            raise (NodeFailed(text) if final else NodeAttemptFailed(text)) from None
        self.runs.compensation_finished(
            ref.tenant,
            ref.run_id,
            node_id,
            try_id=try_id,
            state=NodeState.SUCCEEDED,
            error=None,
            now_ms=self.clock.now_ms(),
        )
        self._count("compensation_succeeded", ref, node.compensate, attempts)
        return {"node": node_id}

    def compensated(self, ref: RunRef) -> dict[str, Any]:
        run, _, comps = self.runs.ledger(ref.tenant, ref.run_id)
        if run is None or run.state is not RunState.RUNNING or run.exec != ref.exec:
            return {"state": run.state.value if run else "GONE"}
        failed = [c for c in comps.values() if c.state is not NodeState.SUCCEEDED]
        now = self.clock.now_ms()
        if failed:
            names = ", ".join(c.id for c in failed)
            error: dict[str, Any] | None = {
                "type": "CompensationFailed",
                "message": f"compensation of {names} failed; the run is not fully undone",
                "cause": run.error,
                "compensations": [{"node": c.id, **(c.error or {"type": c.state.value})} for c in failed],
            }
            state = RunState.FAILED
        else:
            error, state = run.error, RunState.COMPENSATED
        self._end(run, ref, now, state=state, error=error)
        return {"state": state.value}

    def succeeded(self, ref: RunRef) -> dict[str, Any]:
        run = self.runs.get(ref.tenant, ref.run_id)
        if run is not None:
            now = self.clock.now_ms()
            self._end(run, ref, now, phases={Phase.NODES}, state=RunState.SUCCEEDED)
        return {}


def _output_json(output: Any, limit: int = MAX_OUTPUT_BYTES) -> str:
    """A node's output as stored, or a non-retryable failure when it cannot be kept."""
    try:
        text = json.dumps(output, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise TargetFailure(
            "InvalidOutput", "the output is not JSON (NaN, Infinity or a non-JSON type)", retryable=False
        ) from None
    if payload_depth(output) > MAX_PAYLOAD_DEPTH:
        raise TargetFailure(
            "InvalidOutput", f"the output nests deeper than {MAX_PAYLOAD_DEPTH} levels", retryable=False
        )
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise TargetFailure(
            "OutputTooLarge",
            f"the output is {size} bytes; a node may return up to {limit}",
            retryable=False,
        )
    return text


def _execution_error(error: dict[str, Any], workflow: Workflow) -> dict[str, Any]:
    """The run's error when no node failure was recorded: what the Parallel state's Catch saw."""
    name = str(error.get("Error") or "Unknown")
    if name == "States.Timeout":
        return {
            "type": "WorkflowTimeout",
            "message": f"the run did not finish within timeout_s={workflow.timeout_s}",
        }
    cause = error.get("Cause")
    message = cause if isinstance(cause, str) else json.dumps(cause)
    try:  # a Lambda error arrives as {"errorType", "errorMessage"} text
        parsed = json.loads(message)
        if isinstance(parsed, dict) and "errorMessage" in parsed:
            message = str(parsed["errorMessage"])
    except ValueError:
        pass
    return {"type": name, "message": (message or name)[:2000]}


__all__ = ["RunRef", "StepService"]
