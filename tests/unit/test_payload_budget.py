"""services/payload_budget.py: payload bytes in flight in one worker instance."""

from __future__ import annotations

import threading

import pytest

from taskplane.services.payload_budget import PayloadBudget, budget_bytes

pytestmark = pytest.mark.unit
MIB = 2**20


def test_the_budget_follows_the_memory_and_always_fits_one_largest_payload():
    assert budget_bytes(256) == (256 - 96) * MIB // 20
    assert budget_bytes(512) > budget_bytes(256)
    assert budget_bytes(128) == 5 * MIB  # one 5 MiB payload at a time, whatever the memory


def test_a_payload_waits_while_the_others_fill_the_budget_and_goes_when_one_gives_back():
    # Given a budget of 10 MiB with 8 MiB taken
    budget = PayloadBudget(10 * MIB)
    first = budget.take(8 * MIB)
    took: list[int] = []
    waiting = threading.Event()
    real_wait = budget._wait

    def wait(cond: threading.Condition, seconds: float) -> bool:
        waiting.set()
        return real_wait(cond, seconds)

    budget._wait = wait
    # When another 4 MiB asks (on its own thread)
    t = threading.Thread(target=lambda: took.append(budget.take(4 * MIB)))
    t.start()
    assert waiting.wait(10)
    # Then it waits; when the first gives back, it goes
    assert took == [] and budget.used == 8 * MIB
    budget.give(first)
    t.join(10)
    assert took == [4 * MIB] and budget.used == 4 * MIB
    budget.give(took[0])
    assert budget.used == 0


def test_a_payload_larger_than_the_budget_goes_alone_and_nothing_waits_forever():
    # Given an empty 5 MiB budget
    budget = PayloadBudget(5 * MIB)
    waits: list[float] = []
    budget._wait = lambda cond, seconds: waits.append(seconds) or False
    # When a 7 MiB payload asks / Then it goes at once (alone), holding the whole budget
    big = budget.take(7 * MIB)
    assert big == 5 * MIB and waits == []
    # When another asks while it runs, with a 3 s limit / Then it waits 3 s, then goes anyway
    assert budget.take(1 * MIB, max_wait_s=3) == 1 * MIB
    assert sum(waits) == pytest.approx(3.0)
    # And small or empty payloads never take anything
    assert budget.take(0) == 0


def test_the_worker_gets_a_budget_only_where_lambda_says_its_memory():
    from taskplane.wiring import payload_budget

    assert payload_budget({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}).limit == budget_bytes(256)
    assert payload_budget({}) is None  # taskplane dev and tests: no Lambda memory to keep within
