"""Events: EventBridge's pattern matching, differential between moto's EventBridge and the SQLite bus
(the same rules and events through both; a difference fails), the tenant scopes the platform puts on
every trigger rule, and triggers' rules delivering the event to the lane with their envelope.

Where moto is not AWS, the SQLite bus follows AWS's documented rule and the test says so
(``test_where_moto_is_not_eventbridge_sqlite_follows_aws``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskplane.adapters.events import EventBus, OutgoingEvent
from taskplane.adapters.queues import TriggerMessage, parse_body
from taskplane.domain.errors import InvalidRequest, TaskplaneError
from taskplane.domain.events import TENANT_STAMP, stamp
from taskplane.domain.ids import new_id
from taskplane.domain.triggers import ExternalEvents, Trigger, scoped_pattern

pytestmark = pytest.mark.contract

EXTERNAL = ExternalEvents(bus="default", sources=("aws.s3", "com.example.*"))

PATTERNS: dict[str, dict[str, Any]] = {
    "exact": {"source": ["shop.orders"]},
    "exact-two-fields": {"source": ["shop.orders"], "detail": {"status": ["placed"]}},
    "prefix": {"source": [{"prefix": "shop."}]},
    "suffix": {"detail-type": [{"suffix": "Placed"}]},
    "prefix-ignore-case": {"detail": {"status": [{"prefix": {"equals-ignore-case": "SHIP"}}]}},
    "suffix-ignore-case": {"detail": {"file": [{"suffix": {"equals-ignore-case": ".PNG"}}]}},
    "equals-ignore-case": {"detail": {"region": [{"equals-ignore-case": "EU-WEST"}]}},
    "anything-but": {"detail": {"status": [{"anything-but": "cancelled"}]}},
    "anything-but-list": {"detail": {"status": [{"anything-but": ["cancelled", "refunded"]}]}},
    "anything-but-prefix": {"detail": {"status": [{"anything-but": {"prefix": "ship"}}]}},
    "anything-but-number": {"detail": {"amount": [{"anything-but": 42}]}},
    "exists": {"detail": {"coupon": [{"exists": True}]}},
    "not-exists": {"detail": {"coupon": [{"exists": False}]}},
    "numeric-above": {"detail": {"amount": [{"numeric": [">", 100]}]}},
    "numeric-range": {"detail": {"amount": [{"numeric": [">=", 10, "<", 100]}]}},
    "numeric-exact": {"detail": {"amount": [42]}},
    "wildcard": {"detail": {"file": [{"wildcard": "*.png"}]}},
    "wildcard-inner": {"detail": {"file": [{"wildcard": "img/*/thumb-*.png"}]}},
    "or": {"$or": [{"source": ["billing"]}, {"detail": {"amount": [{"numeric": [">", 1000]}]}}]},
    "array-value": {"detail": {"tags": ["urgent"]}},
    "nested": {"detail": {"customer": {"tier": ["gold"]}}},
    "booleans-and-null": {"detail": {"flag": [True], "note": [None]}},
    "cidr": {"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}},
    "several-filters": {"detail": {"status": ["placed", {"prefix": "ref"}]}},
    # The scopes the platform ANDs with every trigger's pattern (domain/triggers.py)
    "scope-acme-everything": scoped_pattern({"source": [{"prefix": ""}]}, "acme", None),
    "scope-globex-everything": scoped_pattern({"source": [{"prefix": ""}]}, "globex", None),
    "scope-acme-orders": scoped_pattern(
        {"source": ["shop.orders"], "detail": {"amount": [{"numeric": [">", 0]}]}}, "acme", None
    ),
    "scope-external-any": scoped_pattern({}, "acme", EXTERNAL),
    "scope-external-s3": scoped_pattern({"source": ["aws.s3"]}, "acme", EXTERNAL),
}

EVENTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "shop.orders",
        "OrderPlaced",
        stamp(
            {
                "status": "placed",
                "amount": 150,
                "coupon": "X",
                "region": "eu-west",
                "file": "img/a/thumb-1.png",
                "tags": ["urgent", "b"],
                "customer": {"tier": "gold"},
                "flag": True,
                "note": None,
                "ip": "10.0.0.7",
            },
            "acme",
        ),
    ),
    (
        "shop.returns",
        "OrderCancelled",
        stamp(
            {"status": "cancelled", "amount": 50, "region": "us-east", "file": "doc.PNG", "tags": ["low"]},
            "globex",
        ),
    ),
    ("billing", "Invoice", stamp({"status": "shipped", "amount": 2000, "note": "x"}, "acme")),
    ("aws.s3", "Object Created", {"status": "Shipping", "amount": 42, "ip": "10.0.1.1"}),
    ("com.example.app", "Thing", {"status": "refunded", "amount": 100, "file": "a.png"}),
    ("shop.orders", "OrderPlaced", stamp({"amount": "150", "status": "placed"}, "globex")),
    ("shop.orders", "OrderPlaced", {"amount": 10, "status": "placed", "customer": {"tier": "silver"}}),
    ("other.app", "Thing", stamp({"amount": 0, "flag": True, "note": None, "customer": "gold"}, "acme")),
]


def match_matrix(backend: Any) -> list[set[str]]:
    """For each event of EVENTS in order, the names of the rules that delivered it to the lane."""
    for name, pattern in PATTERNS.items():
        backend.add_rule(backend.bus, pattern, backend.unique(f"{name}.")[:64])
    matrix: list[set[str]] = []
    for source, detail_type, detail in EVENTS:
        answer = backend.events_client.put_events(
            Entries=[
                {
                    "EventBusName": backend.bus,
                    "Source": source,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail),
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0, answer
        delivered = [json.loads(body) for body in backend.take_lane()]
        assert all(d["event"]["detail"] == detail and d["event"]["source"] == source for d in delivered)
        matrix.append({d["rule"].split(".")[0] for d in delivered})
    return matrix


def test_rules_match_the_same_events_on_moto_and_on_sqlite(request):
    # Given the same rules on moto's EventBridge and on the SQLite bus
    from tests.contract.conftest import _moto_backend, _sqlite_backend

    session, settings = request.getfixturevalue("moto_session")
    moto, sqlite = _moto_backend(session, settings), _sqlite_backend()
    try:
        # When the same events are put on both
        on_moto, on_sqlite = match_matrix(moto), match_matrix(sqlite)
    finally:
        for b in (moto, sqlite):
            for close in b.closers:
                close()
    # Then every event reached the same rules; and the table is no trivial one
    for (source, _, detail), want, got in zip(EVENTS, on_moto, on_sqlite, strict=True):
        assert got == want, f"{source} {detail}: moto {sorted(want)}, sqlite {sorted(got)}"
    matched = set().union(*on_moto)
    assert matched == set(PATTERNS), f"never matched: {set(PATTERNS) - matched}"
    assert all(len(row) < len(PATTERNS) for row in on_moto)
    # and the tenant scopes hold: acme's scope never sees globex's or unstamped events, and back
    for (_, _, detail), row in zip(EVENTS, on_sqlite, strict=True):
        stamped = detail.get(TENANT_STAMP)
        assert ("scope-acme-everything" in row) == (stamped == "acme")
        assert ("scope-globex-everything" in row) == (stamped == "globex")
        assert not ({"scope-external-any", "scope-external-s3"} & row and stamped is not None)


@pytest.mark.parametrize(
    ("pattern", "event_detail", "aws_matches", "why"),
    [
        (
            {"detail": {"items": {"sku": ["A"]}}},
            {"items": [{"sku": "B"}, {"sku": "A"}]},
            True,
            "EventBridge matches fields inside an array of objects; moto flattens no arrays",
        ),
        (
            {"detail": {"n": [1]}},
            {"n": True},
            False,
            "true is not the number 1 in EventBridge; moto compares with Python's ==",
        ),
    ],
)
def test_where_moto_is_not_eventbridge_sqlite_follows_aws(pattern, event_detail, aws_matches, why):
    from tests.contract.conftest import _sqlite_backend

    sqlite = _sqlite_backend()
    sqlite.add_rule(sqlite.bus, pattern, "rule")
    sqlite.events_client.put_events(
        Entries=[
            {"EventBusName": sqlite.bus, "Source": "s", "DetailType": "d", "Detail": json.dumps(event_detail)}
        ]
    )
    assert bool(sqlite.take_lane()) is aws_matches, why


@pytest.mark.parametrize(
    "pattern",
    [{"source": []}, {"source": "shop"}, {"detail": {"n": 5}}],
    ids=["empty-array", "string-leaf", "number-leaf"],
)
def test_a_pattern_eventbridge_refuses_is_a_400_naming_the_pattern(backend, pattern):
    with pytest.raises(InvalidRequest) as caught:
        backend.trigger_rules.create(trigger(backend, pattern), "default")
    assert caught.value.details == [{"field": "event_pattern"}]


@pytest.mark.parametrize(
    "pattern",
    [
        {"source": [{"unknown-operator": "x"}]},
        {"detail": {"n": [{"numeric": [">", "ten"]}]}},
        {"detail": {"n": [{"exists": "yes"}]}},
    ],
    ids=["unknown-operator", "numeric-not-a-number", "exists-not-a-boolean"],
)
def test_sqlite_refuses_patterns_aws_refuses_that_moto_takes(pattern):
    # PutRule answers InvalidEventPatternException for these in AWS ("Unrecognized match type",
    # malformed numeric / exists); moto accepts them and then matches anything, or nothing.
    from tests.contract.conftest import _sqlite_backend

    sqlite = _sqlite_backend()
    with pytest.raises(InvalidRequest):
        sqlite.trigger_rules.create(trigger(sqlite, pattern), "default")


def trigger(backend: Any, pattern: dict[str, Any], tenant: str = "acme") -> Trigger:
    trigger_id = new_id(1_780_000_000_000)
    return Trigger(
        trigger_id=trigger_id,
        tenant=tenant,
        bus="taskplane",
        event_pattern=pattern,
        task={"target": {"type": "builtin", "name": "echo"}},
        rule_name=backend.unique("trg-"),
        created_at=1_780_000_000_000,
        rule_bus=backend.bus,
        rule_pattern=scoped_pattern(pattern, tenant, None)
        if isinstance(pattern.get("source", []), list)
        else pattern,
    )


def test_a_trigger_rule_puts_its_tenants_events_on_the_lane_in_its_envelope(backend):
    # Given acme's trigger on everything it publishes, its rule made as the service makes it
    mine = trigger(backend, {"source": [{"prefix": ""}]}, "acme")
    backend.trigger_rules.create(mine, "default")
    bus = EventBus(backend.bus, backend.events_client)
    try:
        # When acme and globex publish (stamped by the platform), and an unstamped event arrives
        ids = bus.put(
            [
                OutgoingEvent("shop.orders", "OrderPlaced", json.dumps(stamp({"order": 42}, "acme"))),
                OutgoingEvent("shop.orders", "OrderPlaced", json.dumps(stamp({"order": 43}, "globex"))),
                OutgoingEvent("shop.orders", "OrderPlaced", json.dumps({"order": 44})),
            ]
        )
        # Then all three were accepted, and only acme's reached the lane, as the worker reads it
        assert all(isinstance(i, str) for i in ids)
        (body,) = backend.take_lane()
        message = parse_body(body)
        assert isinstance(message, TriggerMessage)
        assert (message.tenant, message.trigger_id) == ("acme", mine.trigger_id)
        event = message.event
        assert event["id"] == ids[0]
        assert (event["source"], event["detail-type"]) == ("shop.orders", "OrderPlaced")
        assert event["detail"] == {"order": 42, TENANT_STAMP: "acme"}
        assert {"time", "account", "region", "resources", "version"} <= set(event)
    finally:
        backend.trigger_rules.delete(mine)
    # And once the rule is deleted, nothing more arrives (deleting again is fine)
    bus.put([OutgoingEvent("shop.orders", "OrderPlaced", json.dumps(stamp({"order": 45}, "acme")))])
    assert backend.take_lane() == []
    backend.trigger_rules.delete(mine)


def test_events_on_a_bus_that_does_not_exist_are_refused(backend):
    with pytest.raises(TaskplaneError):
        EventBus("no-such-bus", backend.events_client).put([OutgoingEvent("s", "d", "{}")])
    with pytest.raises(InvalidRequest, match="does not exist"):
        bad = trigger(backend, {"source": ["x"]})
        backend.trigger_rules.create(bad.model_copy(update={"rule_bus": "no-such-bus"}), "default")


def test_put_events_answers_each_entry(backend):
    answer = backend.events_client.put_events(
        Entries=[
            {"EventBusName": backend.bus, "Source": "s", "DetailType": "d", "Detail": "{}"},
            {"EventBusName": backend.bus, "Source": "s", "DetailType": "d", "Detail": "not json"},
            {"EventBusName": backend.bus, "Source": "s", "DetailType": "", "Detail": "{}"},
        ]
    )
    codes = [e.get("ErrorCode") for e in answer["Entries"]]
    assert codes == [None, "MalformedDetail", "InvalidArgument"]
    assert answer["FailedEntryCount"] == 2
    assert "EventId" in answer["Entries"][0]
