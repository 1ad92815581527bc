"""The one lost-order policy (core.oms.lost_orders): spaced lookups, lost after enough misses, reset when found."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.oms.lost_orders import LOST_AFTER_LOOKUPS, LookupPolicy, LostOrderTracker

T0 = datetime(2026, 1, 5, 10, 0)
GAP = timedelta(seconds=10)


def test_an_order_is_lost_only_at_the_last_of_its_spaced_misses():
    tracker = LostOrderTracker(LookupPolicy.every(GAP))
    verdicts = [tracker.missed("a", T0 + GAP * i) for i in range(LOST_AFTER_LOOKUPS)]
    assert verdicts == [False] * (LOST_AFTER_LOOKUPS - 1) + [True]
    assert "a" not in tracker and len(tracker) == 0  # a verdict forgets the order


def test_a_just_placed_order_is_not_looked_up_before_a_gap():
    tracker = LostOrderTracker(LookupPolicy.every(GAP))
    tracker.wait("a", T0)
    assert not tracker.is_due("a", T0 + GAP - timedelta(microseconds=1))
    assert tracker.is_due("a", T0 + GAP)
    assert tracker.is_due("never-held", T0)


def test_an_unanswered_lookup_is_no_miss_but_spaces_the_next():
    tracker = LostOrderTracker(LookupPolicy.every(GAP))
    tracker.missed("a", T0)
    tracker.wait("a", T0 + GAP)  # the venue did not answer
    assert tracker.misses("a") == 1
    assert not tracker.is_due("a", T0 + GAP + GAP / 2)


def test_a_find_starts_the_count_again():
    tracker = LostOrderTracker(LookupPolicy.every(GAP))
    for i in range(LOST_AFTER_LOOKUPS - 1):
        tracker.missed("a", T0 + GAP * i)
    tracker.found("a", T0 + GAP * 5)
    assert tracker.misses("a") == 0 and not tracker.is_due("a", T0 + GAP * 5)
    assert not tracker.missed("a", T0 + GAP * 6)


def test_the_policy_refuses_a_count_or_window_that_could_never_lose_an_order():
    with pytest.raises(ValueError):
        LookupPolicy(0, GAP)
    with pytest.raises(ValueError):
        LookupPolicy(3, timedelta(0))


def test_every_spaces_lookups_by_the_gap_it_is_given():
    assert LookupPolicy.every(timedelta(seconds=2)).gap == timedelta(seconds=2)
    assert LookupPolicy.every(GAP, 5).window == GAP * 5


# One step of a caller: a lookup that misses, one that finds, one the venue did not answer, or forget.
_steps = st.lists(st.tuples(st.sampled_from(["miss", "found", "wait", "forget"]),
                            st.integers(min_value=0, max_value=30_000)), max_size=40)


@given(misses_to_lose=st.integers(min_value=1, max_value=6), steps=_steps)
def test_lost_exactly_when_the_misses_since_the_last_find_reach_the_count(misses_to_lose, steps):
    tracker = LostOrderTracker(LookupPolicy.every(GAP, misses_to_lose))
    now, run = T0, 0  # the model: misses since the order was last found (or forgotten, or lost)
    for action, ms in steps:
        now += timedelta(milliseconds=ms)
        if action == "miss":
            run += 1
            lost = tracker.missed("a", now)
            assert lost is (run == misses_to_lose)
            if lost:
                run = 0
                assert "a" not in tracker
        elif action == "found":
            tracker.found("a", now)
            run = 0
        elif action == "wait":
            tracker.wait("a", now)
        else:
            tracker.forget("a")
            run = 0
        assert tracker.misses("a") == run
        if action in ("found", "wait"):
            assert not tracker.is_due("a", now) and tracker.is_due("a", now + GAP)


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=60))
def test_the_tracker_holds_only_orders_in_doubt(order_numbers):
    tracker = LostOrderTracker(LookupPolicy.every(GAP, 2))
    for i, n in enumerate(order_numbers):
        tracker.missed(f"o{n}", T0 + GAP * i)
    for client_order_id in tracker:
        assert tracker.misses(client_order_id) == 1  # a second miss loses and forgets it
    assert len(tracker) <= 6
