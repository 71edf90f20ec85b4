"""services/ports.created_once: one creation per idempotency key, at every door that takes one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from taskplane.domain.errors import Conflict
from taskplane.services.ports import created_once

pytestmark = pytest.mark.unit


@dataclass
class Thing:
    thing_id: str


class Store:
    """An in-memory Idempotency: the first action's result per key, a Conflict for another fingerprint."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}

    def register(self, context: Any) -> None: ...

    def once(self, tenant: str, key: str, fingerprint: Any, action: Any) -> tuple[dict[str, Any], bool]:
        if (tenant, key) in self.kept:
            kept_print, result = self.kept[(tenant, key)]
            if kept_print != fingerprint:
                raise Conflict("another body")
            return result, True
        result = action()
        self.kept[(tenant, key)] = (fingerprint, result)
        return result, False


def test_a_key_creates_once_and_a_replay_loads_what_was_created() -> None:
    made: list[str] = []
    loads: list[str] = []

    def create() -> Thing:
        made.append(f"t{len(made)}")
        return Thing(made[-1])

    def load(thing_id: str) -> Thing:
        loads.append(thing_id)
        return Thing(thing_id)

    store = Store()
    first = created_once(store, "acme", "k", {"a": 1}, create, "thing_id", load)
    # the first request answers what it created, without reading it back
    assert first == (Thing("t0"), True) and loads == []
    again = created_once(store, "acme", "k", {"a": 1}, create, "thing_id", load)
    assert again == (Thing("t0"), False) and made == ["t0"] and loads == ["t0"]
    with pytest.raises(Conflict):
        created_once(store, "acme", "k", {"a": 2}, create, "thing_id", load)
    # another tenant's same key is its own
    assert created_once(store, "other", "k", {"a": 1}, create, "thing_id", load) == (Thing("t1"), True)


def test_without_a_key_or_a_store_it_just_creates() -> None:
    store = Store()
    create = iter([Thing("a"), Thing("b")]).__next__
    assert created_once(store, "acme", None, {}, create, "thing_id", Thing) == (Thing("a"), True)
    assert created_once(None, "acme", "k", {}, create, "thing_id", Thing) == (Thing("b"), True)
    assert store.kept == {}
