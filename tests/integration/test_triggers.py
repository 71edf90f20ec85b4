"""Triggers under moto: a pattern starts a task from a template with the event as payload, and events
never cross tenants (domain/events.py, domain/triggers.py).

Tenants publish with ``POST /v1/events`` or an ``eventbridge`` target; the platform stamps each event
with the publishing tenant, and every rule it makes is scoped to its trigger's tenant.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane import wiring
from taskplane.adapters.queues import parse_body
from taskplane.domain.states import TaskState

pytestmark = pytest.mark.integration

ECHO = {"target": {"type": "builtin", "name": "echo"}}


def publish(api: Any, source: str = "shop.orders", detail: dict | None = None, tenant: str = "acme") -> str:
    reply = api(
        "POST",
        "/v1/events",
        {"events": [{"source": source, "detail_type": "OrderPlaced", "detail": detail or {"order": 42}}]},
        tenant=tenant,
    )
    assert reply.status == 200, reply.body
    (result,) = reply.body["results"]
    assert "event_id" in result, result
    return result["event_id"]


def trigger(api: Any, pattern: dict, tenant: str = "acme", **extra: Any) -> str:
    reply = api("POST", "/v1/triggers", {"event_pattern": pattern, "task": ECHO, **extra}, tenant=tenant)
    assert reply.status == 201, reply.body
    return reply.body["trigger_id"]


def tasks_of(aws: Any, trigger_id: str, tenant: str = "acme") -> list[Any]:
    items, _ = aws.platform.tasks.list(tenant, limit=100)
    return [t for t in items if t.trigger_id == trigger_id]


def test_matching_event_starts_a_task_with_the_event_as_payload(aws, api, drain):
    # Given a trigger on orders from the shop
    tid = trigger(api, {"source": ["shop.orders"]})
    # When acme publishes one matching and one other event, and the lanes are drained
    publish(api, detail={"order": 42})
    publish(api, source="billing")
    drain()
    # Then exactly one task ran, its payload (and echo result) the whole event, stamped with acme
    tasks = tasks_of(aws, tid)
    assert len(tasks) == 1
    task = tasks[0]
    assert task.state is TaskState.SUCCEEDED
    assert task.payload["detail"] == {"order": 42, "taskplane_tenant": "acme"}
    assert task.payload["source"] == "shop.orders"
    assert task.result == task.payload
    assert api("GET", f"/v1/tasks/{task.task_id}").body["trigger_id"] == tid


def test_the_same_event_delivered_twice_starts_one_task(aws, api, drain):
    # Given a trigger and one event whose lane message arrives twice
    tid = trigger(api, {"source": ["shop.orders"]})
    publish(api)
    sqs = aws.client("sqs")
    url = aws.settings.queue_urls["default"]
    body = sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]
    sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody=body)
    # When everything is drained (the original becomes visible again later; two copies now)
    drain(rounds=2)
    # Then one task exists for that event
    assert len(tasks_of(aws, tid)) == 1


def test_priority_of_the_template_picks_the_lane(aws, api, drain):
    tid = trigger(api, {"source": ["shop.orders"]}, task={**ECHO, "priority": "high"})
    publish(api)
    assert aws.queue_depth("high") == 1 and aws.queue_depth("default") == 0
    drain(lanes=("high",))
    assert [t.state for t in tasks_of(aws, tid)] == [TaskState.SUCCEEDED]


def test_delete_removes_the_rule(aws, api, drain):
    tid = trigger(api, {"source": ["shop.orders"]})
    created = api("GET", f"/v1/triggers/{tid}").body
    assert created["rule_name"].startswith(aws.settings.trigger_rule_prefix)
    assert api("DELETE", f"/v1/triggers/{tid}").status == 204
    rules = aws.client("events").list_rules(EventBusName=aws.settings.event_bus)["Rules"]
    assert created["rule_name"] not in [r["Name"] for r in rules]
    publish(api)
    drain()
    assert tasks_of(aws, tid) == []
    assert api("GET", f"/v1/triggers/{tid}").status == 404


def test_tenants_do_not_see_each_others_triggers(api):
    tid = trigger(api, {"source": ["x"]})
    assert api("GET", f"/v1/triggers/{tid}", tenant="other").status == 404
    assert api("DELETE", f"/v1/triggers/{tid}", tenant="other").status == 404
    assert api("GET", "/v1/triggers", tenant="other").body["items"] == []
    assert [t["trigger_id"] for t in api("GET", "/v1/triggers").body["items"]] == [tid]


# -- the tenant boundary ---------------------------------------------------------------------------

#: Patterns that match every event on a bus: each once let globex receive acme's events.
MATCH_ALL = [
    {"source": [{"prefix": ""}]},
    {"source": [{"exists": True}]},
    {"source": [{"anything-but": "x"}]},
    {"account": [{"exists": True}]},
    {"detail-type": [{"prefix": ""}], "detail": {"order": [{"exists": True}]}},
    {"$or": [{"source": [{"prefix": ""}]}, {"detail-type": [{"prefix": ""}]}]},
]


def lane_messages(aws: Any) -> int:
    return sum(aws.queue_depth(lane) for lane in ("high", "default", "low"))


def test_match_everything_patterns_see_only_their_own_tenants_events(aws, api, drain):
    # Given globex's triggers that would match every event on the bus
    greedy = [trigger(api, pattern, tenant="globex") for pattern in MATCH_ALL]
    # When acme publishes an event through the API
    publish(api, detail={"order": 1, "secret": "acme's"})
    # Then no rule routed it anywhere (the rules themselves are scoped, not only the worker)
    assert lane_messages(aws) == 0
    # When acme's eventbridge target task publishes one
    task = api(
        "POST",
        "/v1/tasks",
        {"target": {"type": "eventbridge", "source": "shop.orders"}, "payload": {"order": 2}},
    )
    assert task.status == 201, task.body
    drain(rounds=2)
    assert api("GET", f"/v1/tasks/{task.body['task_id']}").body["state"] == "SUCCEEDED"
    # Then again nothing was routed, none of globex's triggers started anything, and globex sees
    # nothing of acme's
    assert lane_messages(aws) == 0
    for tid in greedy:
        assert tasks_of(aws, tid, tenant="globex") == []
    assert "acme's" not in json.dumps(api("GET", "/v1/tasks", tenant="globex").body)
    # And when globex publishes, each of its greedy triggers fires for its own event
    publish(api, tenant="globex", detail={"order": 3})
    assert lane_messages(aws) == len(greedy)
    drain(rounds=2)
    for tid in greedy:
        assert len(tasks_of(aws, tid, tenant="globex")) == 1, tid


def test_a_tenant_cannot_start_another_tenants_trigger_by_naming_its_source(aws, api, drain):
    # Given globex's trigger on its own source and detail
    tid = trigger(api, {"source": ["globex.billing"], "detail": {"kind": ["invoice"]}}, tenant="globex")
    # When acme publishes an event with exactly that source and detail, and even claims to be globex
    publish(api, source="globex.billing", detail={"kind": "invoice"})
    forged = api(
        "POST",
        "/v1/events",
        {
            "events": [
                {"source": "globex.billing", "detail_type": "x", "detail": {"taskplane_tenant": "globex"}}
            ]
        },
    )
    # Then no rule routed it, globex's trigger started nothing, and the forged stamp is a 400 naming it
    assert lane_messages(aws) == 0
    drain(rounds=2)
    assert tasks_of(aws, tid, tenant="globex") == []
    assert forged.status == 400, forged.body
    assert forged.body["error"]["details"][0]["field"] == "events.0.detail", forged.body


def test_aws_service_events_never_reach_a_trigger_on_the_platform_bus(aws, api, drain):
    # Given a trigger matching any source on the platform bus
    tid = trigger(api, {"source": [{"prefix": ""}]})
    # When events arrive from outside the platform: on the account's default bus (as AWS services
    # put them) and straight onto the platform bus without the platform's stamp
    events = aws.client("events")
    for bus in ("default", aws.settings.event_bus):
        events.put_events(
            Entries=[
                {"EventBusName": bus, "Source": "ec2.like", "DetailType": "x", "Detail": json.dumps({"i": 1})}
            ]
        )
    # Then no rule routed them and nothing started: the rule only matches events stamped with acme
    assert lane_messages(aws) == 0
    drain(rounds=2)
    assert tasks_of(aws, tid) == []


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"detail": {"taskplane_tenant": ["globex"]}}, "taskplane_tenant"),
        ({"$or": [{"detail": {"taskplane_tenant": ["globex"]}}, {"source": ["x"]}]}, "taskplane_tenant"),
        ({"detail": ["x"]}, "must be an object"),
    ],
)
def test_a_pattern_cannot_name_the_stamp(api, pattern, message):
    reply = api("POST", "/v1/triggers", {"event_pattern": pattern, "task": ECHO}, tenant="globex")
    assert reply.status == 400, reply.body
    assert message in reply.body["error"]["message"]


def test_the_worker_drops_an_event_outside_its_triggers_scope(aws, api, drain):
    # Given acme's trigger and a lane message naming it, carrying globex's stamped event (a rule
    # edited by hand in the console would do this)
    tid = trigger(api, {"source": ["shop.orders"]})
    message = {
        "trigger_id": tid,
        "tenant": "acme",
        "event": {"id": "e-1", "source": "shop.orders", "detail": {"taskplane_tenant": "globex"}},
    }
    parse_body(json.dumps(message))  # a well-formed trigger message
    aws.client("sqs").send_message(
        QueueUrl=aws.settings.queue_urls["default"], MessageBody=json.dumps(message)
    )
    # When the worker takes it
    drain()
    # Then no task was started for it
    assert tasks_of(aws, tid) == []


# -- external events: named buses and sources, by configuration --------------------------------------


@pytest.fixture
def external(aws):
    """acme may listen to aws-like events from two sources on the account's default bus."""
    settings = aws.settings.model_copy(
        update={"external_events": {"acme": [{"bus": "default", "sources": ["ec2.like", "com.example.*"]}]}}
    )
    aws.platform = wiring.build(settings, session=aws.session, clock=aws.platform.tasks.clock)
    wiring.use(aws.platform)
    return aws


