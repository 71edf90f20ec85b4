"""Pure rules for abandoned attempts and heartbeats."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskplane.domain.timeouts import GRACE_MS, STALE_MS, final_due, first_watch, next_watch

pytestmark = pytest.mark.unit


def test_short_attempt_is_watched_once_at_timeout_plus_grace():
    # Given a 10 s attempt started at 0 / Then its one watch is at 10 s + grace, abandoned from then
    assert first_watch(0, 10) == 10_000 + GRACE_MS
    assert next_watch(0, 10, None, 10_000 + GRACE_MS - 1) == 10_000 + GRACE_MS
    assert next_watch(0, 10, None, 10_000 + GRACE_MS) is None


def test_long_attempt_without_heartbeat_is_abandoned_after_staleness():
    # Given a 900 s attempt whose worker never beat / Then it is abandoned after STALE_MS, not 900 s
    assert first_watch(0, 900) == STALE_MS
    assert next_watch(0, 900, None, STALE_MS) is None


def test_heartbeats_keep_a_long_attempt_alive_until_its_timeout():
    # Given a 900 s attempt beating every minute / Then each watch moves on, and the end is final
    assert next_watch(0, 900, 120_000, STALE_MS) == 120_000 + STALE_MS
    assert next_watch(0, 900, 899_000, 930_000 - 1) == 930_000
    assert next_watch(0, 900, 929_000, 930_000) is None


@given(
    started=st.integers(0, 10**12),
    timeout_s=st.integers(1, 900),
    beat=st.one_of(st.none(), st.integers(0, 2_000_000)),
    now=st.integers(0, 2_000_000),
)
def test_watch_never_outlives_the_final_due_and_always_moves_forward(started, timeout_s, beat, now):
    # Given any attempt / When it is looked at / Then it is abandoned or watched later, never past the end
    beat_at = None if beat is None else started + beat
    at = started + now
    again = next_watch(started, timeout_s, beat_at, at)
    end = final_due(started, timeout_s)
    if at >= end:
        assert again is None
    if again is not None:
        assert at < again <= end
