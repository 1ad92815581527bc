from decimal import Decimal

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared_schema.models import AllocationState
from windows.vault import FeeModel, GlobalVault, VaultDecision, VaultLimits

A, B = "159201.SZ", "512890.SH"


def make_vault(pool="300000", cap="200000", reserve="0.15") -> GlobalVault:
    return GlobalVault(
        VaultLimits.from_yuan(Decimal(pool), {A: Decimal(cap), B: Decimal(cap)}, Decimal(reserve))
    )


def yuan(x: int) -> int:
    return x * 100


def test_grant_freezes_the_amount():
    vault = make_vault()
    assert vault.request_allocation(A, yuan(20000), 1, "c1", 1000) is VaultDecision.APPROVED
    assert vault.get_frozen_map()[A] == yuan(20000)
    assert vault.get_used_map()[A] == 0


def test_partial_fill_moves_only_the_filled_part():
    vault = make_vault()
    vault.request_allocation(A, yuan(10000), 1, "c1", 1000)
    vault.on_fill(A, "c1", 400, yuan(3996), 40)
    assert vault.get_used_map()[A] == yuan(3996) + 40  # used is cash out: fill value plus buy fees
    assert vault.get_frozen_map()[A] == yuan(6000)
    assert vault.allocations["c1"].state is AllocationState.PARTIAL


def test_cancel_after_partial_releases_what_is_still_frozen():
    vault = make_vault()
    vault.request_allocation(A, yuan(10000), 1, "c1", 1000)
    vault.on_fill(A, "c1", 400, yuan(4000))
    vault.on_cancel(A, "c1")
    assert vault.get_frozen_map()[A] == 0
    assert vault.get_used_map()[A] == yuan(4000)
    assert vault.allocations["c1"].state is AllocationState.USED


def test_cancel_with_nothing_filled_returns_everything():
    vault = make_vault()
    vault.request_allocation(A, yuan(10000), 1, "c1", 1000)
    vault.on_cancel(A, "c1")
    assert vault.committed() == 0
    assert vault.allocations["c1"].state is AllocationState.CANCELLED


def test_nominal_cap_refuses_above_200k_per_symbol():
    vault = make_vault()
    assert vault.request_allocation(A, yuan(150000), 1, "c1") is VaultDecision.APPROVED
    assert vault.request_allocation(A, yuan(50001), 2, "c2") is VaultDecision.NOMINAL_CAP
    assert vault.request_allocation(A, yuan(50000), 2, "c3") is VaultDecision.APPROVED


def test_pool_exhausted_refuses_above_300k_total():
    vault = make_vault()
    vault.request_allocation(A, yuan(200000), 1, "c1")
    vault.request_allocation(B, yuan(50000), 1, "c2")  # B's first layer: within pool x 0.85
    vault.request_allocation(B, yuan(40000), 1, "c2b")  # B has a pending lot now: may use the reserve
    assert vault.request_allocation(B, yuan(10001), 2, "c3") is VaultDecision.POOL_EXHAUSTED
    assert vault.request_allocation(B, yuan(10000), 2, "c4") is VaultDecision.APPROVED


def test_layer0_refused_when_reserve_would_break():
    vault = make_vault()
    vault.request_allocation(A, yuan(200000), 3, "c1")
    vault.request_allocation(B, yuan(50000), 3, "c2")
    # 250,000 committed; pool x 0.85 = 255,000
    assert vault.request_allocation(B, yuan(5001), 0, "c3") is VaultDecision.POOL_RESERVE_15
    assert vault.request_allocation(B, yuan(5000), 0, "c4") is VaultDecision.APPROVED
    # deeper layers may use the reserve
    assert vault.request_allocation(B, yuan(10000), 1, "c5") is VaultDecision.APPROVED


def test_request_is_idempotent_by_client_order_id():
    vault = make_vault()
    assert vault.request_allocation(A, yuan(1000), 1, "c1") is VaultDecision.APPROVED
    assert vault.request_allocation(A, yuan(1000), 1, "c1") is VaultDecision.APPROVED
    assert vault.committed() == yuan(1000)
    vault.request_allocation(A, yuan(300000), 1, "big")
    assert vault.request_allocation(A, yuan(1), 1, "big") is VaultDecision.NOMINAL_CAP