def put_raw(aws: Any, bus: str, source: str, detail: dict | None = None) -> None:
    entry = {
        "EventBusName": bus,
        "Source": source,
        "DetailType": "x",
        "Detail": json.dumps(detail or {"i": 1}),
    }
    assert aws.client("events").put_events(Entries=[entry])["FailedEntryCount"] == 0


def test_a_bus_the_tenant_may_not_use_is_a_400_at_create_time(external, api):
    # When globex (no external events) and acme (default only) name buses they may not use
    replies = [
        api(
            "POST",
            "/v1/triggers",
            {"event_pattern": {"source": ["ec2.like"]}, "bus": "default", "task": ECHO},
            tenant="globex",
        ),
        api(
            "POST",
            "/v1/triggers",
            {"event_pattern": {"source": ["ec2.like"]}, "bus": "other-bus", "task": ECHO},
        ),
    ]
    # Then each is a 400 naming the bus and the buses allowed, before any rule exists
    for reply in replies:
        assert reply.status == 400, reply.body
        assert reply.body["error"]["details"][0]["field"] == "bus"
        assert "taskplane" in reply.body["error"]["message"]
    assert not any(
        r["Name"].startswith(external.settings.trigger_rule_prefix)
        for r in external.client("events").list_rules()["Rules"]
    )


