from __future__ import annotations

from decimal import Decimal

import pytest

from backtest.engine import make_vault, run_realistic, run_reference
from backtest.synth import generate
from mac.grid.core import initial_state, step
from settings.grid import default_params
from shared_schema.models import Bar
from windows.vault import GlobalVault, VaultDecision

CODES = ["512890.SH", "159201.SZ"]


class RecordingVault(GlobalVault):
    """The real vault, also checking the reserve rule at every layer-0 approval."""

    def __init__(self, limits):
        super().__init__(limits)
        self.layer0_approvals = 0

    def request_allocation(self, symbol, amount_fen, layer_index, client_order_id, requested_shares=None,
                           fee_fen=0):
        before = self.committed()
        decision = super().request_allocation(
            symbol, amount_fen, layer_index, client_order_id, requested_shares, fee_fen
        )
        if decision is VaultDecision.APPROVED and layer_index == 0:
            self.layer0_approvals += 1
            assert Decimal(before + amount_fen + fee_fen) <= Decimal(self.limits.physical_pool) * Decimal("0.85")
        return decision


@pytest.fixture(scope="module")
def both():
    return {c: generate(c, 30, seed=28 + k) for k, c in enumerate(CODES)}


def test_both_symbols_share_one_vault_and_keep_its_invariants(both):
    params = {c: default_params(c) for c in CODES}
    vault = RecordingVault(make_vault(params).limits)
    checked = []

    def on_bar(code, bar, v, state):
        if len(checked) % 7 == 0:  # every invariant walk is O(allocations); a dense sample is enough
            assert v.check_invariants() == []
        checked.append(code)

    res = run_realistic(both, params, vault=vault, on_bar=on_bar)
    assert vault.check_invariants() == []
    assert len(checked) == sum(len(b) for b in both.values())
    assert vault.layer0_approvals > 0
    assert all(len(res.symbols[c].trades) > 0 for c in CODES)
    # the grid's view of its lots equals the vault's
    for c in CODES:
        state = res.symbols[c].state
        for lot in state.lots:
            alloc = vault.allocations[lot.client_order_id]
            assert alloc.holding_shares == lot.shares
    assert res.util.max() <= 1.0


def test_high_utilisation_turns_the_penalty_on_and_off(both):
    params = {c: default_params(c, nominal_cap=260_000) for c in CODES}
    res = run_realistic(both, params)
    ev = res.symbols["512890.SH"].events
    assert res.util.max() > 0.9
    assert ev["PENALTY_ON"] >= 1
    assert abs(ev["PENALTY_ON"] - ev.get("PENALTY_OFF", 0)) <= 1


def test_engine_decisions_equal_calling_step_bar_by_bar_reference():
    code = "159201.SZ"
    bars = generate(code, 6, seed=5)
    params = default_params(code, "reference")
    res = run_reference(bars, params).symbols[code]
    state = initial_state(params)
    signals = []
    for i in range(len(bars)):
        b = Bar(t=int(bars.t[i]), o=bars.o[i], h=bars.h[i], l=bars.l[i], c=bars.c[i], v=bars.v[i])
        state, sigs, _ = step(state, b, None, params)  # the live node's call: incremental indicators
        signals.extend(sigs)
    assert signals == res.signals and len(signals) > 5
    assert state.lots == res.state.lots and state.cash == res.state.cash


def test_engine_decisions_equal_incremental_step_realistic(both):
    short = {c: b.slice(0, 240 * 12) for c, b in both.items()}
    params = {c: default_params(c) for c in CODES}
    fast = run_realistic(short, params)
    slow = run_realistic(short, params, incremental=True)
    for c in CODES:
        assert fast.symbols[c].signals == slow.symbols[c].signals
        assert fast.symbols[c].trades == slow.symbols[c].trades
    assert fast.vault.acc_alpha == slow.vault.acc_alpha


def _t1_books(trades, base):
    """Per trading day: (held at the start of the day, sold that day, lowest position that day)."""
    from mac.grid.core import trading_day

    held = base
    days: dict[int, list[int]] = {}
    for t in sorted(trades, key=lambda x: x.t):
        day = days.setdefault(trading_day(t.t), [held, 0, held])
        held += t.shares if t.side == "BUY" else -t.shares
        if t.side == "SELL":
            day[1] += t.shares
        day[2] = min(day[2], held)
    return days


@pytest.mark.parametrize("base", [0, 20_000])
def test_t1_sells_stay_within_what_was_held_at_the_start_of_the_day(both, base):
    code = "512890.SH"
    res = run_realistic({code: both[code]}, {code: default_params(code, base_position_shares=base)})
    days = _t1_books(res.trades, base)
    assert res.trades and days
    for start, sold, lowest in days.values():
        assert sold <= start  # T+1: only what was held before today can leave today
        assert lowest >= base  # the base position is never sold


def test_todays_lot_is_sold_today_against_the_base_position():
    # issue 10 item 7: with a base position, intraday round trips (buy, then sell the same lot the same
    # day at its take-profit) happen; without one a lot bought today waits for tomorrow
    code = "512890.SH"
    bars = {code: generate(code, 60, seed=11)}

    def round_trips(base):
        res = run_realistic(bars, {code: default_params(code, base_position_shares=base)})
        from mac.grid.core import trading_day

        bought = {t.client_order_id: trading_day(t.t) for t in res.trades if t.side == "BUY"}
        same_day = 0
        for s in res.symbols[code].signals:
            if s.side == "SELL":
                sold = [t for t in res.trades if t.client_order_id == s.client_order_id]
                if sold and all(bought.get(lot) == trading_day(sold[0].t) for lot in s.release_client_order_ids):
                    same_day += 1
        return same_day, res.symbols[code].events.get("NOT_SELLABLE_T1", 0)

    trips_base, blocks_base = round_trips(40_000)
    trips_none, blocks_none = round_trips(0)
    assert trips_base > 0
    assert blocks_base < blocks_none
