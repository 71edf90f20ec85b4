"""The SQLite adapter set: the same ports as the DynamoDB/SQS/EventBridge adapters (``services/ports.py``),
on one SQLite database (``db.Database``), for the local runtime. Chosen by wiring only; services never
know which set they run on. ``tests/contract`` runs the same tests against both sets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy checks that both sets implement each port
    from taskplane.adapters.sqlite.db import Database
    from taskplane.services import ports

    def _both_sets_fit_the_ports(db: Database, ddb: object) -> None:
        from taskplane.adapters.admission import InflightCounters
        from taskplane.adapters.breakers import BreakerStore
        from taskplane.adapters.dead_letters import DeadLetterStore
        from taskplane.adapters.latency import LatencyStore
        from taskplane.adapters.run_store import RunStore
        from taskplane.adapters.schedule_store import ScheduleStore
        from taskplane.adapters.sqlite.control import SqliteBreakerStore, SqliteInflightCounters
        from taskplane.adapters.sqlite.dead_letters import SqliteDeadLetterStore
        from taskplane.adapters.sqlite.events import SqliteEventBridge, SqliteTriggerRules
        from taskplane.adapters.sqlite.latency import SqliteLatencyStore
        from taskplane.adapters.sqlite.runs import SqliteRunStore
        from taskplane.adapters.sqlite.schedules import SqliteScheduleStore
        from taskplane.adapters.sqlite.tasks import SqliteTaskStore
        from taskplane.adapters.sqlite.triggers import SqliteTriggerStore
        from taskplane.adapters.sqlite.workflows import SqliteWorkflowStore
        from taskplane.adapters.task_store import TaskStore
        from taskplane.adapters.triggers import TriggerRules, TriggerStore
        from taskplane.adapters.wheel_store import WheelStore
        from taskplane.adapters.workflow_store import WorkflowStore

        tasks: list[ports.TaskRecords] = [TaskStore(""), SqliteTaskStore(db)]
        breakers: list[ports.BreakerRecords] = [BreakerStore(""), SqliteBreakerStore(db)]
        counts: list[ports.InflightCounts] = [InflightCounters(""), SqliteInflightCounters(db)]
        letters: list[ports.DeadLetterRecords] = [DeadLetterStore(""), SqliteDeadLetterStore(db)]
        schedules: list[ports.ScheduleRecords] = [
            ScheduleStore("", WheelStore("", "")),
            SqliteScheduleStore(db),
        ]
        triggers: list[ports.TriggerRecords] = [TriggerStore("", ddb), SqliteTriggerStore(db)]
        rules: list[ports.TriggerRuleSet] = [
            TriggerRules(ddb, ddb, {}),
            SqliteTriggerRules(SqliteEventBridge(db, lambda lane, body: None)),
        ]
        workflows: list[ports.WorkflowRecords] = [WorkflowStore(""), SqliteWorkflowStore(db)]
        runs: list[ports.RunLedger] = [RunStore(""), SqliteRunStore(db)]
        latency: list[ports.LatencyRecords] = [LatencyStore(""), SqliteLatencyStore(db)]
        del latency, tasks, breakers, counts, letters, schedules, triggers, rules, workflows, runs