def test_external_triggers_see_only_the_configured_sources_never_platform_events(external, api, drain):
    # Given acme's trigger on the default bus with no source named (every allowed source)
    tid = trigger(api, {"detail-type": ["x", "taskplane.task"]}, bus="default")
    scoped = api("GET", f"/v1/triggers/{tid}").body["rule_pattern"]
    assert scoped["source"] == ["ec2.like", {"prefix": "com.example."}], scoped
    # When events arrive on the default bus: two allowed sources, one not, and an event a tenant's
    # eventbridge target put there (allowed for globex), stamped by the platform
    put_raw(external, "default", "ec2.like")
    put_raw(external, "default", "com.example.shop")
    put_raw(external, "default", "someone.else")
    assert lane_messages(external) == 2  # the rule routed the two allowed sources only
    drain(rounds=2)
    settings = external.settings.model_copy(update={"target_allowlists": {"globex": ["eventbridge:default"]}})
    external.platform = wiring.build(settings, session=external.session)
    wiring.use(external.platform)
    sent = api(
        "POST",
        "/v1/tasks",
        {"target": {"type": "eventbridge", "bus": "default", "source": "ec2.like"}, "payload": {"i": 2}},
        tenant="globex",
    )
    assert sent.status == 201, sent.body
    drain()
    assert api("GET", f"/v1/tasks/{sent.body['task_id']}", tenant="globex").body["state"] == "SUCCEEDED"
    assert lane_messages(external) == 0  # the stamped event matched no external rule
    # Then exactly the two allowed, unstamped events started tasks
    sources = sorted(t.payload["source"] for t in tasks_of(external, tid))
    assert sources == ["com.example.shop", "ec2.like"]
    assert all("taskplane_tenant" not in t.payload["detail"] for t in tasks_of(external, tid))


