"""A writer whose clock runs behind puts a wheel entry where the tick has already been: it is sent
straight to its lane instead of waiting for a tick that will never come back for it."""

from __future__ import annotations

import pytest

from taskplane.domain.clock import FixedClock
from taskplane.domain.models import TaskSubmit
from taskplane.domain.wheel import slot_of, sort_key

pytestmark = pytest.mark.integration

fixed_clock = pytest.mark.parametrize("aws", [{"clock": lambda: FixedClock()}], indirect=True, ids=["fixed"])


def queued(aws) -> int:
    """Messages on the default lane, counting delayed ones (the task is not due yet)."""
    attrs = aws.client("sqs").get_queue_attributes(
        QueueUrl=aws.settings.queue_urls["default"], AttributeNames=["All"]
    )["Attributes"]
    return sum(int(attrs[k]) for k in attrs if k.startswith("ApproximateNumberOfMessages"))


def tick_has_reached(aws, at_ms: int) -> None:
    """The shard's saved tick position is ``at_ms`` (as a tick on a correct clock would leave it)."""
    wheel = aws.platform.tasks.wheel
    assert wheel.acquire(0, "tick-a", at_ms, 60_000) is not None
    assert wheel.save(0, "tick-a", at_ms, 60_000, (slot_of(at_ms), sort_key(at_ms, "~")))


@fixed_clock
@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_entry_behind_the_tick_is_queued_at_once(aws, batch):
    # Given the tick already 10 s ahead of this writer's clock (the writer runs 10 s slow)
    now = aws.platform.tasks.clock.now_ms()
    tick_has_reached(aws, now + 10_000)
    # When the writer submits a task due in 5 s by its own clock (it goes through the wheel)
    body = TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 5_000})
    if batch:
        (task,) = aws.platform.tasks.submit_batch("acme", [body])
    else:
        task, _ = aws.platform.tasks.submit("acme", body)
    # Then it is queued on its lane as well, so it still runs
    assert task.state.value == "SCHEDULED"
    assert queued(aws) == 1


@fixed_clock
def test_entry_ahead_of_the_tick_waits_in_the_wheel_only(aws):
    # Given the tick where this writer's clock is
    now = aws.platform.tasks.clock.now_ms()
    tick_has_reached(aws, now)
    # When a task due in 5 s is submitted / Then the wheel alone holds it
    aws.platform.tasks.submit(
        "acme", TaskSubmit.model_validate({"target": {"type": "builtin", "name": "echo"}, "delay_ms": 5_000})
    )
    assert queued(aws) == 0