def test_release_frees_the_cost_basis_not_market_value_and_books_alpha():
    vault = make_vault()
    vault.request_allocation(B, yuan(11000), 1, "c1", 10000)
    vault.on_fill(B, "c1", 10000, yuan(10990), 110)
    assert vault.apply_sell_fill(B, "s1", ["c1"], 10000, 10000, yuan(11100), 111) is True
    assert vault.committed() == 0
    assert vault.acc_alpha[B] == yuan(11100) - yuan(10990) - 110 - 111
    assert vault.apply_sell_fill(B, "s1", ["c1"], 10000, 10000, yuan(11100), 111) is False  # idempotent


def test_partial_sell_releases_pro_rata_and_full_sell_leaves_no_leak():
    vault = make_vault()
    vault.request_allocation(B, yuan(3333), 1, "L1", 3000)
    vault.on_fill(B, "L1", 3000, 333333, 33)
    vault.request_allocation(B, yuan(1000), 2, "L2", 1000)
    vault.on_fill(B, "L2", 1000, 100001, 10)
    vault.apply_sell_fill(B, "S1", ["L1", "L2"], 4000, 1000, 110000, 11)
    # quotas 750 / 250 in board lots: 700 / 200, the last lot of 100 to the larger remainder (tie: first)
    assert vault.allocations["L1"].released_shares == 800
    assert vault.allocations["L2"].released_shares == 200
    vault.apply_sell_fill(B, "S1", ["L1", "L2"], 4000, 1000, 110000, 11)  # duplicate report
    assert vault.allocations["L1"].released_shares == 800
    vault.apply_sell_fill(B, "S1", ["L1", "L2"], 4000, 4000, 440000, 44)
    assert vault.committed() == 0
    assert vault.acc_alpha[B] == 440000 - 333333 - 100001 - 33 - 10 - 44
    assert vault.check_invariants() == []


# ------------------------------------------------------------------------------------- property test