def test_an_external_trigger_may_not_name_a_source_it_is_not_allowed(external, api):
    for sources in (["someone.else"], [{"prefix": ""}]):
        reply = api(
            "POST", "/v1/triggers", {"event_pattern": {"source": sources}, "bus": "default", "task": ECHO}
        )
        assert reply.status == 400, reply.body
        assert reply.body["error"]["details"][0]["field"] == "event_pattern.source"


# -- POST /v1/events ----------------------------------------------------------------------------------


def test_events_answer_per_event_and_refuse_what_eventbridge_would(aws, api):
    ok = api(
        "POST",
        "/v1/events",
        {"events": [{"source": "a.b", "detail_type": "T", "detail": {"n": i}} for i in range(10)]},
    )
    assert ok.status == 200, ok.body
    assert [r["index"] for r in ok.body["results"]] == list(range(10))
    assert all("event_id" in r for r in ok.body["results"])
    cases = [
        ({"events": []}, 400, "events"),
        ({"events": [{"source": "a", "detail_type": "T"}] * 11}, 400, "events"),
        ({"events": [{"source": "aws.s3", "detail_type": "T"}]}, 400, "events.0.source"),
        ({"events": [{"source": "a", "detail_type": "T", "detail": [1]}]}, 400, "events.0.detail"),
        (
            {"events": [{"source": "a", "detail_type": "T", "detail": {"x": "y" * 70_000}}]},
            413,
            "events.0.detail",
        ),
        ({"events": [{"source": "a", "detail_type": "T", "detail": {"x": "y" * 60_000}}] * 5}, 413, "events"),
    ]
    for body, status, field in cases:
        reply = api("POST", "/v1/events", body)
        assert reply.status == status, (field, reply.body)
        assert reply.body["error"]["details"][0]["field"] == field, reply.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_pattern": {"source": "shop"}, "task": ECHO}, "event_pattern"),
        ({"event_pattern": {}, "task": ECHO}, "event_pattern"),
        ({"event_pattern": {"source": ["x"]}, "task": {**ECHO, "payload": 1}}, "task"),
        ({"event_pattern": {"source": ["x"]}, "task": {**ECHO, "delay_ms": 5}}, "task"),
        ({"event_pattern": {"source": ["x"]}, "bus": "nope", "task": ECHO}, "bus"),
        ({"event_pattern": "source", "task": ECHO}, "event_pattern"),
        ({"task": ECHO}, "event_pattern"),
    ],
)
def test_bad_triggers_are_400_naming_the_field(api, body, field):
    reply = api("POST", "/v1/triggers", body)
    assert reply.status == 400, reply.body
    assert any(d.get("field", "").startswith(field) for d in reply.body["error"]["details"]), reply.body


