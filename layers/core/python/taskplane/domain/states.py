"""The task state machine: the only legal moves, as a table and a pure check."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class TaskState(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    RETRYING = "RETRYING"
    CANCELLED = "CANCELLED"


S = TaskState

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED}),
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.RETRYING}),
    S.TIMED_OUT: frozenset({S.RETRYING, S.FAILED}),
    S.RETRYING: frozenset({S.PENDING, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[TaskState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
CANCELLABLE: frozenset[TaskState] = frozenset(s for s, nxt in TRANSITIONS.items() if S.CANCELLED in nxt)


class IllegalTransition(ValueError):
    """A move the state machine does not allow."""

    def __init__(self, current: TaskState, target: TaskState) -> None:
        super().__init__(f"illegal move {current} -> {target}")
        self.current = current
        self.target = target


def can_move(current: TaskState, target: TaskState) -> bool:
    """True when ``current -> target`` is a legal move."""
    return target in TRANSITIONS[current]


def check_path(current: TaskState, path: Iterable[TaskState]) -> list[TaskState]:
    """Validate a chain of moves starting at ``current`` and return it as a list.

    A storage write may apply several moves at once (``RETRYING -> PENDING -> RUNNING``);
    every step must be legal on its own.

    Examples
    --------
    >>> check_path(TaskState.RETRYING, [TaskState.PENDING, TaskState.RUNNING])
    [<TaskState.PENDING: 'PENDING'>, <TaskState.RUNNING: 'RUNNING'>]
    """
    steps = list(path)
    if not steps:
        raise ValueError("a transition needs at least one target state")
    state = current
    for nxt in steps:
        if not can_move(state, nxt):
            raise IllegalTransition(state, nxt)
        state = nxt
    return steps


def path_to_running(current: TaskState) -> list[TaskState] | None:
    """The moves that start an attempt from ``current``, or None if it cannot start."""
    if current is S.PENDING:
        return [S.RUNNING]
    if current in (S.SCHEDULED, S.RETRYING):
        return [S.PENDING, S.RUNNING]
    return None
