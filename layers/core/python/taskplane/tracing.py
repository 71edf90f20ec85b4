"""The tracing port: where the platform opens spans of a task's and a run's life.

The default is :data:`NULL_TRACING`, which does nothing and imports nothing. With
``TASKPLANE_OTLP_ENDPOINT`` set, ``wiring.build`` makes ``taskplane.otlp.OtlpExport`` instead (the
OpenTelemetry SDK is imported then, never by a handler module's import). What each call records is
described there and in the README ("Observability").

The calls sit where work crosses a boundary, so every door is covered by one call: a task or run
record created (``TaskStore.create``, ``RunStore.create``: the root span), a lane message sent
(``Lanes.send``: a dispatch, whoever sends it), an execution started (``StepFunctions.start``), a
lane message received (the worker), an attempt run (``Executor._run``), a step function task (the
step handler), an HTTP target called (its ``traceparent`` header).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from taskplane.adapters.queues import LaneMessage
    from taskplane.domain.models import Task
    from taskplane.domain.tracecontext import TraceIds

Ended = Callable[[Sequence[BaseException | None]], None]


class SpanNote(Protocol):
    """What the code inside a span may add to it."""

    def outcome(self, value: object) -> None: ...

    def set(self, **attributes: str | int | bool) -> None: ...


class Tracing(Protocol):
    @property
    def enabled(self) -> bool: ...

    def trace_id(self, ids: TraceIds) -> str | None:
        """The trace's id in hex when this deployment exports it (endpoint set, trace sampled)."""
        ...

    def tasks_created(self, tasks: Sequence[Task], began_ns: int) -> None:
        """Each task's root span (``task.submit``), from ``began_ns`` (epoch ns) to now."""
        ...

    def run_created(self, tenant: str, run_id: str, workflow: str, version: int, began_ns: int) -> None:
        """A workflow run's root span (``workflow.run``)."""
        ...

    def dispatch(self, messages: Sequence[LaneMessage]) -> tuple[list[LaneMessage], Ended]:
        """A ``task.dispatch`` span per lane message about to be sent: the messages carrying it, and
        what to call with the send's outcome per message (None = sent)."""
        ...

    def launch(self, payload: dict[str, Any]) -> tuple[dict[str, Any], Ended]:
        """A ``workflow.start`` span for an execution about to start: its input carrying it."""
        ...

    def delivered(self, message: LaneMessage) -> contextlib.AbstractContextManager[None]:
        """Inside: what the worker does for ``message`` hangs under the span that sent it."""
        ...

    def attempt(
        self, name: str, tenant: str, task_id: str, attempt: int, **attributes: str | int | bool
    ) -> contextlib.AbstractContextManager[SpanNote]:
        """One span (``task.run``, ``task.watch``) around what the worker does for one attempt."""
        ...

    def failed(self, error_type: str, message: str) -> None:
        """The innermost span open here failed this way (told safely: no secrets in ``message``)."""
        ...

    def step(self, event: Mapping[str, Any]) -> contextlib.AbstractContextManager[SpanNote]:
        """One span around a Step Functions task of a run (``workflow.node``, ``workflow.gate``, ...)."""
        ...

    def request(self, headers: Mapping[str, Any] | None) -> contextlib.AbstractContextManager[None]:
        """Inside: root spans link to the caller's span (a ``traceparent`` header)."""
        ...

    def traceparent(self) -> str | None:
        """The ``traceparent`` of the span open here, for a target call's headers."""
        ...

    def flush(self) -> None:
        """Export what is waiting (the end of a Lambda invocation: it may freeze right after)."""
        ...

    def shutdown(self) -> None: ...


class _NullNote:
    def outcome(self, value: object) -> None:
        return None

    def set(self, **attributes: str | int | bool) -> None:
        return None


_NULL_NOTE = _NullNote()


class NullTracing:
    """No spans, no exports, no imports."""

    enabled = False

    def trace_id(self, ids: TraceIds) -> str | None:
        return None

    def tasks_created(self, tasks: Sequence[Task], began_ns: int) -> None:
        return None

    def run_created(self, tenant: str, run_id: str, workflow: str, version: int, began_ns: int) -> None:
        return None

    def dispatch(self, messages: Sequence[LaneMessage]) -> tuple[list[LaneMessage], Ended]:
        return list(messages), _ignore

    def launch(self, payload: dict[str, Any]) -> tuple[dict[str, Any], Ended]:
        return payload, _ignore

    def delivered(self, message: LaneMessage) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def attempt(
        self, name: str, tenant: str, task_id: str, attempt: int, **attributes: str | int | bool
    ) -> contextlib.AbstractContextManager[SpanNote]:
        return contextlib.nullcontext(_NULL_NOTE)

    def failed(self, error_type: str, message: str) -> None:
        return None

    def step(self, event: Mapping[str, Any]) -> contextlib.AbstractContextManager[SpanNote]:
        return contextlib.nullcontext(_NULL_NOTE)

    def request(self, headers: Mapping[str, Any] | None) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def traceparent(self) -> str | None:
        return None

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def _ignore(outcomes: Sequence[BaseException | None]) -> None:
    return None


NULL_TRACING: Tracing = NullTracing()

F = TypeVar("F", bound=Callable[..., Any])


def traced_attempt(method: F) -> F:
    """``Executor._run(task, ...)`` inside a ``task.run`` span: one span per attempt, its outcome
    the method's answer. The executor needs a ``tracing`` attribute."""

    @functools.wraps(method)
    def run(self: Any, task: Task, *args: Any, **kwargs: Any) -> Any:
        with self.tracing.attempt(
            "task.run",
            task.tenant,
            task.task_id,
            task.attempts,
            lane=task.priority,
            target_type=task.target_type,
        ) as note:
            result = method(self, task, *args, **kwargs)
            note.outcome(result)
            return result

    return run  # type: ignore[return-value]


def traced_watch(method: F) -> F:
    """``Executor._watch(delivery, ...)`` inside a ``task.watch`` span: a look at an attempt that may
    have been abandoned (its worker died), which times it out when it was."""

    @functools.wraps(method)
    def watch(self: Any, delivery: LaneMessage, *args: Any, **kwargs: Any) -> Any:
        with self.tracing.attempt(
            "task.watch", delivery.tenant, delivery.task_id, delivery.attempt, lane=delivery.lane
        ) as note:
            result = method(self, delivery, *args, **kwargs)
            note.outcome(result)
            return result

    return watch  # type: ignore[return-value]