# -- each tenant's share of the event bus's rules (EventBridge: 300 a bus, 30 with wildcards) ------------


@pytest.fixture
def small_shares(aws):
    """Shares small enough to reach in a test: 3 rules per tenant, 1 with a wildcard."""
    settings = aws.settings.model_copy(update={"max_trigger_rules": 3, "max_wildcard_rules": 1})
    aws.platform = wiring.build(settings, session=aws.session, clock=aws.platform.tasks.clock)
    wiring.use(aws.platform)
    return aws


def rules_on_the_bus(aws: Any) -> list[str]:
    events = aws.client("events")
    return [r["Name"] for r in events.list_rules(EventBusName=aws.settings.event_bus)["Rules"]]


def test_a_tenant_past_its_share_of_the_bus_gets_409_and_the_others_still_create(small_shares, api):
    aws = small_shares
    # Given acme holds its 3 rules: a plain trigger and a correlation of two patterns
    trigger(api, {"source": ["a"]})
    correlate = {"key": "$.detail.id", "within_ms": 60_000, "events": [{"source": ["b"]}, {"source": ["c"]}]}
    reply = api("POST", "/v1/triggers", {"task": ECHO, "correlate": correlate})
    assert reply.status == 201, reply.body
    before = rules_on_the_bus(aws)
    # When acme asks for one more
    reply = api("POST", "/v1/triggers", {"event_pattern": {"source": ["d"]}, "task": ECHO})
    # Then 409 names the share, the count, and what to do; no rule or trigger was made
    assert reply.status == 409, reply.body
    error = reply.body["error"]
    assert error["code"] == "limit_exceeded"
    assert "hold 3 EventBridge rule(s) and may hold 3" in error["message"]
    assert "TASKPLANE_MAX_TRIGGER_RULES" in error["message"]
    assert error["details"][0]["problem"] == "too_many_rules"
    assert rules_on_the_bus(aws) == before
    assert len(api("GET", "/v1/triggers").body["items"]) == 2
    # And globex, on the same bus, still creates its own
    trigger(api, {"source": ["a"]}, tenant="globex")
    # And once acme deletes one, it may create again
    first = api("GET", "/v1/triggers").body["items"][-1]["trigger_id"]
    assert api("DELETE", f"/v1/triggers/{first}").status == 204
    trigger(api, {"source": ["d"]})


def test_wildcard_rules_have_their_own_smaller_share(small_shares, api):
    # Given acme's one wildcard rule (nested in anything-but counts too)
    trigger(api, {"source": ["a"], "detail": {"path": [{"anything-but": {"wildcard": "tmp/*"}}]}})
    # When it asks for a second wildcard rule, and for a rule without one
    wild = api("POST", "/v1/triggers", {"event_pattern": {"source": [{"wildcard": "shop.*"}]}, "task": ECHO})
    plain = api("POST", "/v1/triggers", {"event_pattern": {"source": [{"prefix": "shop."}]}, "task": ECHO})
    # Then the wildcard one is refused naming the quota AWS will not raise; the plain one is made
    assert wild.status == 409, wild.body
    assert wild.body["error"]["details"][0]["problem"] == "too_many_wildcard_rules"
    assert "30 per event bus" in wild.body["error"]["message"]
    assert plain.status == 201, plain.body


