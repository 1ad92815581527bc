"""Signed position ledger: WAC on both sides, flips through zero, fees, funding booked once, equity."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.oms.account import weighted_liq_distance
from core.oms.ledger import (
    FundingBill,
    LedgerError,
    LedgerFill,
    MarginLedger,
    apply_fill,
    apply_transfer,
    book_funding,
    funding_amount,
    mark_position,
    settle_funding,
    to_account_state,
)

D = Decimal
BTC = "BTC/USDT:USDT"


def fill(fid: str, qty: str, price: str, fee: str = "0", symbol: str = BTC) -> LedgerFill:
    return LedgerFill(fid, symbol, D(qty), D(price), D(fee))


def run(ledger: MarginLedger, *fills: LedgerFill) -> MarginLedger:
    for f in fills:
        ledger = apply_fill(ledger, f).ledger
    return ledger


def test_long_wac_partial_close_realises_at_wac() -> None:
    led = run(MarginLedger(D(1000)), fill("1", "1", "100", "0.1"), fill("2", "1", "110", "0.1"))
    pos = led.position(BTC)
    assert pos.qty == 2 and pos.entry == D(105) and led.wallet == D("999.8")
    res = apply_fill(led, fill("3", "-0.5", "120", "0.05"))
    assert res.effect.closed_qty == D("0.5") and res.effect.realised == D("7.5")
    pos = res.ledger.position(BTC)
    assert pos.qty == D("1.5") and pos.entry == D(105)
    assert res.ledger.wallet == D("999.8") + D("7.5") - D("0.05")


def test_short_profits_when_price_falls_and_equity_is_wallet_plus_pnl() -> None:
    led = run(MarginLedger(D(1000)), fill("1", "-2", "100"))
    pos = led.position(BTC)
    assert pos.qty == -2 and pos.cost == D(-200) and pos.entry == D(100)
    led = mark_position(led, BTC, D(90))
    assert led.position(BTC).unrealised_pnl == D(20)
    # A perp is valued by its PnL: equity is 1020, not 1000 + (-2 x 90).
    assert led.equity == D(1020)
    res = apply_fill(led, fill("2", "1", "95"))
    assert res.effect.realised == D(5) and res.ledger.position(BTC).entry == D(100)


def test_flip_through_zero_closes_whole_basis_then_opens_at_fill_price() -> None:
    led = run(MarginLedger(D(0)), fill("1", "1", "100"), fill("2", "1", "120"))
    res = apply_fill(led, fill("3", "-3", "130", "0.3"))
    e = res.effect
    assert e.flipped and e.closed_qty == 2 and e.opened_qty == 1 and e.realised == D(40)
    pos = res.ledger.position(BTC)
    assert pos.qty == -1 and pos.cost == D(-130) and pos.entry == D(130)
    assert res.ledger.wallet == D(40) - D("0.3")


def test_full_close_leaves_exactly_zero_basis_with_odd_prices() -> None:
    led = run(MarginLedger(), fill("1", "3", "100.01"), fill("2", "-1", "99.97"), fill("3", "-1", "100.03"))
    led = run(led, fill("4", "-1", "101"))
    pos = led.position(BTC)
    assert pos.qty == 0 and pos.cost == 0 and pos.unrealised_pnl == 0


def test_duplicate_fill_changes_nothing() -> None:
    led = run(MarginLedger(D(100)), fill("1", "1", "100", "0.1"))
    again = apply_fill(led, fill("1", "1", "100", "0.1"))
    assert again.effect.duplicate and again.ledger == led


@pytest.mark.parametrize(
    ("bad", "code"),
    [(fill("x", "0", "100"), "LEDGER_BAD_FILL"), (fill("x", "1", "0"), "LEDGER_BAD_FILL"),
     (fill("", "1", "100"), "LEDGER_NO_KEY")],
    ids=["zero-qty", "zero-px", "no-id"],
)
def test_bad_fill_refused_with_a_code(bad: LedgerFill, code: str) -> None:
    with pytest.raises(LedgerError) as err:
        apply_fill(MarginLedger(), bad)
    assert err.value.code == code


def test_bad_bill_transfer_and_mark_refused_with_a_code() -> None:
    for call, code in [
        (lambda: book_funding(MarginLedger(), FundingBill("", BTC, D(1), 1)), "LEDGER_NO_KEY"),
        (lambda: apply_transfer(MarginLedger(), "", D(1)), "LEDGER_NO_KEY"),
        (lambda: mark_position(MarginLedger(), BTC, D(0)), "LEDGER_BAD_MARK"),
    ]:
        with pytest.raises(LedgerError) as err:
            call()
        assert err.value.code == code


def test_funding_once_per_bill_and_per_settlement_across_partial_exit_and_added_entry() -> None:
    led = run(MarginLedger(D(1000)), fill("1", "2", "100"))
    # Positive rate: the long pays -2 x 100 x 0.0001 = -0.02.
    assert funding_amount(D(2), D(100), D("0.0001")) == D("-0.0200")
    first = settle_funding(led, BTC, D("0.0001"), D(100), 1_000)
    assert first.booked and first.amount == D("-0.02")
    led = first.ledger
    led = run(led, fill("2", "-1", "101"))  # partial exit
    led = run(led, fill("3", "3", "102"))  # added entry
    # The same settlement again (a restart, the venue's bill for it) books nothing.
    assert not settle_funding(led, BTC, D("0.0001"), D(100), 1_000).booked
    assert not book_funding(led, FundingBill("okx-1", BTC, D("-0.02"), 1_000)).booked
    nxt = book_funding(led, FundingBill("okx-2", BTC, D("-0.0408"), 2_000))
    assert nxt.booked
    assert not book_funding(nxt.ledger, FundingBill("okx-2", BTC, D("-0.0408"), 3_000)).booked
    led = nxt.ledger
    assert led.position(BTC).funding == D("-0.0608") == led.funding_total
    assert led.wallet == D(1000) + D(1) - D("0.0608")  # realised 1 on the partial exit


def test_flat_position_pays_no_funding() -> None:
    res = settle_funding(MarginLedger(D(5)), BTC, D("0.01"), D(100), 1)
    assert not res.booked and res.ledger.wallet == 5


def test_transfer_once_and_account_state_for_the_risk_kernel() -> None:
    led = apply_transfer(MarginLedger(), "t1", D(500))
    assert apply_transfer(led, "t1", D(500)) == led
    led = run(led, fill("1", "1", "100"), fill("2", "-10", "10", symbol="ETH/USDT:USDT"))
    led = mark_position(led, BTC, D(90), liq=D(70))
    led = mark_position(led, "ETH/USDT:USDT", D(11), liq=D(15))
    acct = to_account_state(led, peak_equity=D(600))
    assert acct.equity == D(500) - D(10) - D(10) == led.equity
    assert acct.peak_equity == 600 and acct.cash == 500
    assert set(acct.positions) == {BTC, "ETH/USDT:USDT"}
    assert acct.liq_distance_pct == weighted_liq_distance(acct.positions.values(), D("0.95"))


prices = st.decimals(min_value=D("0.01"), max_value=D(100_000), places=2)
qtys = st.decimals(min_value=D("0.001"), max_value=D(50), places=3)
fees = st.decimals(min_value=D("-0.5"), max_value=D(5), places=4)  # maker rebates are negative
rates = st.decimals(min_value=D("-0.003"), max_value=D("0.003"), places=6)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), st.booleans(), qtys, prices, fees),
        st.tuples(st.just("funding"), st.integers(0, 5), rates, prices),
        st.tuples(st.just("bill"), st.integers(0, 8), st.integers(0, 5), fees),
        st.tuples(st.just("transfer"), st.integers(0, 3), fees),
        st.tuples(st.just("replay"), st.integers(0, 100)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300)
@given(ops, prices)
def test_ledger_conserves_money_exactly_and_books_each_key_once(script: list[tuple], close_px: Decimal) -> None:
    led = MarginLedger(D(10_000))
    traded = fees_paid = funding = D(0)
    seen: list[LedgerFill] = []
    bills: dict[int, Decimal] = {}
    bill_ids: set[int] = set()
    transfers: dict[int, Decimal] = {}
    for n, op in enumerate(script):
        if op[0] == "fill":
            _, buy, q, px, fee = op
            f = LedgerFill(f"f{n}", BTC, q if buy else -q, px, fee)
            before = led.position(BTC)
            res = apply_fill(led, f)
            led, e = res.ledger, res.effect
            seen.append(f)
            traded += f.qty * px
            fees_paid += fee
            after = led.position(BTC)
            assert e.closed_qty + e.opened_qty == q
            assert e.flipped == (before.qty != 0 and after.qty != 0 and (before.qty > 0) != (after.qty > 0))
            if e.opened_qty and not e.closed_qty and before.qty:
                # Adding: the new WAC lies between the old entry and the fill price.
                lo, hi = sorted((before.entry, px))
                assert lo <= after.entry <= hi
            if e.closed_qty and not e.opened_qty and after.qty:
                assert after.entry == before.entry or abs(after.entry - before.entry) < D("1e-6")
        elif op[0] == "funding":
            _, slot, rate, mark = op
            res = settle_funding(led, BTC, rate, mark, slot)
            if res.booked:
                assert slot not in bills
                bills[slot] = res.amount
                funding += res.amount
            led = res.ledger
        elif op[0] == "bill":
            # The venue's bill: once per id and once per settlement, whichever was booked first.
            _, bid, slot, amount = op
            res = book_funding(led, FundingBill(f"b{bid}", BTC, amount, slot))
            assert res.booked == (bid not in bill_ids and slot not in bills)
            if res.booked:
                bill_ids.add(bid)
                bills[slot] = amount
                funding += amount
            led = res.ledger
        elif op[0] == "transfer":
            _, tid, amount = op
            led = apply_transfer(led, f"t{tid}", amount)
            transfers.setdefault(tid, amount)
        else:
            if seen:
                again = apply_fill(led, seen[op[1] % len(seen)])
                assert again.effect.duplicate and again.ledger == led
        pos = led.position(BTC)
        # WAC invariants: the basis has the position's sign and is exactly 0 when flat.
        assert (pos.qty == 0 and pos.cost == 0) or (pos.qty > 0) == (pos.cost > 0)
        # Exact conservation: wallet - basis = start - signed traded value - fees + funding + transfers.
        # Realised PnL is the traded value not still held as basis: realised = basis - signed traded value.
        assert led.realised_total == pos.cost - traded
        moved = sum(transfers.values(), D(0))
        assert led.wallet - pos.cost == D(10_000) - traded - fees_paid + funding + moved
    assert led.funding_total == sum(bills.values(), D(0)) == funding
    # Closing everything at any price realises exactly the cash-like PnL.
    pos = led.position(BTC)
    if pos.qty:
        led = apply_fill(led, LedgerFill("close", BTC, -pos.qty, close_px)).ledger
        traded += -pos.qty * close_px
    assert led.position(BTC).cost == 0
    assert led.wallet == D(10_000) - traded - fees_paid + funding + sum(transfers.values(), D(0))
    assert led.equity == led.wallet
