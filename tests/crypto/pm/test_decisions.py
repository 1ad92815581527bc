"""The position manager's pure decisions: the issue's worked cases verbatim, then invariants."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.pm.config import ConfigError, PmConfig, load_config
from crypto.pm.decisions import (
    ManagedPosition,
    MarketView,
    add_on_qty,
    atr_stop,
    decide_add_on,
    govern,
    liq_buffer,
    pnl,
    roe,
    roe_lock_stop,
    tighten,
)


def position(**kw: object) -> ManagedPosition:
    base: dict[str, object] = dict(pos_id="p1", symbol="BTC/USDT:USDT", kind="swap", direction=1, qty=D(1),
                                   entry=D(100), margin=D(20), q0=D(1), opened_ms=0)
    base.update(kw)
    return ManagedPosition(**base)  # type: ignore[arg-type]


def cfg(**kw: object) -> PmConfig:
    return load_config(kw)


# --- worked cases -------------------------------------------------------------------------------------

def test_atr_stop_entry_100_atr_2_k_1_5_is_97() -> None:
    assert atr_stop(D(100), D(2), D("1.5"), 1) == D(97)
    assert atr_stop(D(100), D(2), D("1.5"), -1) == D(103)  # short mirrored


def test_atr_stop_never_moves_down_over_10000_random_paths() -> None:
    rng = random.Random(16)
    config = cfg()
    for _ in range(10_000):
        direction = rng.choice((1, -1))
        pos = position(direction=direction)
        stops: list[D] = []
        mark = D(100)
        for step in range(12):
            mark = max(D(1), mark + D(rng.randint(-400, 400)) / 100)
            atr = D(rng.randint(10, 600)) / 100
            plan = govern(pos, MarketView(mark=mark, ts_ms=step * 1000, atr=atr), config, reduce_only=True)
            pos = plan.position
            if pos.closed:
                break
            assert pos.stop is not None
            stops.append(pos.stop)
        # long: never down; short: never up
        assert all((b - a) * direction >= 0 for a, b in zip(stops, stops[1:], strict=False))


def test_roe_lock_q_1_margin_20_rho_0_5_is_110() -> None:
    assert roe_lock_stop(D(100), D(20), D(1), 1, D("0.5")) == D(110)
    assert roe_lock_stop(D(100), D(20), D(1), -1, D("0.5")) == D(90)


def test_govern_applies_the_lock_level_when_roe_reaches_it() -> None:
    config = cfg(locks=[{"trigger_roe": "0.5", "lock_roe": "0.5"}], ladder=[])
    plan = govern(position(stop=D(97)), MarketView(mark=D(110), ts_ms=1), config)
    assert plan.roe == D("0.5")
    assert plan.position.stop == D(110)
    [move] = plan.actions
    assert move.kind == "STOP_MOVE" and move.stop == D(110) and move.reduce_only
    assert move.reason == "ROE_LOCK_0"


def test_add_ons_follow_q0_gamma_powers_and_stop_at_the_cap() -> None:
    config = cfg(add_on={"gate_roe": "0.1", "gamma": "0.5", "eta": "1", "cap": 4}, ladder=[], locks=[])
    pos = position(q0=D(8), qty=D(8), margin=D(160))
    view = MarketView(mark=D(110), ts_ms=1, signal=1)
    adds: list[D] = []
    for _ in range(10):
        got = decide_add_on(pos, view, config, D("0.5"))
        if not isinstance(got, D):
            assert got == "ADD_COUNT_CAP"
            break
        adds.append(got)
        pos = replace(pos, add_count=pos.add_count + 1, adds_qty=pos.adds_qty + got)
    assert adds == [D(4), D(2), D(1), D("0.5")]  # Q0/2, Q0/4, Q0/8, Q0/16
    assert sum(adds) <= config.add_on.eta * D(8)


def test_add_on_stops_at_eta() -> None:
    config = cfg(add_on={"gate_roe": "0.1", "gamma": "0.5", "eta": "0.6", "cap": 10})
    pos = position(q0=D(1))
    view = MarketView(mark=D(110), ts_ms=1, signal=1)
    assert decide_add_on(pos, view, config, D(1)) == D("0.5")
    pos = replace(pos, add_count=1, adds_qty=D("0.5"))
    assert decide_add_on(pos, view, config, D(1)) == "ADD_ETA_CAP"  # 0.5 + 0.25 > 0.6


@pytest.mark.parametrize(
    ("signal", "r", "reason"),
    [(None, D(1), "ADD_NO_SIGNAL"), (-1, D(1), "ADD_SIGNAL_AGAINST"), (1, D("0.05"), "ADD_ROE_BELOW_GATE"),
     (1, D(-1), "ADD_ROE_BELOW_GATE")],
)
def test_add_on_refusals(signal: int | None, r: D, reason: str) -> None:
    got = decide_add_on(position(), MarketView(mark=D(100), ts_ms=0, signal=signal), cfg(), r)
    assert got == reason


def test_add_on_q_add_formula() -> None:
    assert [add_on_qty(D(1), j, D("0.5")) for j in (1, 2, 3)] == [D("0.5"), D("0.25"), D("0.125")]


@pytest.mark.parametrize("gate", ["0", "-0.1"])
def test_config_refuses_a_gate_at_or_below_zero(gate: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"add_on": {"gate_roe": gate}})
    assert err.value.code == "ADD_ON_GATE_NOT_POSITIVE"


@pytest.mark.parametrize(
    ("raw", "code"),
    [({"add_on": {"gate_roe": "0.1", "gamma": "1"}}, "ADD_ON_GAMMA_RANGE"),
     ({"ladder": [{"roe": "1", "fraction": "0.5"}, {"roe": "0.5", "fraction": "0.5"}]}, "LADDER_NOT_INCREASING"),
     ({"locks": [{"trigger_roe": "0.3", "lock_roe": "0.5"}]}, "LOCK_ABOVE_TRIGGER"),
     ({"manage_interval_s": 5}, "CONFIG_INVALID"),
     ({"surprise": 1}, "CONFIG_INVALID")],
)
def test_config_refusals_carry_codes(raw: dict[str, object], code: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(raw)
    assert err.value.code == code


# --- formulas -----------------------------------------------------------------------------------------

def test_pnl_roe_and_liq_buffer() -> None:
    assert pnl(D(110), D(100), D(2), 1) == D(20)
    assert pnl(D(110), D(100), D(2), -1) == D(-20)
    assert roe(D(10), D(20)) == D("0.5")
    assert liq_buffer(D(100), D(92)) == D("0.08")
    assert liq_buffer(D(100), D(108)) == D("0.08")


def test_liquidation_buffer_below_threshold_downgrades() -> None:
    config = cfg(liq_buffer_min="0.08", downgrade_fraction="0.5", ladder=[], locks=[])
    plan = govern(position(qty=D(2), q0=D(2), margin=D(40), stop=D(90)),
                  MarketView(mark=D(95), ts_ms=5, liq_price=D(90)), config)
    assert [a.kind for a in plan.actions][0] == "RISK_DOWNGRADE"
    assert plan.actions[0].intent_id == "p1:dg:1" and plan.position.downgrades == 1
    assert plan.actions[0].qty == D(1) and plan.actions[0].reduce_only
    assert plan.position.qty == D(1) and plan.position.margin == D(20)
    assert "RISK_DOWNGRADE" in [e.kind for e in plan.events]


# --- ladder -------------------------------------------------------------------------------------------

def test_ladder_rungs_fire_once_each_on_what_is_left() -> None:
    config = cfg(ladder=[{"roe": "0.5", "fraction": "0.5"}, {"roe": "1.0", "fraction": "0.5"}], locks=[])
    pos = position(qty=D(4), q0=D(4), margin=D(80), stop=D(97))
    first = govern(pos, MarketView(mark=D(111), ts_ms=1), config)  # ROE 0.55
    tps = [a for a in first.actions if a.kind == "TP_PARTIAL"]
    assert [(a.qty, a.intent_id) for a in tps] == [(D(2), "p1:tp:0")]
    after = first.position
    assert after.qty == D(2) and after.margin == D(40)
    assert after.entry == D(100)  # WAC: the average entry does not change on a sell
    assert after.realised_pnl == D(22)
    again = govern(after, MarketView(mark=D(112), ts_ms=2), config)
    assert not [a for a in again.actions if a.kind == "TP_PARTIAL"]  # rung 0 spent
    second = govern(again.position, MarketView(mark=D(121), ts_ms=3), config)  # ROE 1.05
    assert [(a.qty, a.intent_id) for a in second.actions if a.kind == "TP_PARTIAL"] == [(D(1), "p1:tp:1")]
    assert second.position.ladder_fired == (0, 1)


def test_a_jump_past_two_rungs_fires_both_with_recomputed_sizes() -> None:
    config = cfg(ladder=[{"roe": "0.5", "fraction": "0.5"}, {"roe": "1.0", "fraction": "0.5"}], locks=[])
    plan = govern(position(qty=D(4), q0=D(4), margin=D(80)), MarketView(mark=D(125), ts_ms=1), config)
    assert [a.qty for a in plan.actions if a.kind == "TP_PARTIAL"] == [D(2), D(1)]
    assert plan.position.qty == D(1) and plan.position.margin == D(20)


def test_tp_resizes_the_stop_to_the_remaining_quantity() -> None:
    config = cfg(ladder=[{"roe": "0.5", "fraction": "0.5"}], locks=[])
    plan = govern(position(qty=D(4), q0=D(4), margin=D(80), stop=D(97), stop_coid="p1:sl:1", stop_seq=1),
                  MarketView(mark=D(111), ts_ms=1), config)
    move = [a for a in plan.actions if a.kind == "STOP_MOVE"][0]
    assert move.qty == D(2) and move.stop == D(97) and move.cancel_coids == ("p1:sl:1",)


def test_crossed_stop_is_guarded_by_an_exit() -> None:
    plan = govern(position(stop=D(97), stop_coid="p1:sl:1"), MarketView(mark=D(96), ts_ms=1), cfg())
    [exit_] = plan.actions
    assert exit_.kind == "EXIT" and exit_.reduce_only and exit_.qty == D(1)
    assert plan.position.closed


def test_stagnation_fires_once_after_the_configured_time() -> None:
    config = cfg(stagnation_ms=1000, ladder=[], locks=[])
    pos = position(stop=D(97))
    quiet = govern(pos, MarketView(mark=D(100), ts_ms=500), config)
    assert not quiet.events
    late = govern(quiet.position, MarketView(mark=D(100), ts_ms=1500), config)
    assert [e.kind for e in late.events] == ["STAGNATED"]
    later = govern(late.position, MarketView(mark=D(100), ts_ms=2500), config)
    assert not later.events


def test_reduce_only_pass_never_adds() -> None:
    config = cfg(add_on={"gate_roe": "0.1"}, ladder=[], locks=[])
    pos = position(stop=D(97))
    view = MarketView(mark=D(105), ts_ms=1, signal=1)
    assert [a.kind for a in govern(pos, view, config).actions] == ["ADD_ON", "STOP_MOVE"]
    assert govern(pos, view, config, reduce_only=True).actions == ()


# --- invariants ---------------------------------------------------------------------------------------

prices = st.decimals(min_value=D("0.01"), max_value=D(100000), places=2)


@settings(max_examples=300)
@given(prev=st.one_of(st.none(), prices), cand=prices, direction=st.sampled_from((1, -1)))
def test_tighten_never_loosens(prev: D | None, cand: D, direction: int) -> None:
    got = tighten(prev, cand, direction)
    if prev is not None:
        assert (got - prev) * direction >= 0
    assert (got - cand) * direction >= 0


@settings(max_examples=200)
@given(marks=st.lists(prices, min_size=1, max_size=15), direction=st.sampled_from((1, -1)),
       atr=st.decimals(min_value=D("0.1"), max_value=D(50), places=1))
def test_govern_stop_is_monotone_and_qty_never_grows_without_an_add(
        marks: list[D], direction: int, atr: D) -> None:
    pos = position(direction=direction, qty=D(3), q0=D(3), margin=D(60))
    config = cfg()
    for i, mark in enumerate(marks):
        plan = govern(pos, MarketView(mark=mark, ts_ms=i, atr=atr), config, reduce_only=True)
        new = plan.position
        if pos.stop is not None and new.stop is not None:
            assert (new.stop - pos.stop) * direction >= 0
        assert new.qty <= pos.qty
        assert new.entry == pos.entry
        pos = new
        if pos.closed:
            break


def test_a_position_found_without_a_stop_gets_one() -> None:
    plan = govern(position(), MarketView(mark=D(100), ts_ms=1), cfg(ladder=[], locks=[]), reduce_only=True)
    [move] = plan.actions
    assert move.kind == "STOP_MOVE" and move.reason == "ENTRY_STOP" and move.stop == D(92)  # liq_buffer_min 8 %