class FullBus:
    """The EventBridge client of an account whose bus holds its 300 rules: PutRule refuses as AWS does
    (LimitExceededException; moto enforces no quota)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def put_rule(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        raise ClientError(
            {
                "Error": {
                    "Code": "LimitExceededException",
                    "Message": "The requested resource exceeds the maximum number allowed.",
                }
            },
            "PutRule",
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_full_bus_is_a_409_naming_the_aws_quota_and_nothing_is_left_behind(aws, api):
    # Given an event bus that AWS says is full
    rules = aws.platform.triggers.rules
    rules._events = FullBus(rules._events)
    # When a tenant well within its share creates a trigger
    reply = api("POST", "/v1/triggers", {"event_pattern": {"source": ["a"]}, "task": ECHO})
    # Then 409 (not a 503 to retry), naming the quota, and no trigger was kept
    assert reply.status == 409, reply.body
    assert reply.body["error"]["code"] == "limit_exceeded"
    assert "Rules per event bus" in reply.body["error"]["message"]
    assert api("GET", "/v1/triggers").body["items"] == []


def test_events_for_triggers_on_a_full_lane_are_429_like_a_submission(aws, api, drain):
    # Given a trigger whose tasks go to the low lane, and that lane at its depth limit
    trigger(api, {"source": ["shop.orders"]}, task={**ECHO, "priority": "low"})
    admission = aws.platform.tasks.admission
    assert aws.platform.events.admission is admission  # one backpressure for every door
    admission.max_lane_depth = 1
    publish(api)  # its trigger message is now on the low lane
    admission.depths._cache.clear()
    # When acme publishes another event, and globex (whose triggers use no full lane) publishes one
    body = {"events": [{"source": "shop.orders", "detail_type": "OrderPlaced", "detail": {"order": 43}}]}
    refused = api("POST", "/v1/events", body)
    other = api("POST", "/v1/events", body, tenant="globex")
    # Then acme's is a 429 naming the lane, with Retry-After, and nothing was put on the bus
    assert refused.status == 429, refused.body
    assert refused.body["error"]["code"] == "throttled" and "low lane" in refused.body["error"]["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert aws.queue_depth("low") == 1
    assert other.status == 200, other.body
    # And once the lane drains, events are taken again
    drain(lanes=("low",))
    admission.depths._cache.clear()
    assert api("POST", "/v1/events", body).status == 200


def test_a_retried_publish_with_its_idempotency_key_starts_its_tasks_once(aws, api, drain):
    # Given a trigger, and a client that publishes, times out and sends the same request again
    tid = trigger(api, {"source": ["shop.orders"]})
    body = {"events": [{"source": "shop.orders", "detail_type": "OrderPlaced", "detail": {"order": 7}}]}
    first = api("POST", "/v1/events", body, headers={"Idempotency-Key": "pub-1"})
    again = api("POST", "/v1/events", body, headers={"Idempotency-Key": "pub-1"})
    # When the lanes are drained
    drain(rounds=2)
    # Then the second answer is the first one, and the event started one task, not two
    assert first.status == again.status == 200, (first.body, again.body)
    assert again.body == first.body
    assert len(tasks_of(aws, tid)) == 1
    # And the same key with another body is a 409, while another tenant's same key is its own
    other = {"events": [{"source": "shop.orders", "detail_type": "OrderPlaced", "detail": {"order": 8}}]}
    assert api("POST", "/v1/events", other, headers={"Idempotency-Key": "pub-1"}).status == 409
    assert (
        api("POST", "/v1/events", other, headers={"Idempotency-Key": "pub-1"}, tenant="globex").status == 200
    )


def test_a_retried_trigger_create_with_its_idempotency_key_makes_one_trigger(aws, api, drain):
    # Given a client that creates a trigger, times out and sends the same request again
    body = {"event_pattern": {"source": ["shop.orders"]}, "task": ECHO}
    first = api("POST", "/v1/triggers", body, headers={"Idempotency-Key": "trig-1"})
    again = api("POST", "/v1/triggers", body, headers={"Idempotency-Key": "trig-1"})
    # Then one trigger exists, and an event starts one task, not two
    assert first.status == 201 and again.status == 200, (first.body, again.body)
    assert again.body["trigger_id"] == first.body["trigger_id"]
    assert len(api("GET", "/v1/triggers").body["items"]) == 1
    publish(api)
    drain()
    assert len(tasks_of(aws, first.body["trigger_id"])) == 1
    # And the same key with another body is a 409
    other = {"event_pattern": {"source": ["billing"]}, "task": ECHO}
    assert api("POST", "/v1/triggers", other, headers={"Idempotency-Key": "trig-1"}).status == 409
