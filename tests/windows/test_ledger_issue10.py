"""Issue 10, money ledger: partial sells, odd lots, the first-layer reserve, fees, one utilisation function."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mac.grid.core import OPEN, SELL, GridState, Lot, PendingOrder, PoolView, apply_fill, penalty_after
from shared_schema.ledger_math import split_shares, utilization
from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME
from windows.executor_state import ExecutorState
from windows.vault import FeeModel, GlobalVault, VaultDecision, VaultLimits

A, B = "159201.SZ", "512890.SH"
T = SESSION_TIME.isoformat()


def make_vault(pool: str = "300000", fee: FeeModel | None = None) -> GlobalVault:
    limits = VaultLimits.from_yuan(Decimal(pool), {A: Decimal("200000"), B: Decimal("200000")}, Decimal("0.15"))
    return GlobalVault(limits, fee or FeeModel(Decimal("0.0001"), 0))


def lot(vault: GlobalVault, coid: str, shares: int, value_fen: int, fees_fen: int = 0, symbol: str = B) -> None:
    assert vault.request_allocation(symbol, value_fen, 1, coid, shares) is VaultDecision.APPROVED
    vault.on_fill(symbol, coid, shares, value_fen, fees_fen)
    vault.on_cancel(symbol, coid)


# ------------------------------------------------------------------------- 10.1 partial sells


def test_sell_of_100_from_a_10000_lot_releases_only_100_shares_and_their_cost():
    vault = make_vault()
    lot(vault, "L", 10_000, 1_100_000, 110)  # 11,000.00 + 1.10 buy fees
    vault.apply_sell_fill(B, "S", ["L"], 100, 100, 11_100, 2)
    a = vault.allocations["L"]
    assert a.holding_shares == 9_900
    sold_cost = 1_100_110 * 100 // 10_000  # the released part is rounded down; the lot keeps the rest
    assert a.used == 1_100_110 - sold_cost
    assert vault.get_used_map()[B] == a.used
    # alpha only on the 100 shares sold: 111.00 - (110.00 + 0.011 buy fee, rounded down) - 0.02
    assert vault.acc_alpha[B] == 11_100 - sold_cost - 2
    assert vault.check_invariants() == []


def test_sell_of_100_naming_a_10000_lot_through_the_executor(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="b1", price=1.100, shares=10_000, layer_index=1)
    h.turn()
    used_after_buy = h.pool().used_512890
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1), **{"512890_SH": 1.110})
    h.send(signal_id="s1", direction="SELL", price=1.109, shares=100, release_client_order_ids=["b1"])
    h.turn()
    assert h.result("s1").status is ResultStatus.FILLED
    pool = h.pool()
    sold_cost = (used_after_buy * 100 / 10_000).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert pool.used_512890 == used_after_buy - sold_cost
    (alloc,) = pool.allocations_512890
    assert alloc.filled_shares - alloc.released_shares == 9_900
    # 110.90 proceeds - 110.01 cost of 100 shares (fees included) - 0.01 sell fee
    assert pool.acc_alpha_512890 == Decimal("0.88")
    h.executor.stop()


def test_sell_above_what_the_named_lots_hold_is_rejected(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="b1", price=1.100, shares=1_000, layer_index=1)
    h.turn()
    h.send(signal_id="s1", direction="SELL", price=1.099, shares=2_000, release_client_order_ids=["b1"])
    h.turn()
    result = h.result("s1")
    assert result.status is ResultStatus.REJECTED
    assert (result.reason, result.detail) == (Reason.INVALID_SIGNAL, "SELL_ABOVE_LOTS")
    assert len(h.placed()) == 1
    h.executor.stop()


def test_manual_sell_with_partial_fills_is_exact_at_every_step():
    vault = make_vault()
    lot(vault, "L", 10_000, 1_000_000, 100)
    for filled in (300, 301, 700, 1_000):
        vault.apply_sell_fill(B, "S", ["L"], 1_000, filled, filled * 105, 1)
        a = vault.allocations["L"]
        assert a.holding_shares == 10_000 - filled
        assert a.used == 1_000_100 - 1_000_100 * filled // 10_000
        assert vault.check_invariants() == []
    assert vault.acc_alpha[B] == 1_000 * 105 - 1_000_100 // 10 - 1


# ----------------------------------------------------------------------------- 10.2 odd lots


def test_two_lot_sell_filled_700_leaves_the_books_equal_to_the_venue():
    vault = make_vault()
    lot(vault, "L1", 1_000, 110_000)
    lot(vault, "L2", 500, 55_000)
    vault.apply_sell_fill(B, "S", ["L1", "L2"], 1_500, 700, 77_700, 0)
    left = [vault.allocations[c].holding_shares for c in ("L1", "L2")]
    assert sum(left) == 800  # the venue holds 1,500 - 700
    assert left == [500, 300]  # whole board lots wherever the holdings allow
    assert vault.check_invariants() == []


def test_the_grid_splits_a_partial_sell_exactly_as_the_vault_does():
    lots = (Lot("L1", 1_000, Decimal(1100), 1.1, OPEN, 1, 0), Lot("L2", 500, Decimal(550), 1.1, OPEN, 2, 0))
    order = PendingOrder("S", SELL, 1110, 1_500, ("L1", "L2"), "TAKE_PROFIT", 0, None, 0, None, None)
    state = GridState("512890.SH", lots=lots, orders=(order,))
    after = apply_fill(state, "S", 700, Decimal("1.11"), True)
    assert [(x.client_order_id, x.shares) for x in after.lots] == [("L1", 500), ("L2", 300)]


@given(
    holdings=st.lists(st.integers(0, 20_000), min_size=1, max_size=6),
    data=st.data(),
)
def test_split_shares_never_loses_or_invents_a_share(holdings, data):
    n = data.draw(st.integers(0, sum(holdings)))
    parts = split_shares(n, holdings)
    assert sum(parts) == n
    assert all(0 <= p <= h for p, h in zip(parts, holdings, strict=True))
    assert split_shares(n, holdings) == parts


def test_an_odd_remainder_sells_whole_and_a_wrong_odd_quantity_is_refused(tmp_path):
    h = Harness(tmp_path, paper_config(partial_fill_ratio=1.0))
    state = h.executor.state
    for rec in (
        {"k": "alloc", "sym": B, "amt": 115_500, "layer": 1, "coid": "odd", "shares": 1_050, "fee": 12,
         "decision": "APPROVED", "t": T},
    ):
        state.apply(rec)
    state.vault.on_fill(B, "odd", 1_050, 115_500, 12)
    state.vault.on_cancel(B, "odd")
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1))
    h.send(signal_id="s-odd", direction="SELL", price=1.099, shares=1_030, release_client_order_ids=["odd"])
    h.send(signal_id="s-all", direction="SELL", price=1.099, shares=1_050, release_client_order_ids=["odd"])
    h.turn()
    assert h.result("s-odd").detail == "LOT_SIZE"
    assert h.result("s-all").status is not ResultStatus.REJECTED
    h.executor.stop()


def test_a_partial_sell_keeping_the_odd_remainder_is_allowed_in_round_lots(tmp_path):
    vault = make_vault()
    lot(vault, "odd", 1_050, 115_500)
    assert vault.sell_problem(B, ["odd"], 1_000, 100) is None
    assert vault.sell_problem(B, ["odd"], 150, 100) is None  # the whole odd 50 goes in this one order
    assert vault.sell_problem(B, ["odd"], 130, 100)[0] == "LOT_SIZE"
    assert vault.sell_problem(B, ["odd"], 1_100, 100)[0] == "SELL_ABOVE_LOTS"
    assert vault.sell_problem(B, ["odd", "odd"], 2_100, 100)[0] == "RELEASE_DUPLICATE"  # never counted twice
    assert vault.sell_problem(B, [], 150, 100)[0] == "LOT_SIZE"  # no lot named: whole lots only
    assert vault.sell_problem(B, [], 200, 100) is None


# ------------------------------------------------------------------ 10.3 first layer from the vault


def test_a_buy_claiming_a_deep_layer_with_no_open_lot_is_held_to_the_reserve():
    vault = make_vault()
    assert vault.request_allocation(A, 20_000_000, 3, "a-deep", 10_000) is VaultDecision.APPROVED
    # 200,000 committed on 159201; 512890 has no lot: its buy is a first layer whatever it claims
    assert vault.request_allocation(B, 6_000_000, 4, "b-claims-4") is VaultDecision.POOL_RESERVE_15
    assert vault.request_allocation(B, 5_500_000, 4, "b-fits") is VaultDecision.APPROVED
    # now 512890 has a pending lot: a deeper layer may use the reserve
    assert vault.request_allocation(B, 2_000_000, 5, "b-deeper") is VaultDecision.APPROVED


def test_a_symbol_whose_lots_are_all_sold_starts_again_at_a_first_layer():
    vault = make_vault()
    lot(vault, "old", 1_000, 100_000, symbol=B)
    vault.apply_sell_fill(B, "s", ["old"], 1_000, 1_000, 101_000, 0)
    assert vault.is_first_layer(B)
    vault.request_allocation(A, 20_000_000, 2, "a")
    assert vault.request_allocation(B, 6_000_000, 7, "b") is VaultDecision.POOL_RESERVE_15


# -------------------------------------------------------------------------------------- 10.4 fees


def test_frozen_holds_the_fee_estimate_and_used_the_buy_fees():
    vault = make_vault(fee=FeeModel(Decimal("0.0001"), 500))  # at least 5.00
    assert vault.request_allocation(B, 1_100_000, 1, "b", 10_000, fee_fen=500) is VaultDecision.APPROVED
    assert vault.get_frozen_map()[B] == 1_100_500
    vault.on_fill(B, "b", 10_000, 1_099_000, 500)
    assert vault.get_used_map()[B] == 1_099_500
    assert vault.get_frozen_map()[B] == 0


def test_committed_cannot_pass_the_pool_by_the_fees():
    vault = make_vault()
    assert vault.request_allocation(A, 19_998_000, 2, "a", fee_fen=2_000) is VaultDecision.APPROVED
    assert vault.request_allocation(A, 1, 3, "a-cap") is VaultDecision.NOMINAL_CAP  # 200,000 with the fee
    assert vault.request_allocation(B, 100, 1, "b-open") is VaultDecision.APPROVED  # deeper layers may now
    # 200,001 committed: a 99,999 buy fits the pool only without its fee
    assert vault.request_allocation(B, 9_999_900, 2, "b1", fee_fen=1_000) is VaultDecision.POOL_EXHAUSTED
    assert vault.request_allocation(B, 9_998_900, 2, "b2", fee_fen=1_000) is VaultDecision.APPROVED
    assert vault.committed() == 30_000_000


def test_buy_fills_count_their_fees_as_used_through_the_executor(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="b1", price=1.100, shares=1_000, layer_index=1)
    h.turn()
    pool = h.pool()
    assert pool.used_512890 == Decimal("1100.11")  # 1,100.00 + 0.11 commission
    h.executor.stop()


def _state(fee: FeeModel) -> ExecutorState:
    state = ExecutorState(make_vault(fee=fee))
    for rec in (
        {"k": "signal", "id": "b", "h": "x", "sig": {"client_order_id": "b", "code": B, "direction": "BUY",
                                                    "shares": 10_000}, "t": T},
        {"k": "alloc", "sym": B, "amt": 1_100_000, "layer": 1, "coid": "b", "shares": 10_000, "fee": 500,
         "decision": "APPROVED", "t": T},
        {"k": "intent", "id": "b", "coid": "b", "code": B, "side": "BUY", "shares": 10_000, "price": "1.100",
         "release": [], "t": T},
        {"k": "sent", "coid": "b", "status": "SENT", "boid": "1", "t": T},
    ):
        state.apply(rec)
    return state


def test_a_zero_commission_is_estimated_then_reconciled_with_the_brokers_figure():
    state = _state(FeeModel(Decimal("0.0001"), 500))
    state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 10_000, "value": 1_100_000, "fees": 0,
                 "t": T})
    a = state.vault.allocations["b"]
    assert (a.buy_fees, a.fees_estimated) == (500, True)  # max(0.01%, 5.00)
    assert state.vault.get_used_map()[B] == 1_100_500
    state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 10_000, "value": 1_100_000, "fees": 330,
                 "t": T})
    assert (a.buy_fees, a.fees_estimated) == (330, False)
    assert state.vault.get_used_map()[B] == 1_100_330
    assert state.vault.check_invariants() == []


def test_a_sell_fee_estimate_is_reconciled_into_alpha():
    state = _state(FeeModel(Decimal("0.0001"), 500))
    state.apply({"k": "update", "coid": "b", "state": "FILLED", "filled": 10_000, "value": 1_100_000, "fees": 330,
                 "t": T})
    for rec in (
        {"k": "signal", "id": "s", "h": "y", "sig": {"client_order_id": "s", "code": B, "direction": "SELL",
                                                    "shares": 10_000}, "t": T},
        {"k": "intent", "id": "s", "coid": "s", "code": B, "side": "SELL", "shares": 10_000, "price": "1.110",
         "release": ["b"], "t": T},
        {"k": "sent", "coid": "s", "status": "SENT", "boid": "2", "t": T},
        {"k": "update", "coid": "s", "state": "FILLED", "filled": 10_000, "value": 1_110_000, "fees": 0, "t": T},
    ):
        state.apply(rec)
    assert state.vault.acc_alpha[B] == 1_110_000 - 1_100_330 - 500
    assert state.vault.sells["s"].fees_estimated
    state.apply({"k": "update", "coid": "s", "state": "FILLED", "filled": 10_000, "value": 1_110_000, "fees": 333,
                 "t": T})
    assert state.vault.acc_alpha[B] == 1_110_000 - 1_100_330 - 333
    assert state.vault.committed() == 0


def test_a_buy_fee_reconciled_after_the_lot_was_sold_moves_alpha_not_used():
    vault = make_vault()
    vault.request_allocation(B, 1_100_000, 1, "b", 10_000, fee_fen=110)
    vault.on_fill(B, "b", 10_000, 1_100_000, 500, fees_estimated=True)
    vault.apply_sell_fill(B, "s", ["b"], 10_000, 10_000, 1_110_000, 111)
    assert vault.acc_alpha[B] == 1_110_000 - 1_100_500 - 111
    vault.on_fill(B, "b", 10_000, 1_100_000, 110)
    assert vault.acc_alpha[B] == 1_110_000 - 1_100_110 - 111
    assert vault.committed() == 0
    assert vault.check_invariants() == []


# ------------------------------------------------------------------------ replay of old journals


def test_an_old_journal_whose_verdict_the_new_rules_would_change_still_replays():
    """Journals written before fees and the first-layer rule: the journaled verdict of a sent order stands."""
    state = ExecutorState(make_vault())
    state.apply({"k": "alloc", "sym": A, "amt": 20_000_000, "layer": 3, "coid": "a", "shares": 100_000,
                 "decision": "APPROVED", "t": T})
    # approved by the old rules (layer 4 skipped the reserve); the new rules would say POOL_RESERVE_15
    state.apply({"k": "alloc", "sym": B, "amt": 6_000_000, "layer": 4, "coid": "b", "shares": 50_000,
                 "decision": "APPROVED", "t": T})
    assert state.vault.allocations["b"].frozen == 6_000_000
    assert state.vault.replay_notes  # said, not hidden
    with pytest.raises(RuntimeError, match="diverged"):  # a new-format record must still reproduce
        state.apply({"k": "alloc", "sym": B, "amt": 5_000_000, "layer": 1, "coid": "c", "shares": 1,
                     "fee": 0, "decision": "APPROVED", "t": T})


# ------------------------------------------------------------------------------ 10.16 utilisation


def test_one_utilisation_function_over_exact_amounts_turns_the_penalty_on_at_270000_01():
    committed_fen, pool_fen = 27_000_001, 30_000_000
    u = utilization(committed_fen, pool_fen)
    assert u == utilization(Decimal("270000.01"), Decimal("300000"))
    assert penalty_after(False, u, 0.90, 0.85)
    assert PoolView.of(committed_fen, pool_fen).utilization == u
    assert make_vault().utilization() == 0.0
    assert not penalty_after(False, utilization(27_000_000, pool_fen), 0.90, 0.85)


def test_the_published_pool_and_the_vault_use_the_exact_utilisation(tmp_path):
    h = Harness(tmp_path, paper_config(initial_cash="5000000"))
    vault = h.executor.state.vault
    assert vault.request_allocation(A, 20_000_000, 1, "x") is VaultDecision.APPROVED
    assert vault.request_allocation(B, 5_500_000, 1, "y") is VaultDecision.APPROVED
    assert vault.request_allocation(B, 1_500_001, 2, "z") is VaultDecision.APPROVED
    h.executor.publish(force=True)
    pool = h.pool()
    assert pool.utilization == utilization(27_000_001, 30_000_000) == vault.utilization()
    assert pool.utilization > 0.9
    h.executor.stop()


def test_the_dashboard_reads_utilisation_from_the_exact_amounts_not_the_rounded_field():
    import pandas as pd

    from mac.dashboard.analysis import analyse_penalty
    from mac.dashboard.live import Memory
    from mac.dashboard.view_models import PoolSummary
    from shared_schema.models import PoolFile

    pool = PoolFile(
        seq=1, updated_at=SESSION_TIME, physical_pool=Decimal(300000), reserve_ratio=Decimal("0.15"),
        nominal_cap_159201=Decimal(200000), nominal_cap_512890=Decimal(200000), used_159201=Decimal("200000"),
        used_512890=Decimal("70000.01"), frozen_159201=Decimal(0), frozen_512890=Decimal(0),
        acc_alpha_159201=Decimal(0), acc_alpha_512890=Decimal(0), utilization=0.9,  # a rounded publisher
    )
    summary = PoolSummary.of(pool)
    assert summary.utilization == utilization(27_000_001, 30_000_000)
    empty = pd.DataFrame(columns=["t", "utilization", "penalty_on"])
    assert analyse_penalty(B, empty, 0.90, 0.85, None, summary.utilization).next_on is True
    memory = Memory()
    memory.record_pool(pool)
    assert memory.pool_points[-1].utilization == summary.utilization


def test_two_lot_sell_filled_700_through_the_executor_leaves_books_equal_to_the_venue(tmp_path):
    h = Harness(tmp_path)
    h.send(signal_id="L1", price=1.100, shares=1_000, layer_index=0)
    h.send(signal_id="L2", price=1.100, shares=500 + 500, layer_index=1)
    h.turn()
    # L2 holds 500: sell half of it first, so the two lots are 1,000 + 500 as in the report
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1))
    h.send(signal_id="trim", direction="SELL", price=1.099, shares=500, release_client_order_ids=["L2"])
    h.turn()
    assert h.result("trim").status is ResultStatus.FILLED
    h.broker.config = h.broker.config.model_copy(update={"partial_fill_ratio": 1.0})
    h.send(signal_id="S", direction="SELL", price=1.099, shares=1_500, release_client_order_ids=["L1", "L2"])
    h.turn()
    assert h.result("S").filled_shares == 700  # the venue filled 7 of 15 board lots
    h.publish_quotes(when=SESSION_TIME + timedelta(days=1, seconds=h.config.executor.max_order_age_s + 1),
                     **{"512890_SH": 1.0})  # out of reach; the order ages out and is cancelled
    h.turn(2)
    assert h.result("S").status is ResultStatus.CANCELLED
    held = {a.client_order_id: a.filled_shares - a.released_shares for a in h.pool().allocations_512890}
    assert held == {"L1": 500, "L2": 300}
    venue = h.broker.book.positions["512890.SH"].volume - 100_000  # less the base position
    assert sum(held.values()) == venue == 800
    h.executor.stop()


def test_a_venue_reporting_no_commission_gets_the_estimate_marked_in_the_pool_file(tmp_path):
    h = Harness(tmp_path, paper_config(commission_rate="0"))  # the venue reports commission 0
    h.send(signal_id="b1", price=1.100, shares=1_000, layer_index=1)
    h.turn()
    pool = h.pool()
    assert pool.used_512890 == Decimal("1100.11")  # 1,100.00 + the configured model's 0.11
    (alloc,) = pool.allocations_512890
    assert alloc.fees_estimated and alloc.fees == Decimal("0.11")
    h.executor.stop()
