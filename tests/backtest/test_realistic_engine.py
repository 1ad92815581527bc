from __future__ import annotations

from decimal import Decimal

import pytest

from backtest.engine import make_vault, run_realistic, run_reference
from backtest.synth import generate
from mac.grid.core import initial_state, step
from mac.grid.params import default_params
from shared_schema.models import Bar
from windows.vault import GlobalVault, VaultDecision

CODES = ["512890.SH", "159201.SZ"]


class RecordingVault(GlobalVault):
    """The real vault, also checking the reserve rule at every layer-0 approval."""

    def __init__(self, limits):
        super().__init__(limits)
        self.layer0_approvals = 0

    def request_allocation(self, symbol, amount_fen, layer_index, client_order_id, requested_shares=None):
        before = self.committed()
        decision = super().request_allocation(
            symbol, amount_fen, layer_index, client_order_id, requested_shares
        )
        if decision is VaultDecision.APPROVED and layer_index == 0:
            self.layer0_approvals += 1
            assert Decimal(before + amount_fen) <= Decimal(self.limits.physical_pool) * Decimal("0.85")
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


def test_t1_no_sell_fills_on_the_buy_day(both):
    res = run_realistic({"512890.SH": both["512890.SH"]}, {"512890.SH": default_params("512890.SH")})
    buys = {t.client_order_id: t for t in res.trades if t.side == "BUY"}
    from mac.grid.core import trading_day

    for t in res.trades:
        if t.side == "SELL":
            sig = next(s for s in res.symbols["512890.SH"].signals if s.client_order_id == t.client_order_id)
            for lot_id in sig.release_client_order_ids:
                assert trading_day(buys[lot_id].t) < trading_day(t.t)
