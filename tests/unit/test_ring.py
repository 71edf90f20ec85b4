"""The wheel's consistent hash ring: placement, minimal movement, balance, weights and ring changes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskplane.domain.ids import new_id
from taskplane.domain.ring import (
    DRAIN_MS,
    LAG_FLOOR_MS,
    LAG_OK_MS,
    MIN_WEIGHT,
    WEIGHT_STEP,
    Ring,
    next_weights,
    plan,
    shard_for,
    weight_for_lag,
)

pytestmark = pytest.mark.unit

PROPERTY = settings(max_examples=60, deadline=None)
NOW = 1_767_225_600_000
#: Most a shard's share of the key space strays from the mean (exact, from the ring's arcs) for every
#: shard count up to 64 at 256 points a shard: measured 0.77 .. 1.20 of the mean.
BALANCE = 0.25


def ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [new_id(NOW + i, rng.getrandbits) for i in range(count)]


# -- placement ---------------------------------------------------------------------------------------
@PROPERTY
@given(key=st.text(min_size=1, max_size=40), shards=st.sampled_from([1, 2, 3, 5, 8, 13, 64, 256]))
def test_a_key_has_one_stable_shard_on_the_ring(key, shards):
    shard = shard_for(key, shards)
    assert 0 <= shard < shards
    assert shard_for(key, shards) == shard == shard_for(key, Ring.of(shards, version=9))


def test_placement_is_pinned():
    # Every writer (api, worker, tick; old and new releases during a deploy) must place a key where
    # the others do for one stored ring: the point function (blake2b of "shard/index") never changes.
    assert Ring.of(16).shard_for("01KDVTQ000AAAAAAAAAAAAAAAA") == 10
    assert Ring.of(256).shard_for("01KDVTQ000AAAAAAAAAAAAAAAA") == 254
    assert Ring.of(1).shard_for("01KDVTQ000AAAAAAAAAAAAAAAA") == 0
    assert Ring.of(0).shards == [0]  # at least one shard


# -- minimal movement ---------------------------------------------------------------------------------
@PROPERTY
@given(n=st.integers(1, 32), m=st.integers(1, 32), seed=st.integers(0, 2**32))
def test_changing_the_shard_count_moves_only_the_keys_it_must(n, m, seed):
    before, after = Ring.of(n), Ring.of(m)
    keys = ids(2_000, seed)
    moved = [k for k in keys if before.shard_for(k) != after.shard_for(k)]
    # Exactly: growing moves keys only onto new shards; shrinking moves only the removed shards' keys
    for key in moved:
        if m > n:
            assert after.shard_for(key) >= n
        else:
            assert before.shard_for(key) >= m
    # And about |n - m| / max(n, m) of them (a modulo would move about 1 - 1/max(n, m)... for 4 -> 8
    # half, for 8 -> 9 eight ninths)
    expected = abs(n - m) / max(n, m)
    assert abs(len(moved) / len(keys) - expected) <= 0.07, (len(moved) / len(keys), expected)


@PROPERTY
@given(shards=st.integers(2, 16), data=st.data())
def test_lowering_a_weight_moves_only_that_shards_keys_away_from_it(shards, data):
    slow = data.draw(st.integers(0, shards - 1))
    weight = data.draw(st.sampled_from([MIN_WEIGHT + WEIGHT_STEP * i for i in range(4)]))
    before = Ring.of(shards)
    after = before.reweighted({slow: weight}, NOW)
    keys = ids(2_000, shards)
    for key in keys:
        was, now = before.shard_for(key), after.shard_for(key)
        if was != now:
            assert was == slow and now != slow
    # Its share of the key space shrinks in proportion (within the ring's balance)
    fair = weight / (shards - 1 + weight)
    assert after.shares()[slow] == pytest.approx(fair, rel=BALANCE + 0.1)


# -- balance ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shards", [1, 2, 3, 4, 8, 16, 32, 64])
def test_every_shard_owns_its_share_of_the_key_space_within_the_bound(shards):
    shares = Ring.of(shards).shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    mean = 1 / shards
    assert all(abs(share - mean) <= BALANCE * mean for share in shares.values()), shares


@pytest.mark.parametrize("shards", [3, 8])
def test_ids_spread_over_the_shards_as_their_shares_say(shards):
    ring = Ring.of(shards)
    keys = ids(20_000, 7)
    counts = {s: 0 for s in ring.shards}
    for key in keys:
        counts[ring.shard_for(key)] += 1
    for shard, share in ring.shares().items():
        assert counts[shard] / len(keys) == pytest.approx(share, abs=0.015), (shard, counts)


# -- weights ------------------------------------------------------------------------------------------
@PROPERTY
@given(a=st.integers(0, 10_000), b=st.integers(0, 10_000))
def test_more_lag_never_means_more_weight_and_weights_stay_in_bounds(a, b):
    low, high = sorted((a, b))
    assert MIN_WEIGHT <= weight_for_lag(high) <= weight_for_lag(low) <= 1.0
    assert (weight_for_lag(low) / WEIGHT_STEP).is_integer()


def test_weight_follows_lag_down_at_once_and_back_up_a_step_a_minute():
    ring = Ring.of(4)
    assert weight_for_lag(LAG_OK_MS) == 1.0 and weight_for_lag(LAG_FLOOR_MS) == MIN_WEIGHT
    assert next_weights(ring, {1: LAG_FLOOR_MS * 3}) == {0: 1.0, 1: MIN_WEIGHT, 2: 1.0, 3: 1.0}
    low = ring.reweighted({1: MIN_WEIGHT}, NOW)
    climbing = [low]
    for _ in range(5):
        climbing.append(climbing[-1].reweighted(next_weights(climbing[-1], {1: 0}), NOW))
    assert [r.weights[1] for r in climbing] == [0.5, 0.625, 0.75, 0.875, 1.0, 1.0]


# -- ring changes -------------------------------------------------------------------------------------
def test_removed_shards_drain_and_a_shard_coming_back_is_simply_on_again():
    four = Ring.of(4).reweighted({2: 0.75}, NOW)
    eight = four.resized(8, NOW)
    assert eight.version == four.version + 1 and eight.shards == list(range(8))
    assert eight.weights[2] == 0.75 and not eight.draining  # kept shards keep their weight
    three = eight.resized(3, NOW + 1)
    assert three.shards == [0, 1, 2] and three.draining == dict.fromkeys(range(3, 8), NOW + 1 + DRAIN_MS)
    assert three.ticking(NOW + 2) == list(range(8))
    five = three.resized(5, NOW + 2)
    assert five.shards == list(range(5)) and sorted(five.draining) == [5, 6, 7]
    # A drain ends: the shard is ticked no more
    assert five.ticking(NOW + 2 + DRAIN_MS) == list(range(5))
    assert five.pruned(NOW + 2 + DRAIN_MS).draining == {}
    with pytest.raises(ValueError):
        Ring(version=1, weights={0: 1.0}, draining={0: NOW})


@given(active=st.integers(1, 8), draining=st.integers(0, 20))
def test_each_draining_shard_is_woken_by_exactly_one_shard_on_the_ring(active, draining):
    ring = Ring.of(active + draining).resized(active, NOW)
    woken = [s for shard in ring.shards for s in ring.drains_for(shard, NOW)]
    assert sorted(woken) == sorted(ring.draining)
    assert ring.drains_for(active + draining + 5, NOW) == []  # not a shard on the ring: wakes none


def test_plan_changes_the_ring_only_when_placement_should_change():
    ring = Ring.of(4, version=3)
    assert plan(ring, 4, {}, NOW) == ring  # same count, no lag: the same ring, the same version
    grown = plan(ring, 8, {}, NOW)
    assert grown.version == 4 and grown.shards == list(range(8))
    slowed = plan(grown, 8, {5: LAG_FLOOR_MS}, NOW)
    assert slowed.version == 5 and slowed.weights[5] == MIN_WEIGHT
    # A resize and a reweighting at once are one new version
    both = plan(slowed, 3, {1: LAG_FLOOR_MS}, NOW)
    assert both.version == 6 and both.weights == {0: 1.0, 1: MIN_WEIGHT, 2: 1.0}
