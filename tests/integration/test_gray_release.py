"""Gray release for tasks: label or percentage rules route to a Lambda alias or URL variant."""

from __future__ import annotations

from typing import Any

import pytest

from taskplane.domain.gray import RouteRule, bucket

pytestmark = pytest.mark.integration

LAMBDA = {"target": {"type": "lambda", "function": "orders"}}
HTTP = {"target": {"type": "http", "url": "https://api.example.com/v1/charge?x=1"}}


class Recorder:
    def __init__(self) -> None:
        self.targets: dict[str, dict[str, Any]] = {}

    def run(
        self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, *, tenant: str | None = None
    ) -> Any:
        self.targets[envelope["task_id"]] = target
        return None


@pytest.fixture
def routed(aws: Any) -> Recorder:
    aws.platform.tasks.routes = {
        "acme": [
            RouteRule(
                name="canary", labels={"env": "canary"}, lambda_alias="canary", http_host="canary.example.com"
            ),
            RouteRule(name="http-30", percent=30, http_host="next.example.com:8443"),
        ]
    }
    recorder = Recorder()
    aws.platform.executor.runners = recorder
    return recorder


def test_x_env_header_routes_to_the_lambda_alias_and_records_it(aws, api, drain, routed):
    # Given acme's canary rule / When a task is submitted with x-env: canary
    reply = api("POST", "/v1/tasks", LAMBDA, headers={"x-env": "canary"})
    plain = api("POST", "/v1/tasks", LAMBDA)
    drain()
    # Then it carries the label, records its route, and the worker called the alias
    task = api("GET", f"/v1/tasks/{reply.body['task_id']}").body
    assert task["labels"] == {"env": "canary"}
    assert task["route"] == {"rule": "canary", "variant": "alias:canary"}
    assert task["target"] == LAMBDA["target"]  # what the caller asked for is kept as sent
    assert routed.targets[reply.body["task_id"]]["function"] == "orders:canary"
    # And a task without the label takes the stable function
    assert plain.body["route"] is None
    assert routed.targets[plain.body["task_id"]]["function"] == "orders"


def test_percentage_rule_takes_its_share_stably(aws, api, drain, routed):
    # Given the 30 % rule for HTTP targets / When 200 tasks are submitted in batches
    ids = []
    for _ in range(2):
        reply = api("POST", "/v1/tasks/batch", {"tasks": [HTTP] * 100})
        ids += [r["task_id"] for r in reply.body["results"]]
    tasks = [aws.platform.tasks.get("acme", t) for t in ids]
    # Then exactly the tasks whose id falls in the rule's 30 buckets took the variant host (ids are
    # random: the count is Binomial(200, 0.3), so it is checked in the unit tests over fixed ids, not
    # here), recorded on each task, the rest the stable URL
    canary = [t for t in tasks if t.route]
    assert {t.task_id for t in canary} == {i for i in ids if bucket(i) < 30}
    assert canary and len(canary) < len(tasks)
    assert {t.route["variant"] for t in canary} == {"host:next.example.com:8443"}
    assert all(t.route["target"]["url"] == "https://next.example.com:8443/v1/charge?x=1" for t in canary)


def test_other_tenants_are_not_routed(aws, api, routed):
    # Given acme's rules / When globex submits a canary-labelled task / Then it is not routed
    reply = api("POST", "/v1/tasks", LAMBDA, headers={"x-env": "canary"}, tenant="globex")
    assert reply.status == 201 and reply.body["route"] is None


CANARY = {"type": "lambda", "function": "orders"}
CANARY_ROUTE = {"rule": "canary", "variant": "alias:canary"}


def test_every_door_that_makes_a_task_routes_it_by_the_same_rules(aws, api, drain, routed):
    # Given acme's canary rule, and work carrying env=canary entering by a schedule, a trigger and a
    # redrive (the rules are the tenant's, not the door's: a task is a task whichever way it came)
    from taskplane.adapters.targets import TargetFailure
    from taskplane.domain.ring import shard_for
    from taskplane.domain.schedules import fire_task_id
    from taskplane.domain.wheel import WheelEntry

    labelled = {"target": CANARY, "labels": {"env": "canary"}}
    # When a schedule fires
    schedule = api("POST", "/v1/schedules", {"cron": "* * * * *", "task": labelled}).body
    stored = aws.platform.schedules.get("acme", schedule["schedule_id"])
    due = stored.next_fire_at
    entry = WheelEntry(
        shard=shard_for(stored.schedule_id, aws.platform.schedules.shards),
        due_ms=due,
        item_id=stored.schedule_id,
        tenant="acme",
        kind="schedule",
        lane="default",
    )
    aws.platform.schedules.fire(entry, due)
    fired = api("GET", f"/v1/tasks/{fire_task_id(stored.schedule_id, due)}").body
    # And a trigger's event arrives
    trigger = api(
        "POST",
        "/v1/triggers",
        {"event_pattern": {"source": ["shop"]}, "task": {k: v for k, v in labelled.items()}},
    ).body
    event = {
        "id": "ev-1",
        "source": "shop",
        "time": "2026-12-07T00:00:00Z",
        "detail": {"taskplane_tenant": "acme"},
    }
    delivery = aws.platform.triggers.start("acme", trigger["trigger_id"], event)
    started = api("GET", f"/v1/tasks/{delivery.task_id}").body
    # Then both tasks took the canary route, recorded on each
    assert fired["route"] == CANARY_ROUTE, fired
    assert started["route"] == CANARY_ROUTE, started

    # When a labelled task fails for good and is redriven
    class FailOnce(Recorder):
        def run(self, target: dict, envelope: dict, timeout_s: float, cancel: Any = None, **kw: Any) -> Any:
            super().run(target, envelope, timeout_s, cancel)
            raise TargetFailure("Boom", "no", retryable=False)

    aws.platform.executor.runners = FailOnce()
    failed = api("POST", "/v1/tasks", {**labelled, "retry": {"max_attempts": 1}}).body["task_id"]
    for _ in range(4):
        drain()
    assert api("GET", f"/v1/tasks/{failed}").body["state"] == "FAILED"
    (result,) = api("POST", "/v1/dead-letters/redrive", {"ids": [failed]}).body["results"]
    # Then the fresh task is routed by the same rules too
    assert api("GET", f"/v1/tasks/{result['redriven_as']}").body["route"] == CANARY_ROUTE
