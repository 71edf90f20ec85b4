"""Windowed triggers (pure rules): batch, debounce and correlate events per key before a task starts.

A trigger with a window does not start a task per event. Its events are grouped by a *key* (a
JSONPath into the event, ``$.detail.user_id``) into windows, one open window per (tenant, trigger,
key) at a time; when a window closes, at most one task starts with what it collected:

- ``batch``: events are collected until ``window_ms`` after the window's first event, or until
  ``max_events`` (or ``max_bytes``) are in it; then one task gets them all.
- ``debounce``: every event pushes the window's end to ``window_ms`` after it (up to ``max_wait_ms``
  after the first, when set); when the key stays quiet that long, one task starts with the last event.
- ``correlate``: the window lasts ``within_ms`` from its first event; when every listed pattern has
  matched an event of the key, one task starts at once with all of them. A window that ends
  incomplete starts nothing, or its ``on_timeout`` task when one is configured.

Windows run on the platform's clock when an event arrives (processing time), not on the event's own
``time`` (one-second resolution, set by its producer). A window's end is a wheel entry of kind
``window`` (or, due within ``NEAR_MS``, a message straight to its lane): the tick sends it ahead like
a task's delivery and the worker closes the window when it is due; no polling loop of its own. Every
event is counted once per trigger (the event id is written with a condition, in the same transaction
as the window's count).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from taskplane.domain.ids import _encode
from taskplane.domain.models import MAX_PAYLOAD_BYTES, TaskSubmit

#: Shortest and longest window: a tenth of a second (the tick's precision is milliseconds, an
#: event's way through EventBridge and SQS takes tens of them), and a day.
MIN_WINDOW_MS = 100
MAX_WINDOW_MS = 86_400_000
#: Most events one batch collects (each is a DynamoDB item read back when the window closes).
MAX_BATCH_EVENTS = 1_000
#: Most matched events one correlation window keeps, and most patterns it correlates (one
#: EventBridge rule each: a bus holds 300 rules).
MAX_CORRELATE_EVENTS = 100
MAX_CORRELATE_PATTERNS = 5
#: Longest key path.
MAX_KEY_PATH = 256
#: Bytes of events one window may collect when the platform has a bucket: its task's payload goes to
#: S3 above the inline limit, and this is what a task body through the API may carry.
MAX_WINDOW_BYTES = 5 * 1024 * 1024
#: Room kept for the payload's envelope (trigger id, key, window times) around the events.
ENVELOPE_BYTES = 4 * 1024
#: Without a bucket, a window's payload must stay inline.
INLINE_WINDOW_BYTES = MAX_PAYLOAD_BYTES - ENVELOPE_BYTES

#: An event a window holds is kept in its DynamoDB item up to this size (as a task's payload is); a
#: larger one goes to the bucket and its item holds only where (:func:`event_ref`): an event from an
#: external bus can be up to 1 MiB, over DynamoDB's 400 KB item.
INLINE_EVENT_BYTES = 64 * 1024
#: Without a bucket, the largest event a window item (or the task item of a plain trigger's task) is
#: given: DynamoDB's 400 KB item, less room for its keys and other attributes (a task's target,
#: labels and history). A larger event is dead-lettered, naming why, instead of failing every try.
MAX_ITEM_EVENT_BYTES = 350 * 1024
#: The one field of an event kept in the bucket, as its window item stores it.
EVENT_REF = "taskplane_event_ref"


def event_ref(key: str, size: int) -> dict[str, Any]:
    """What a window item holds for an event kept in the bucket (never the shape of an event, whose
    EventBridge envelope always has ``id``, ``source`` and ``detail``)."""
    return {EVENT_REF: {"key": key, "size": size}}


def ref_key(event: dict[str, Any]) -> str | None:
    """The bucket key of a stored event that is a reference (:func:`event_ref`), else None."""
    ref = event.get(EVENT_REF) if len(event) == 1 else None
    key = ref.get("key") if isinstance(ref, dict) else None
    return key if isinstance(key, str) else None


Mode = Literal["batch", "debounce", "correlate"]

# -- the key: a JSONPath naming one value ------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_QUOTED = re.compile(r"""\[\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*\]""")
_INDEX = re.compile(r"\[\s*(\d{1,6})\s*\]")


def parse_key_path(text: str) -> tuple[str | int, ...]:
    """The steps of a JSONPath that names one value: ``$``, then ``.name``, ``['name']`` or ``[0]``.

    A window key is one value, so what selects many (``*``, ``..``, filters, slices) is refused.
    Raises ``ValueError`` saying where the path stops making sense.
    """
    if not isinstance(text, str) or not text.startswith("$"):
        raise ValueError("a key is a JSONPath starting with '$', for example '$.detail.user_id'")
    if len(text) > MAX_KEY_PATH:
        raise ValueError(f"a key path is at most {MAX_KEY_PATH} characters")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        rest = text[pos:]
        if rest.startswith(".."):
            raise ValueError(f"'..' at {pos}: a key names one value, not a recursive search")
        if rest.startswith("."):
            name = _NAME.match(text, pos + 1)
            if name is None:
                raise ValueError(f"a field name must follow '.' at {pos} (use ['...'] for other names)")
            steps.append(name.group(0))
            pos = name.end()
            continue
        quoted = _QUOTED.match(text, pos)
        if quoted is not None:
            raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            steps.append(re.sub(r"\\(.)", r"\1", raw))
            pos = quoted.end()
            continue
        index = _INDEX.match(text, pos)
        if index is not None:
            steps.append(int(index.group(1)))
            pos = index.end()
            continue
        raise ValueError(
            f"unexpected {text[pos]!r} at {pos}: a key path takes .name, ['name'] and [index] steps "
            "(no wildcards, filters or slices: it names one value)"
        )
    if not steps:
        raise ValueError("a key must name a field of the event, for example '$.detail.user_id'")
    return tuple(steps)


_ABSENT: Any = object()


def key_value(event: Any, steps: tuple[str | int, ...]) -> Any:
    """The value the key path names in ``event`` (None when the path is absent)."""
    node = event
    for step in steps:
        found = (isinstance(step, int) and isinstance(node, list) and step < len(node)) or (
            isinstance(step, str) and isinstance(node, dict) and step in node
        )
        if not found:
            return None
        node = node[step]
    return node


def key_text(value: Any) -> str:
    """A key value as canonical JSON (``"u1"`` and ``1`` are different keys; absent is ``null``);
    ASCII, so that any string an event holds (a lone surrogate too) can be stored and hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def key_digest(text: str) -> str:
    """A short fixed-length name for a key in storage keys (the key itself is kept in the window)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


# -- the configuration -----------------------------------------------------------------------------


def _window_ms(description: str) -> Any:
    return Field(ge=MIN_WINDOW_MS, le=MAX_WINDOW_MS, description=description)


class _Keyed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(
        max_length=MAX_KEY_PATH,
        description="a JSONPath into the event naming one value (``$.detail.user_id``); events with the "
        "same value share a window (absent: the key is null)",
    )

    @field_validator("key")
    @classmethod
    def _parses(cls, value: str) -> str:
        parse_key_path(value)
        return value

    @property
    def steps(self) -> tuple[str | int, ...]:
        return parse_key_path(self.key)


class BatchWindow(_Keyed):
    """Collect events per key; one task gets them all when the window ends or is full."""

    max_events: int = Field(ge=1, le=MAX_BATCH_EVENTS, description="the batch starts its task when this full")
    window_ms: int = _window_ms("how long after its first event the batch starts its task at the latest")
    max_bytes: int | None = Field(
        default=None,
        ge=1024,
        le=MAX_WINDOW_BYTES,
        description="bytes of events a batch collects at most (default: the platform's limit)",
    )


class DebounceWindow(_Keyed):
    """Only the last event of a burst per key starts a task, once the key stayed quiet ``window_ms``."""

    window_ms: int = _window_ms("quiet time after the last event before its task starts")
    max_wait_ms: int | None = Field(
        default=None,
        ge=MIN_WINDOW_MS,
        le=MAX_WINDOW_MS,
        description="start the task at the latest this long after the burst's first event (default: none; "
        "at least window_ms)",
    )

    @field_validator("max_wait_ms")
    @classmethod
    def _not_shorter(cls, value: int | None, info: ValidationInfo) -> int | None:
        window = info.data.get("window_ms")
        if value is not None and window is not None and value < window:
            raise ValueError(f"max_wait_ms must be at least window_ms ({window})")
        return value


class CorrelateWindow(_Keyed):
    """A task starts once every pattern matched an event with the same key within ``within_ms``."""

    within_ms: int = _window_ms("how long after its first event a correlation may complete")
    events: list[dict[str, Any]] = Field(
        min_length=2,
        max_length=MAX_CORRELATE_PATTERNS,
        description="EventBridge event patterns, each scoped to the tenant like a trigger's pattern",
    )
    max_events: int = Field(
        default=MAX_CORRELATE_EVENTS,
        ge=2,
        le=MAX_CORRELATE_EVENTS,
        description="matched events a window keeps at most (a full window ends incomplete)",
    )
    max_bytes: int | None = Field(default=None, ge=1024, le=MAX_WINDOW_BYTES)
    #: checked as a trigger's task template by the trigger (domain/triggers.py)
    on_timeout: TaskSubmit | None = Field(
        default=None,
        description="a task template started with the matched events when a window ends incomplete",
    )


WindowSpec = BatchWindow | DebounceWindow | CorrelateWindow


def mode_of(spec: WindowSpec) -> Mode:
    if isinstance(spec, BatchWindow):
        return "batch"
    if isinstance(spec, DebounceWindow):
        return "debounce"
    return "correlate"


def length_ms(spec: WindowSpec) -> int:
    return spec.within_ms if isinstance(spec, CorrelateWindow) else spec.window_ms


def byte_limit(spec: WindowSpec, has_bucket: bool) -> int:
    """Bytes of events a window of ``spec`` may collect (its own ``max_bytes`` or the platform's)."""
    cap = MAX_WINDOW_BYTES if has_bucket else INLINE_WINDOW_BYTES
    own = getattr(spec, "max_bytes", None)
    return min(own, cap) if own is not None else cap


def event_limit(spec: WindowSpec) -> int:
    if isinstance(spec, DebounceWindow):
        return 2**31  # one event is kept: the count only counts
    return spec.max_events


# -- a window's life --------------------------------------------------------------------------------

State = Literal["OPEN", "CLOSING", "CLOSED"]
#: Why a window closed: ``time`` (its end), ``full`` (events or bytes), ``complete`` (every pattern
#: matched), ``quiet`` (a debounce's burst ended).
Reason = Literal["time", "full", "complete", "quiet"]


@dataclass(frozen=True)
class WindowHead:
    """One window's record: where it stands and what it holds (``matched``: pattern indexes seen)."""

    window_id: str
    key: str
    opened_at: int
    closes_at: int
    count: int = 0
    bytes: int = 0
    matched: frozenset[int] = frozenset()
    last_at: int = 0
    state: State = "OPEN"
    reason: Reason | None = None
    task_id: str | None = None


#: Characters of a window's key kept in its record (for reading it); the key itself is its digest,
#: and a task's payload takes the key from its first event.
KEPT_KEY_CHARS = 1_024


def open_head(spec: WindowSpec, window_id: str, key: str, now_ms: int) -> WindowHead:
    end = debounce_end(spec, now_ms, now_ms) if isinstance(spec, DebounceWindow) else now_ms + length_ms(spec)
    return WindowHead(window_id=window_id, key=key[:KEPT_KEY_CHARS], opened_at=now_ms, closes_at=end)


def debounce_end(spec: DebounceWindow, opened_at: int, last_at: int) -> int:
    """When a debounce window ends: ``window_ms`` after its last event, capped by ``max_wait_ms``."""
    end = last_at + spec.window_ms
    if spec.max_wait_ms is not None:
        end = min(end, opened_at + spec.max_wait_ms)
    return end


def takes(spec: WindowSpec, head: WindowHead, size: int, room: int, now_ms: int) -> bool:
    """Whether an open window takes one more event of ``size`` bytes now (else it is closed first and
    the event opens the next window). An empty window takes any one event."""
    if head.state != "OPEN" or now_ms >= head.closes_at:
        return False
    if isinstance(spec, DebounceWindow):
        return True
    if head.count >= event_limit(spec):
        return False
    return head.count == 0 or head.bytes + size <= room


def with_event(spec: WindowSpec, head: WindowHead, size: int, pattern: int | None, now_ms: int) -> WindowHead:
    """The window after it took one event (what the store's conditional update writes)."""
    matched = head.matched | ({pattern} if pattern is not None else set())
    if isinstance(spec, DebounceWindow):
        return replace(
            head,
            count=head.count + 1,
            bytes=size,
            last_at=now_ms,
            closes_at=debounce_end(spec, head.opened_at, now_ms),
        )
    return replace(
        head, count=head.count + 1, bytes=head.bytes + size, matched=frozenset(matched), last_at=now_ms
    )


def ends_early(spec: WindowSpec, head: WindowHead, room: int) -> Reason | None:
    """Why a window closes before its end right after an event: a full batch, a complete correlation."""
    if isinstance(spec, CorrelateWindow):
        if len(head.matched) >= len(spec.events):
            return "complete"
        return "full" if head.count >= spec.max_events or head.bytes >= room else None
    if isinstance(spec, BatchWindow):
        return "full" if head.count >= spec.max_events or head.bytes >= room else None
    return None


def starts(spec: WindowSpec, head: WindowHead, reason: Reason) -> Literal["task", "on_timeout"] | None:
    """What a closed window starts: its task, its correlation's ``on_timeout`` task, or nothing."""
    if head.count == 0:
        return None
    if isinstance(spec, CorrelateWindow):
        if reason == "complete":
            return "task"
        return "on_timeout" if spec.on_timeout is not None else None
    return "task"


def close_reason(spec: WindowSpec, head: WindowHead, now_ms: int) -> Reason | None:
    """Why the window closes when its wheel entry fires at ``now_ms``, or None when its end has moved
    later (a debounce's newer event): the entry is then written again for the new end."""
    if now_ms < head.closes_at:
        return None
    return "quiet" if isinstance(spec, DebounceWindow) else "time"


@dataclass(frozen=True)
class Collected:
    """One stored event of a window: when it arrived, its id, the patterns it matched, the event."""

    at: int
    event_id: str
    event: dict[str, Any]
    patterns: frozenset[int] = frozenset()


def window_payload(
    spec: WindowSpec, trigger_id: str, head: WindowHead, reason: Reason, events: list[Collected]
) -> dict[str, Any]:
    """The payload of the task a closed window starts.

    A debounce's task gets the burst's last event itself (as a trigger's task gets its event), a
    batch's and a correlation's ``{"trigger_id", "key", "window", "events": [...]}`` with the events
    in arrival order; a correlation adds ``matched``: per pattern, the ids of the events it matched.
    """
    ordered = sorted(events, key=lambda c: (c.at, c.event_id))
    if isinstance(spec, DebounceWindow):
        return ordered[-1].event
    payload: dict[str, Any] = {
        "trigger_id": trigger_id,
        "mode": mode_of(spec),
        "key": key_value(ordered[0].event, spec.steps),
        "window": {
            "id": head.window_id,
            "opened_at": head.opened_at,
            "closes_at": head.closes_at,
            "reason": reason,
            "events": len(ordered),
        },
        "events": [c.event for c in ordered],
    }
    if isinstance(spec, CorrelateWindow):
        payload["matched"] = [
            [c.event_id for c in ordered if i in c.patterns] for i in range(len(spec.events))
        ]
    return payload


def window_task_id(trigger_id: str, window_id: str, opened_at: int) -> str:
    """One task per window: a close tried again (a tick retried, a worker redelivered) finds it."""
    digest = int.from_bytes(
        hashlib.blake2b(f"{trigger_id}~{window_id}".encode(), digest_size=10).digest(), "big"
    )
    return _encode(opened_at, 10) + _encode(digest, 16)


def wheel_item_id(trigger_id: str, window_id: str) -> str:
    """The wheel entry's id for a window's close: the trigger and the window it closes."""
    return f"{trigger_id}.{window_id}"


def parse_wheel_item_id(item_id: str) -> tuple[str, str]:
    trigger_id, _, window_id = item_id.partition(".")
    return trigger_id, window_id