class VaultMachine(RuleBasedStateMachine):
    """Random sequences of grants (with fee reserves), fills of any size (duplicated, stale, with the broker's
    fees or an estimate later reconciled), cancels, and sells of any size (partial, odd, partly filled then
    cancelled, with estimated then reconciled fees) keep every ledger rule after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.vault = make_vault()
        self.vault.fee_model = FeeModel(Decimal("0.0001"), 500)
        self.n = 0
        self.buys: dict[str, tuple[str, int, int]] = {}  # coid -> (symbol, shares, price_milli)
        self.fills: dict[str, int] = {}
        self.done: set[str] = set()
        self.sells: dict[str, tuple[str, tuple[str, ...], int, int, int]] = {}  # id -> (sym, lots, total, filled, px)

    def _fee(self, value: int) -> int:
        return self.vault.fee_model.estimate_fen(value)

    @rule(
        symbol=st.sampled_from([A, B]),
        lots=st.integers(1, 400),
        price_milli=st.integers(800, 1500),
        layer=st.integers(0, 8),
        with_fee=st.booleans(),
    )
    def request(self, symbol, lots, price_milli, layer, with_fee):
        self.n += 1
        coid = f"b{self.n}"
        shares = lots * 100
        amount = price_milli * shares // 10
        fee = self._fee(amount) if with_fee else 0
        before = self.vault.committed()
        first = layer == 0 or not any(
            a.symbol == symbol and (a.frozen > 0 or a.holding_shares > 0) for a in self.vault.allocations.values()
        )
        decision = self.vault.request_allocation(symbol, amount, layer, coid, shares, fee)
        if decision is VaultDecision.APPROVED:
            self.buys[coid] = (symbol, shares, price_milli)
            self.fills[coid] = 0
            assert before + amount + fee <= self.vault.limits.physical_pool
            if first:  # the reserve is never broken at approval time, whatever layer_index claims
                assert before + amount + fee <= self.vault.limits.reserve_floor_fen
            assert self.vault.get_frozen_map()[symbol] >= amount + fee

    @precondition(lambda self: any(c not in self.done for c in self.buys))
    @rule(data=st.data(), dup=st.booleans(), estimated=st.booleans())
    def fill(self, data, dup, estimated):
        open_ids = sorted(c for c in self.buys if c not in self.done)
        coid = data.draw(st.sampled_from(open_ids))
        symbol, shares, price = self.buys[coid]
        filled = data.draw(st.integers(self.fills[coid], shares))  # any size: odd partial fills happen
        value = price * filled // 10
        fees = self._fee(value) if estimated else filled // 50
        self.vault.on_fill(symbol, coid, filled, value, fees, estimated)
        if dup:
            self.vault.on_fill(symbol, coid, filled, value, fees, estimated)
            self.vault.on_fill(symbol, coid, max(0, filled - 100), value, 0)  # stale, out of order
        self.fills[coid] = max(self.fills[coid], filled)
        if filled == shares:
            self.done.add(coid)

    @precondition(lambda self: any(a.fees_estimated for a in self.vault.allocations.values()))
    @rule(data=st.data())
    def reconcile_buy_fee(self, data):
        coid = data.draw(st.sampled_from(sorted(c for c, a in self.vault.allocations.items() if a.fees_estimated)))
        a = self.vault.allocations[coid]
        actual = data.draw(st.integers(1, 2_000))
        self.vault.on_fill(a.symbol, coid, a.filled_shares, a.filled_value, actual)
        assert (a.buy_fees, a.fees_estimated) == (actual, False)

    @precondition(lambda self: any(c not in self.done for c in self.buys))
    @rule(data=st.data())
    def cancel(self, data):
        coid = data.draw(st.sampled_from(sorted(c for c in self.buys if c not in self.done)))
        self.vault.on_cancel(self.buys[coid][0], coid)
        self.vault.on_cancel(self.buys[coid][0], coid)
        self.done.add(coid)

    @precondition(lambda self: any(a.holding_shares > 0 for a in self.vault.allocations.values()))
    @rule(data=st.data(), price_milli=st.integers(800, 1600), estimated=st.booleans())
    def sell(self, data, price_milli, estimated):
        lots = sorted(c for c, a in self.vault.allocations.items() if a.holding_shares > 0)
        symbol = self.vault.allocations[lots[0]].symbol
        mine = [c for c in lots if self.vault.allocations[c].symbol == symbol]
        chosen = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=3, unique=True))
        held = sum(self.vault.allocations[c].holding_shares for c in chosen)
        total = data.draw(st.integers(1, held))  # any size, odd or not, up to what the lots hold
        before = {c: self.vault.allocations[c].holding_shares for c in chosen}
        sell_id = f"s{len(self.sells) + 1}"
        steps = sorted(set(data.draw(st.lists(st.integers(1, total), max_size=3)) + [total]))
        if data.draw(st.booleans()):
            steps = steps[:-1] or [total]  # partially filled then cancelled
        for filled in steps:
            proceeds = price_milli * filled // 10
            fees = self._fee(proceeds) if estimated else filled // 100
            self.vault.apply_sell_fill(symbol, sell_id, chosen, total, filled, proceeds, fees, estimated)
            self.vault.apply_sell_fill(symbol, sell_id, chosen, total, filled, proceeds, fees, estimated)
        sold = steps[-1]
        after = {c: self.vault.allocations[c].holding_shares for c in chosen}
        assert sum(before.values()) - sum(after.values()) == sold  # no share lost or invented
        assert all(after[c] <= before[c] for c in chosen)
        self.sells[sell_id] = (symbol, tuple(chosen), total, sold, price_milli)

    @precondition(lambda self: any(s.fees_estimated for s in self.vault.sells.values()))
    @rule(data=st.data())
    def reconcile_sell_fee(self, data):
        sell_id = data.draw(st.sampled_from(sorted(k for k, s in self.vault.sells.items() if s.fees_estimated)))
        p = self.vault.sells[sell_id]
        alpha = self.vault.acc_alpha[p.symbol]
        actual = data.draw(st.integers(1, 2_000))
        old = p.fees
        self.vault.apply_sell_fill(p.symbol, sell_id, p.release_ids, p.total_shares, p.filled_shares, p.proceeds,
                                   actual)
        assert self.vault.acc_alpha[p.symbol] == alpha - (actual - old)

    @invariant()
    def ledger_holds(self):
        assert self.vault.check_invariants() == []
        used, frozen = self.vault.get_used_map(), self.vault.get_frozen_map()
        assert sum(used.values()) + sum(frozen.values()) == sum(
            a.used + a.frozen for a in self.vault.allocations.values()
        )
        assert all(v >= 0 for v in used.values()) and all(v >= 0 for v in frozen.values())
        for a in self.vault.allocations.values():
            assert a.used >= 0 and a.frozen >= 0 and a.holding_shares >= 0
        for code in (A, B):
            filled = sum(a.filled_shares for a in self.vault.allocations.values() if a.symbol == code)
            holding = sum(a.holding_shares for a in self.vault.allocations.values() if a.symbol == code)
            sold = sum(s.filled_shares for s in self.vault.sells.values() if s.symbol == code)
            assert filled == holding + sold  # shares conserved


TestVaultMachine = VaultMachine.TestCase
TestVaultMachine.settings = __import__("hypothesis").settings(
    max_examples=200, stateful_step_count=40, deadline=None
)


@pytest.mark.parametrize("reserve", ["0.15", "0.5", "0.3"])
def test_reserve_floor_follows_the_configured_ratio(reserve):
    vault = make_vault(reserve=reserve)
    floor = int(Decimal(30000000) * (1 - Decimal(reserve)))
    first = min(yuan(200000), floor)
    assert vault.request_allocation(A, first, 1, "deep") is VaultDecision.APPROVED
    room = floor - first
    if room:
        assert vault.request_allocation(B, room, 0, "fits") is VaultDecision.APPROVED
    assert vault.request_allocation(B, 1, 0, "one-fen-too-many") is VaultDecision.POOL_RESERVE_15
    # a deeper layer may use the reserve only when B has an open or pending lot ("fits") to deepen
    expected = VaultDecision.APPROVED if room else VaultDecision.POOL_RESERVE_15
    assert vault.request_allocation(B, 1, 1, "deeper-layer") is expected


def test_worked_example_in_docs_vault_md():
    """docs/vault.md, step by step (fee model 0.01%, no minimum)."""
    vault = make_vault()
    vault.fee_model = FeeModel(Decimal("0.0001"), 0)
    fee = vault.fee_model.estimate_fen
    # 1. BUY 159201 layer 0, amount 195,000 + fee reserve 19.50
    assert vault.request_allocation(A, yuan(195000), 0, "w1", 150000, fee(yuan(195000))) is VaultDecision.APPROVED
    assert vault.get_frozen_map()[A] == 19_501_950
    # 2. an odd partial fill: 100,050 @1.299 = 129,964.95, commission 13.00
    vault.on_fill(A, "w1", 100_050, 12_996_495, 1_300)
    assert (vault.get_used_map()[A], vault.get_frozen_map()[A]) == (12_997_795, 6_494_149)
    # 3. cancel the rest
    vault.on_cancel(A, "w1")
    assert vault.committed() == 12_997_795
    # 4. 512890 has no lot: a buy claiming layer 2 is a first layer
    assert vault.request_allocation(B, yuan(130000), 2, "w4", None, fee(yuan(130000))) is VaultDecision.POOL_RESERVE_15
    # 5. its real first layer fits under pool x 0.85
    assert vault.request_allocation(B, yuan(100000), 0, "w5", None, fee(yuan(100000))) is VaultDecision.APPROVED
    assert vault.committed() == 22_998_795
    # 6. fits the pool without its fee, not with it
    assert vault.check_allocation(B, 7_000_600, 1) is VaultDecision.APPROVED
    assert vault.request_allocation(B, 7_000_600, 1, "w6", None, fee(7_000_600)) is VaultDecision.POOL_EXHAUSTED
    # 7. 159201 would pass its nominal cap
    assert vault.request_allocation(A, yuan(75000), 3, "w7", None, fee(yuan(75000))) is VaultDecision.NOMINAL_CAP
    # 8. partial sell: 40,000 of the 100,050-share lot @1.320, fee 5.28
    vault.apply_sell_fill(A, "w8", ["w1"], 40_000, 40_000, yuan(52800), 528)
    lot = vault.allocations["w1"]
    assert (lot.holding_shares, lot.used, lot.released_cost) == (60_050, 7_801_276, 5_196_519)
    assert vault.acc_alpha[A] == 82_953
    # 9. the odd remainder sells whole, in one order; 60,030 would not
    assert vault.sell_problem(A, ["w1"], 60_030, 100)[0] == "LOT_SIZE"
    assert vault.sell_problem(A, ["w1"], 60_050, 100) is None
    vault.apply_sell_fill(A, "w9", ["w1"], 60_050, 60_050, 7_986_650, 799)
    assert (lot.holding_shares, lot.used, lot.state) == (0, 0, AllocationState.RELEASED)
    assert vault.acc_alpha[A] == 267_528
    assert vault.committed() == 10_001_000
    assert vault.check_invariants() == []
