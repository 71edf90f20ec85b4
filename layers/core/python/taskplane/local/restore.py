"""Reopening a ``taskplane dev --db FILE``: what lived in moto (Step Functions) is rebuilt from the file.

Everything the platform keeps is in the SQLite file: tasks, lanes, the wheel, schedules, triggers and
their rules, workflows and their versions, runs and their ledgers. Only the state machines and their
executions live in moto's Step Functions, which starts empty in every process. So on reopening:

1. **Workflows are published again**, every stored version in version order, so each gets back the
   very ARN its version record and its runs name (Step Functions numbers versions 1, 2, ... per state
   machine, and machine names are derived from tenant and workflow); then the old versions are
   pruned and the ``live`` alias routed as after a PUT.
2. **Runs that were RUNNING are relaunched**: their executions went with the old process. Each is
   marked failed by the restart (``RuntimeRestarted``) and resumed, which runs a new execution where
   nodes that succeeded are skipped (their outputs are in the ledger): nothing that finished runs
   twice. A run with a node caught mid-call cannot be resumed until that node's timeout has passed (its
   call may still be going on somewhere); it stays FAILED with a message saying so, and ``taskplane
   workflows resume`` (``POST .../resume``) continues it later.
3. **Lane messages a worker had received** are made visible again at once (``SqliteQueues.release_in_flight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskplane.domain.asl import compile_asl, to_json
from taskplane.domain.workflow import Phase, RunState, workflow_from_canonical

#: The error a run relaunched after a restart carries in its history (its resume clears it).
RESTARTED = "RuntimeRestarted"


@dataclass
class RestoreReport:
    workflows: int = 0
    versions: int = 0
    runs_resumed: int = 0
    #: run ids left FAILED (a node still within its timeout), with why
    runs_waiting: dict[str, str] = field(default_factory=dict)
    messages_released: int = 0


def restore(platform: Any, backend: Any) -> RestoreReport:
    """Rebuild moto's side of a reopened database file; see the module's docstring."""
    report = RestoreReport(messages_released=backend.queues.release_in_flight())
    _republish(platform.workflows, report)
    _relaunch_runs(platform.workflows, report)
    return report


def _republish(service: Any, report: RestoreReport) -> None:
    from taskplane.observability import logger
    from taskplane.services.workflows import KEEP_VERSIONS

    sfn = service.sfn
    for record, versions in service.store.everything():
        machine_arn = None
        arns: dict[int, str] = {}
        for version in versions:
            workflow = workflow_from_canonical(version.definition)
            definition = to_json(compile_asl(workflow, service.step_function_arn, version=version.version))
            machine_arn, arn = sfn.publish(
                machine_arn,
                sfn.machine_name(record.tenant, record.name),
                definition,
                description=f"taskplane {record.name} v{version.version} ({version.digest[:12]})",
                tags={"taskplane:tenant": record.tenant, "taskplane:workflow": record.name},
            )
            arns[version.version] = arn
            report.versions += 1
            if arn != version.version_arn:  # never expected: the numbering is Step Functions' own
                logger.warning(
                    "a republished version has another ARN",
                    extra={"workflow": record.name, "stored": version.version_arn, "now": arn},
                )
        report.workflows += 1
        if machine_arn is None:
            continue
        weights = {arns[v]: w for v, w in record.routing.items() if v in arns} or {arns[record.latest]: 100}
        sfn.route(machine_arn, weights)
        sfn.prune(machine_arn, keep=set(weights) | {arns[record.latest]}, newest=KEEP_VERSIONS)


def _relaunch_runs(service: Any, report: RestoreReport) -> None:
    from taskplane.domain.errors import TaskplaneError

    runs = service.runs
    for run in runs.running():
        now = service.clock.now_ms()
        failed = runs.update_run(
            run,
            states={RunState.RUNNING},
            exec=run.exec,
            changes={
                "state": RunState.FAILED,
                "phase": Phase.DONE,
                "finished_at": now,
                "error": {
                    "type": RESTARTED,
                    "message": "taskplane dev stopped while the run was running; it is resumed on restart",
                },
            },
            now_ms=now,
        )
        if failed is None:
            continue
        try:
            service.resume(run.tenant, run.run_id)
        except TaskplaneError as exc:
            report.runs_waiting[run.run_id] = exc.message
            runs.update_run(
                failed,
                states={RunState.FAILED},
                exec=failed.exec,
                changes={
                    "error": {
                        "type": RESTARTED,
                        "message": f"taskplane dev stopped while the run was running and could not resume "
                        f"it yet ({exc.message}); resume it with POST /v1/runs/{run.run_id}/resume",
                    }
                },
                now_ms=service.clock.now_ms(),
            )
        else:
            report.runs_resumed += 1
