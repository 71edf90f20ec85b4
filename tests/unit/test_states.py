"""The task state machine against the contract in ARCHITECTURE.md §1."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from taskplane.domain.states import (
    CANCELLABLE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    TaskState,
    can_move,
    check_path,
    path_to_running,
)

pytestmark = pytest.mark.unit

# Written out from ARCHITECTURE.md §1 by hand, as plain strings, so the test does not
# reuse the table it checks.
CONTRACT: dict[str, set[str]] = {
    "SCHEDULED": {"PENDING", "CANCELLED"},
    "PENDING": {"RUNNING", "CANCELLED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "TIMED_OUT", "RETRYING"},
    "TIMED_OUT": {"RETRYING", "FAILED"},
    "RETRYING": {"PENDING", "CANCELLED"},
    "SUCCEEDED": set(),
    "FAILED": set(),
    "CANCELLED": set(),
}
CONTRACT_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
STARTS = (TaskState.SCHEDULED, TaskState.PENDING)

states = st.sampled_from(list(TaskState))
PROPERTY = settings(max_examples=200, deadline=None)


def legal(current: TaskState, target: TaskState) -> bool:
    return target.value in CONTRACT[current.value]


@st.composite
def walks(draw: st.DrawFn) -> tuple[TaskState, list[TaskState]]:
    """A start state and a path that mostly follows the contract, with random wrong turns."""
    start = draw(states)
    path: list[TaskState] = []
    state = start
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        nexts = sorted(CONTRACT[state.value])
        if nexts and draw(st.integers(min_value=0, max_value=4)) > 0:
            step = TaskState(draw(st.sampled_from(nexts)))
        else:
            step = draw(states)
        path.append(step)
        state = step
    return start, path


def first_illegal(start: TaskState, path: list[TaskState]) -> tuple[TaskState, TaskState] | None:
    state = start
    for step in path:
        if not legal(state, step):
            return state, step
        state = step
    return None


def test_states_are_exactly_the_contract_states() -> None:
    # Given the contract's eight states
    # When listing the enum
    names = {s.value for s in TaskState}
    # Then they are the same set, and each value is its own name
    assert names == set(CONTRACT)
    assert all(s.name == s.value for s in TaskState)


def test_transition_table_equals_contract() -> None:
    # Given the hand-written contract table
    # When reading the module's table as plain strings
    table = {s.value: {t.value for t in nxt} for s, nxt in TRANSITIONS.items()}
    # Then the two are identical, key for key
    assert table == CONTRACT


@pytest.mark.parametrize("current", list(TaskState))
@pytest.mark.parametrize("target", list(TaskState))
def test_can_move_matches_contract_for_every_pair(current: TaskState, target: TaskState) -> None:
    # Given any ordered pair of states
    # When asking whether the move is legal
    # Then the answer is the contract's
    assert can_move(current, target) is legal(current, target)


def test_terminal_and_cancellable_sets() -> None:
    # Given the contract
    # When reading the derived sets
    # Then terminal is SUCCEEDED/FAILED/CANCELLED and cancellable is every state that may move to CANCELLED
    assert {s.value for s in TERMINAL} == CONTRACT_TERMINAL
    assert {s.value for s in CANCELLABLE} == {"SCHEDULED", "PENDING", "RETRYING"}


@pytest.mark.parametrize("terminal", sorted(CONTRACT_TERMINAL))
def test_terminal_states_have_no_moves(terminal: str) -> None:
    # Given a terminal state
    state = TaskState(terminal)
    # When trying every move out of it
    # Then none is legal and check_path refuses each one
    assert TRANSITIONS[state] == frozenset()
    for target in TaskState:
        assert not can_move(state, target)
        with pytest.raises(IllegalTransition):
            check_path(state, [target])


def test_every_non_terminal_state_has_a_move() -> None:
    # Given the states outside the terminal set
    # When reading their moves
    # Then each has at least one, so no task can get stuck in a non-final state
    for state in TaskState:
        if state.value not in CONTRACT_TERMINAL:
            assert TRANSITIONS[state], state


def test_check_path_rejects_an_empty_path() -> None:
    # Given a state and no moves
    # When checking the path
    # Then it is refused (a write must move somewhere), but not as an illegal transition
    with pytest.raises(ValueError) as info:
        check_path(TaskState.PENDING, [])
    assert not isinstance(info.value, IllegalTransition)


def test_check_path_accepts_the_documented_multi_step_write() -> None:
    # Given a RETRYING task whose next attempt starts
    # When one write moves it through PENDING to RUNNING
    path = check_path(TaskState.RETRYING, iter([TaskState.PENDING, TaskState.RUNNING]))
    # Then the path is accepted and returned as a list
    assert path == [TaskState.PENDING, TaskState.RUNNING]


@PROPERTY
@given(walks())
def test_check_path_accepts_iff_every_step_is_in_contract(walk: tuple[TaskState, list[TaskState]]) -> None:
    # Given a start state and a path of moves
    start, path = walk
    bad = first_illegal(start, path)
    if bad is None:
        # When every step is in the contract
        # Then check_path returns the path unchanged
        assert check_path(start, path) == path
    else:
        # When some step is not
        # Then check_path raises naming the first bad step
        with pytest.raises(IllegalTransition) as info:
            check_path(start, path)
        assert (info.value.current, info.value.target) == bad
        assert bad[0].value in str(info.value)
        assert bad[1].value in str(info.value)


@PROPERTY
@given(start=states, path=st.lists(states, min_size=1, max_size=8))
def test_check_path_on_arbitrary_sequences(start: TaskState, path: list[TaskState]) -> None:
    # Given any sequence of states, legal or not
    bad = first_illegal(start, path)
    # When checking it
    # Then it is accepted exactly when every step is legal
    try:
        check_path(start, path)
    except IllegalTransition as exc:
        assert bad == (exc.current, exc.target)
    else:
        assert bad is None


@st.composite
def walks_to_terminal(draw: st.DrawFn) -> tuple[TaskState, list[TaskState]]:
    """A legal walk from a start state that ends in a terminal state."""
    start = draw(st.sampled_from(STARTS))
    path: list[TaskState] = []
    state = start
    while state.value not in CONTRACT_TERMINAL and len(path) < 40:
        state = TaskState(draw(st.sampled_from(sorted(CONTRACT[state.value]))))
        path.append(state)
    assume(state.value in CONTRACT_TERMINAL)
    return start, path


@PROPERTY
@given(walk=walks_to_terminal(), after=states)
def test_no_move_leaves_a_terminal_state(walk: tuple[TaskState, list[TaskState]], after: TaskState) -> None:
    # Given a legal walk that ends in a terminal state
    start, path = walk
    assert check_path(start, path) == path
    # When appending any further move
    # Then the extended path is refused at exactly that move
    with pytest.raises(IllegalTransition) as info:
        check_path(start, [*path, after])
    assert (info.value.current, info.value.target) == (path[-1], after)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (TaskState.PENDING, [TaskState.RUNNING]),
        (TaskState.SCHEDULED, [TaskState.PENDING, TaskState.RUNNING]),
        (TaskState.RETRYING, [TaskState.PENDING, TaskState.RUNNING]),
    ],
)
def test_path_to_running_from_startable_states(state: TaskState, expected: list[TaskState]) -> None:
    # Given a state from which an attempt may start
    # When asking for the path to RUNNING
    path = path_to_running(state)
    # Then it is the expected shortest path, legal under the contract, ending in RUNNING
    assert path == expected
    assert first_illegal(state, path) is None
    assert check_path(state, path) == path


@pytest.mark.parametrize(
    "state",
    [TaskState.RUNNING, TaskState.TIMED_OUT, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED],
)
def test_path_to_running_is_none_elsewhere(state: TaskState) -> None:
    # Given a state that is running, mid-failure or finished
    # When asking for the path to RUNNING
    # Then there is none: a redelivered message must not start another attempt
    assert path_to_running(state) is None


def test_every_state_is_reachable_from_a_start_state() -> None:
    # Given the two states a submission starts in
    # When walking the contract table breadth first
    seen = set(STARTS)
    queue = deque(STARTS)
    while queue:
        state = queue.popleft()
        for nxt in TaskState:
            if can_move(state, nxt) and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    # Then every state is reached
    assert seen == set(TaskState)
