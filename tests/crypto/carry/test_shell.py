"""The carry engine against the local exchange's model: open window on the fake's own funding rate,
legging and unwinding, funding booked from the venue's bills, top-up and close lines, close-all with dust,
restart from the journal, the exchange guard."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from core.oms.reasons import VenueReason
from core.risk.state import RiskState
from crypto.carry import decisions as dec
from crypto.carry.config import CarryConfig, RiskConfig, StrategyConfig
from crypto.carry.machine import CarryState
from crypto.carry.shell import CarryEngine

from .conftest import PERP, SPOT, LatentVenue, audit_codes, make_exchange

STEP = 300_000


def run(engine: CarryEngine, x, steps: int) -> None:
    for _ in range(steps):
        engine.step()
        x.clock.advance(STEP)


@pytest.mark.parametrize("rate,opens", [("0.000099", False), ("0.0001", True), ("0.01", True), ("0.0101", False)])
def test_open_window_on_the_fakes_funding_rate(make_engine, rate: str, opens: bool) -> None:
    engine, venue, x = make_engine()
    x.set_funding_rate("BTC-USDT-SWAP", D(rate))
    engine.step()
    p = engine.pairs[PERP]
    assert (p.state == CarryState.HEDGING) is opens
    assert bool(venue.positions([PERP])) is opens
    if not opens:
        assert p.last_refusal in ("OPEN_RATE_BELOW_MIN", "OPEN_RATE_ABOVE_MAX")


def test_both_legs_equal_in_base_units_isolated_within_leverage(make_engine) -> None:
    engine, venue, x = make_engine()
    engine.step()
    p = engine.pairs[PERP]
    pos = venue.positions([PERP])[0]
    assert pos.margin_mode == "isolated" and pos.leverage <= 3
    assert -pos.qty == p.b.short_qty
    assert dec.leg_gap(p.b.spot_qty, p.b.short_qty) <= D("0.01")


def test_funding_in_engine_pnl_equals_the_fakes_bills(make_engine) -> None:
    engine, venue, x = make_engine()
    run(engine, x, 12 * 24 * 3 + 1)  # three days: nine settlements
    p = engine.pairs[PERP]
    bills = venue.funding_payments(PERP)
    assert len(bills) >= 8
    assert p.b.funding == sum((b.amount for b in bills), D(0))  # exact Decimal equality
    booked = [a for a in audit_codes(engine) if a["code"] == "CARRY_FUNDING_SETTLED"]
    assert sorted(a["data"]["bill_id"] for a in booked) == sorted(b.bill_id for b in bills)


def test_rejected_second_leg_unwound_within_bound(make_engine) -> None:
    engine, venue, x = make_engine(latency_ms=400)
    venue.refuse[("place_order", SPOT)] = [VenueReason.INSUFFICIENT_FUNDS]
    engine.step()
    p = engine.pairs[PERP]
    assert p.state == CarryState.IDLE and p.b.is_flat
    assert venue.positions([PERP]) == []
    events = audit_codes(engine)
    unwound = [e for e in events if e["code"] == "CARRY_LEG_UNWOUND"]
    assert len(unwound) == 1
    assert 0 < unwound[0]["data"]["naked_ms"] <= StrategyConfig().leg_unwind_ms
    assert unwound[0]["data"]["within_bound"] is True
    states = [(e["data"]["from"], e["data"]["to"]) for e in events if e["code"] == "CARRY_STATE_CHANGE"]
    assert states == [("IDLE", "OPENING"), ("OPENING", "IDLE")]


def test_unwind_that_outlives_the_bound_stops_the_engine(make_engine) -> None:
    engine, venue, x = make_engine(latency_ms=400)
    venue.refuse[("place_order", SPOT)] = [VenueReason.INSUFFICIENT_FUNDS]
    # The unwinding buy is refused for longer than 5 s, then the venue recovers.
    original = venue.place_order
    calls = {"n": 0}

    def place(request):
        if request.symbol == PERP and request.reduce_only and calls["n"] < 12:
            calls["n"] += 1
            venue.x.clock.advance(400)
            from crypto.venue.types import VenueError
            raise VenueError(VenueReason.RATE_LIMIT, "scripted")
        return original(request)

    venue.place_order = place  # type: ignore[method-assign]
    engine.step()
    p = engine.pairs[PERP]
    codes = [e["code"] for e in audit_codes(engine)]
    assert "CARRY_NAKED_EXPOSURE" in codes
    assert p.state == CarryState.STOPPED
    assert venue.positions([PERP]) == []  # close_all took the short back once the venue answered


def test_topup_at_80_percent_moves_funding_to_trading_and_is_idempotent(make_engine) -> None:
    x = make_exchange(usdt="7600", funding_usdt="5000")
    engine, venue, _ = make_engine(cfg=CarryConfig(strategy=StrategyConfig(capital_usdt=D("10000"))), exchange=x)
    engine.step()
    p = engine.pairs[PERP]
    assert p.state == CarryState.HEDGING
    entry = p.b.perp_entry
    x.set_price("BTC-USDT-SWAP", entry * D("1.115"))  # 2x: health about 0.77
    x.clock.advance(STEP)
    engine.step()
    events = audit_codes(engine)
    topups = [e for e in events if e["code"] == "CARRY_MARGIN_TOPUP"]
    assert len(topups) == 1
    assert D(topups[0]["data"]["moved_from_funding"]) > 0
    assert D(topups[0]["data"]["health_after"]) >= D("0.999")
    assert len(x.state.transfers) == 1
    # The same top-up again (a retry after a crash between transfer and margin): no second move.
    view, _ = engine._view(p)
    assert engine.topup(p, view) == 0
    tid = topups[0]["data"]["transfer_id"]
    venue.transfer("USDT", D("1"), "funding", "trading", tid)  # the venue dedups by id too
    assert len(x.state.transfers) == 1
    assert p.state == CarryState.HEDGING


def test_under_50_percent_closes_everything(make_engine) -> None:
    engine, venue, x = make_engine(cfg=CarryConfig(risk=RiskConfig(topups_enabled=False)))
    engine.step()
    entry = engine.pairs[PERP].b.perp_entry
    x.set_price("BTC-USDT-SWAP", entry * D("1.27"))  # 2x: health about 0.46
    x.clock.advance(STEP)
    engine.step()
    p = engine.pairs[PERP]
    assert p.state == CarryState.IDLE and p.b.is_flat
    assert venue.positions([PERP]) == []
    closes = [e for e in audit_codes(engine) if e["code"] == "CARRY_CLOSE"]
    assert closes[-1]["data"]["reason"] == "CLOSE_MARGIN_HEALTH"


def test_close_all_leaves_no_position_and_marks_dust(make_engine) -> None:
    x = make_exchange(spot_lot="0.0001")  # spot traded in 0.0001 BTC: the fee paid in BTC leaves a remainder
    engine, venue, _ = make_engine(exchange=x)
    engine.step()
    assert engine.pairs[PERP].state == CarryState.HEDGING
    engine.close_all("operator close-all")
    p = engine.pairs[PERP]
    assert p.state == CarryState.STOPPED
    assert venue.positions([PERP]) == []
    btc = venue.balances("trading")["BTC"].total
    assert 0 < btc < D("0.0001") and p.dust == btc
    codes = [e["code"] for e in audit_codes(engine)]
    assert "RISK_DUST_LOCKED" in codes and "EXEC_DUST_POSITION_STUCK" in codes


def test_state_survives_a_restart(make_engine, tmp_path) -> None:
    engine, venue, x = make_engine()
    run(engine, x, 200)
    before = engine.pairs[PERP]
    engine.journal.close()
    again = CarryEngine(venue, CarryConfig(), engine.dir, wait=x.clock.advance, fsync=False)
    after = again.pairs[PERP]
    assert after.state == before.state == CarryState.HEDGING
    assert after.b == before.b
    assert again.last_exit_clean is False  # no clean exit was journaled
    again.shutdown()
    assert CarryEngine(venue, CarryConfig(), engine.dir, fsync=False).last_exit_clean is True


def test_disconnect_puts_the_account_in_reduce_only_and_blocks_opens(make_engine) -> None:
    engine, venue, x = make_engine()
    x.set_funding_rate("BTC-USDT-SWAP", D("0.00001"))  # below the window: nothing opens meanwhile
    for _ in range(3):
        with pytest.raises(Exception):  # noqa: B017 - the venue error itself
            engine._call(_raise_network)
    assert engine.risk_state == RiskState.REDUCE_ONLY
    x.set_funding_rate("BTC-USDT-SWAP", D("0.0005"))
    engine.step()
    assert engine.pairs[PERP].b.is_flat and engine.risk_state == RiskState.REDUCE_ONLY
    refused = [e for e in audit_codes(engine) if e["code"] == "CARRY_OPEN_REFUSED"]
    assert refused and refused[-1]["data"]["reason"] == "OPEN_REDUCE_ONLY"
    run(engine, x, 9)  # a full window of good calls: the guard clears (via DEGRADED) and the pair opens
    assert engine.risk_state == RiskState.DEGRADED
    assert engine.pairs[PERP].state == CarryState.HEDGING


def _raise_network() -> None:
    from crypto.venue.types import VenueError

    raise VenueError(VenueReason.NETWORK, "connection refused")


def test_latent_venue_is_a_venue(make_engine) -> None:
    engine, venue, x = make_engine()
    assert isinstance(venue, LatentVenue) and venue.name == "okx"


class Killed(BaseException):
    """kill -9 stand-in: not an Exception, nothing in the engine catches it."""


def test_restart_in_opening_takes_the_lone_leg_back_once(make_engine) -> None:
    engine, venue, x = make_engine()
    original = venue.place_order

    def place(request):
        if request.symbol == SPOT:
            raise Killed()
        return original(request)

    venue.place_order = place  # type: ignore[method-assign]
    with pytest.raises(Killed):
        engine.step()
    assert engine.pairs[PERP].state == CarryState.OPENING and venue.positions([PERP])  # the lone short
    engine.journal.close()
    venue.place_order = original  # type: ignore[method-assign]
    again = CarryEngine(venue, CarryConfig(), engine.dir, wait=x.clock.advance, fsync=False)
    assert again.pairs[PERP].state == CarryState.OPENING and not again.last_exit_clean
    again.step()  # resume: the short bought back, then the scan opens the pair properly
    p = again.pairs[PERP]
    pos = venue.positions([PERP])
    assert p.state == CarryState.HEDGING and len(pos) == 1 and -pos[0].qty == p.b.short_qty
    codes = [e["code"] for e in audit_codes(again)]
    assert codes.count("CARRY_LEG_UNWOUND") == 1


def test_three_losing_closes_trip_the_breaker_and_block_opens(make_engine) -> None:
    engine, venue, x = make_engine(cfg=CarryConfig(strategy=StrategyConfig(stop_loss=D("0.0001"))))
    for _ in range(3):
        engine.step()  # opens; the fees alone put the pair under a 0.01 % stop
        x.clock.advance(STEP)
        engine.step()  # closes at the stop
        x.clock.advance(STEP)
    assert engine.breaker.tripped and engine.breaker.reason == "BREAKER_CONSECUTIVE_LOSSES"
    engine.step()
    assert engine.pairs[PERP].b.is_flat
    events = audit_codes(engine)
    assert [e["data"]["reason"] for e in events if e["code"] == "CARRY_CLOSE"] == ["CLOSE_STOP_LOSS"] * 3
    assert any(e["code"] == "CARRY_BREAKER_TRIPPED" for e in events)
    assert [e for e in events if e["code"] == "CARRY_OPEN_REFUSED"][-1]["data"]["reason"] == "OPEN_BREAKER_TRIPPED"


def test_disaster_stop_sits_on_the_venue_and_fires_while_the_engine_is_down(make_engine) -> None:
    engine, venue, x = make_engine()
    engine.step()
    p = engine.pairs[PERP]
    algos = [a for a in x.algos("BTC-USDT-SWAP") if a.state == "live"]
    assert len(algos) == 1 and algos[0].reduce_only and algos[0].qty == p.b.short_qty
    trigger = algos[0].trigger_px
    assert dec.margin_health(p.b, trigger) <= RiskConfig().disaster_stop_health + D("0.001")
    # The engine is down while the mark jumps through its 80 % and 50 % lines to the stop's.
    x.set_price("BTC-USDT-SWAP", trigger * D("1.01"))
    x.clock.advance(STEP)
    assert venue.positions([PERP]) == []  # the venue's stop bought the short back: no liquidation
    engine.step()  # the engine finds the short gone: fault -> close all -> STOPPED, spot sold
    assert engine.pairs[PERP].state == CarryState.STOPPED
    codes = [e["code"] for e in audit_codes(engine)]
    assert "EXEC_PROTECTIVE_ATTACHED" in codes and "CARRY_LIQUIDATED" not in codes
    assert not any(b.kind == "liquidation" for b in x.bills())


def test_a_refused_stop_means_no_position(make_engine) -> None:
    engine, venue, x = make_engine()
    original = venue.place_order

    def place(request):
        if request.type == "stop_market":
            from crypto.venue.types import VenueError
            raise VenueError(VenueReason.INVALID_ORDER, "scripted stop refusal")
        return original(request)

    venue.place_order = place  # type: ignore[method-assign]
    engine.step()
    assert engine.pairs[PERP].state == CarryState.STOPPED
    assert venue.positions([PERP]) == []
    assert "EXEC_PROTECTIVE_ORDER_MISSING" in [e["code"] for e in audit_codes(engine)]


@pytest.mark.parametrize("cut", ["0.003", "0.02"])
def test_gap_at_most_one_percent_after_a_rebalance_on_the_fake(make_engine, cut: str) -> None:
    engine, venue, x = make_engine()
    engine.step()
    p = engine.pairs[PERP]
    # Spot leaves the pair outside the engine's view of it (a partial fill, a manual sale): the book learns
    # a smaller spot leg, a gap of 3.6 % or 24 % of the pair.
    from dataclasses import replace

    p.book = replace(p.b, spot_qty=p.b.spot_qty - D(cut))
    assert dec.leg_gap(p.b.spot_qty, p.b.short_qty) > D("0.01")
    x.clock.advance(STEP)
    engine.step()
    assert p.state == CarryState.HEDGING
    pos = venue.positions([PERP])[0]
    assert -pos.qty == p.b.short_qty
    assert dec.leg_gap(p.b.spot_qty, -pos.qty) <= D("0.01")
    rebalanced = [e for e in audit_codes(engine) if e["code"] == "CARRY_REBALANCED"]
    assert len(rebalanced) == 1 and D(rebalanced[0]["data"]["gap_after"]) <= D("0.01")
    # The disaster stop follows the smaller short.
    live = [a for a in x.algos("BTC-USDT-SWAP") if a.state == "live"]
    assert len(live) == 1 and live[0].qty == p.b.short_qty


def test_topup_without_reserve_delevers_both_legs_then_tops_up(make_engine) -> None:
    x = make_exchange(usdt="7600", funding_usdt="0")
    engine, venue, _ = make_engine(exchange=x)
    engine.step()
    p = engine.pairs[PERP]
    short_before = p.b.short_qty
    x.set_price("BTC-USDT-SWAP", p.b.perp_entry * D("1.115"))  # health about 0.77, ~200 USDT free
    x.clock.advance(STEP)
    engine.step()
    events = audit_codes(engine)
    delever = [e for e in events if e["code"] == "CARRY_REBALANCED"]
    assert len(delever) == 1 and "delever" in delever[0]["cause"]
    assert p.state == CarryState.HEDGING
    assert p.b.short_qty < short_before
    assert dec.leg_gap(p.b.spot_qty, p.b.short_qty) <= D("0.01")
    pos = venue.positions([PERP])[0]
    assert -pos.qty == p.b.short_qty
    topup = [e for e in events if e["code"] == "CARRY_MARGIN_TOPUP"]
    assert len(topup) == 1 and D(topup[0]["data"]["health_after"]) >= D("0.999")
    assert D(topup[0]["data"]["moved_from_funding"]) == 0


def test_spike_filter_holds_an_open_back_until_prices_settle(make_engine) -> None:
    engine, venue, x = make_engine()
    x.set_funding_rate("BTC-USDT-SWAP", D("0.00001"))  # below the window while the spike is set up
    engine.step()
    x.clock.advance(STEP)
    x.set_price("BTC-USDT-SWAP", venue.mark_price(PERP) * D("1.03"))  # +3 % within one scan
    x.set_funding_rate("BTC-USDT-SWAP", D("0.0005"))
    engine.step()
    assert engine.pairs[PERP].b.is_flat
    refused = [e for e in audit_codes(engine) if e["code"] == "CARRY_OPEN_REFUSED"]
    assert refused[-1]["data"]["reason"] == "OPEN_PRICE_SPIKE"
    run(engine, x, 3)  # calm scans again: the pair opens
    assert engine.pairs[PERP].state == CarryState.HEDGING


def test_btc_and_eth_pairs_run_side_by_side(make_engine) -> None:
    from crypto.carry.config import InstrumentConfig, InstrumentsConfig

    eth = InstrumentConfig(symbol="ETH/USDT:USDT", spot_symbol="ETH/USDT", venue_id="ETH-USDT-SWAP",
                           contract_size=D("0.1"), qty_step=D("0.001"), min_qty=D("0.001"), tick=D("0.01"))
    cfg = CarryConfig(instruments=InstrumentsConfig(pairs=(InstrumentConfig(symbol=PERP, spot_symbol=SPOT), eth)))
    engine, venue, x = make_engine(cfg=cfg)
    run(engine, x, 12 * 9)  # past the 08:00 settlement
    for symbol in (PERP, "ETH/USDT:USDT"):
        p = engine.pairs[symbol]
        assert p.state == CarryState.HEDGING
        assert -venue.positions([symbol])[0].qty == p.b.short_qty
        assert p.b.funding == sum((b.amount for b in venue.funding_payments(symbol)), D(0)) != 0
    engine.close_all("operator close-all")
    assert venue.positions() == []


def test_funding_at_the_cap_shortens_the_interval_and_every_bill_is_booked(make_engine) -> None:
    engine, venue, x = make_engine()
    x.set_funding_rate("BTC-USDT-SWAP", D("0.00375"))  # at the cap: 8 h -> 4 h -> 2 h -> 1 h
    run(engine, x, 12 * 24)  # one day
    engine.step()  # the settlement the last advance reached
    p = engine.pairs[PERP]
    bills = venue.funding_payments(PERP)
    times = sorted(b.ts_ms for b in bills)
    gaps = {b - a for a, b in zip(times[:-1], times[1:], strict=True)}
    assert 3_600_000 in gaps and len(bills) > 3  # the venue settled hourly by the end
    assert p.b.funding == sum((b.amount for b in bills), D(0))
    booked = [e for e in audit_codes(engine) if e["code"] == "CARRY_FUNDING_SETTLED"]
    assert len(booked) == len(bills)
