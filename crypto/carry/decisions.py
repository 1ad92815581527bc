"""Pure carry decisions: open, close, rebalance, top-up, funding bookkeeping. No IO, no clock.

The live shell (``crypto.carry.shell``) and the backtest (``crypto.carry.backtest``) call these same
functions. Definitions (stated once, here and in ``docs/crypto.md``):

- **margin health** of a pair = the isolated short's margin balance (posted margin, including top-ups and
  the funding booked into it, plus its unrealised PnL) over the margin it had at opening. 100 % at the open;
  80 % is a 6.7 % rise of the mark at 3x (10 % at 2x); 0 % is about where the venue liquidates.
- **net PnL** of a pair = spot PnL at the spot price + perp PnL at the mark + funding booked - fees paid -
  the estimated taker fees of closing both legs now (+ realised PnL of any partial reduction). Take-profit
  and stop-loss compare it with the **capital committed** (spot cost + the short's opening margin).
- **net-of-fees test**: rate x horizon_periods must exceed both legs' round-trip taker fees, the slippage of
  four trades, and the basis cost (|perp/spot - 1| + a buffer), all as fractions of notional.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal

from crypto.carry.config import MAX_LEVERAGE, InstrumentConfig, RiskConfig, StrategyConfig

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True)
class PairBook:
    """What the engine holds in one pair. ``short_qty`` is the perp short's size (base units, >= 0)."""

    symbol: str
    spot_qty: Decimal = ZERO
    short_qty: Decimal = ZERO
    spot_entry: Decimal = ZERO
    perp_entry: Decimal = ZERO
    margin: Decimal = ZERO  # posted isolated margin: opening margin + top-ups + funding booked
    margin_at_open: Decimal = ZERO
    funding: Decimal = ZERO  # funding booked, signed (+ received)
    fees: Decimal = ZERO  # fees paid, positive
    realized: Decimal = ZERO  # realised PnL of reductions (rebalances), before fees
    capital_committed: Decimal = ZERO
    opened_ms: int = 0
    negative_streak: int = 0  # settlements in a row with a negative rate
    last_funding_ms: int = 0  # the last settlement booked: each is booked once
    topup_ids: tuple[str, ...] = ()

    @property
    def is_flat(self) -> bool:
        return self.spot_qty == 0 and self.short_qty == 0


@dataclass(frozen=True)
class MarketView:
    """What the engine sees of one pair at a decision time."""

    spot: Decimal  # spot price (ask when buying)
    mark: Decimal  # perp mark price
    rate: Decimal  # funding rate of the period (per settlement)
    interval_ms: int = 8 * 3_600_000


@dataclass(frozen=True)
class OpenContext:
    """Account-wide facts an open depends on, gathered by the caller."""

    has_position: bool = False
    emergency: bool = False
    reduce_only: bool = False  # the core risk state (exchange guard) forbids opening
    breaker_tripped: bool = False
    account_health: Decimal = ONE  # the lowest margin health of the other pairs (1 when none)
    spike: bool = False
    free_usdt: Decimal | None = None  # None = not checked (backtest: capital is the pair's own)


def margin_health(book: PairBook, mark: Decimal) -> Decimal:
    """Margin balance of the isolated short over its margin at opening (1 = 100 %)."""
    if book.margin_at_open <= 0:
        return ONE
    upnl = (book.perp_entry - mark) * book.short_qty
    return (book.margin + upnl) / book.margin_at_open


def disaster_stop_price(book: PairBook, health: Decimal, tick: Decimal) -> Decimal | None:
    """The mark at which the short's margin health falls to ``health``: entry + (margin - health x margin at
    open) / size, rounded up to the tick (a stop never sits below its line)."""
    if book.short_qty <= 0 or book.margin_at_open <= 0:
        return None
    price = book.perp_entry + (book.margin - health * book.margin_at_open) / book.short_qty
    return (price / tick).to_integral_value(rounding="ROUND_CEILING") * tick


def liquidation_price(book: PairBook, inst: InstrumentConfig) -> Decimal | None:
    """The short's isolated liquidation price, the simplified form of ``crypto-notes.md``:
    (entry + margin / size) / (1 + mmr + taker fee)."""
    if book.short_qty <= 0:
        return None
    return (book.perp_entry + book.margin / book.short_qty) / (ONE + inst.maintenance_margin_rate
                                                               + inst.perp_taker_fee)


def liquidation_distance(book: PairBook, inst: InstrumentConfig, mark: Decimal) -> Decimal | None:
    liq = liquidation_price(book, inst)
    if liq is None or mark <= 0:
        return None
    return (liq - mark) / mark


def close_fee_estimate(book: PairBook, view: MarketView, inst: InstrumentConfig, slippage: Decimal) -> Decimal:
    return (book.spot_qty * view.spot * (inst.spot_taker_fee + slippage)
            + book.short_qty * view.mark * (inst.perp_taker_fee + slippage))


def net_pnl(book: PairBook, view: MarketView, inst: InstrumentConfig, slippage: Decimal) -> Decimal:
    spot_pnl = book.spot_qty * (view.spot - book.spot_entry)
    perp_pnl = book.short_qty * (book.perp_entry - view.mark)
    return (spot_pnl + perp_pnl + book.funding + book.realized - book.fees
            - close_fee_estimate(book, view, inst, slippage))


def round_trip_cost(view: MarketView, inst: InstrumentConfig, strat: StrategyConfig) -> Decimal:
    """Fraction of notional the pair costs to enter and leave: four taker fees and slippages, the basis."""
    fees = 2 * (inst.spot_taker_fee + inst.perp_taker_fee) + 4 * strat.slippage
    basis = abs(view.mark / view.spot - ONE) if view.spot > 0 else ONE
    return fees + basis + strat.basis_cost_buffer


def expected_carry(view: MarketView, strat: StrategyConfig) -> Decimal:
    return view.rate * strat.horizon_periods


FUNDS_BUFFER = Decimal("0.99")  # keep 1 % of the free balance unspent: prices move between the two legs


def size_pair(view: MarketView, inst: InstrumentConfig, strat: StrategyConfig,
              available: Decimal | None = None) -> Decimal:
    """Base units for both legs: spot cost + the short's margin + opening costs fit the capital left after
    the reserve (and the trading account's free USDT when given); rounded down to the step both legs trade."""
    budget = strat.capital_usdt * (ONE - strat.reserve_fraction)
    if available is not None:
        budget = min(budget, available * FUNDS_BUFFER)
    per_unit = (view.spot * (ONE + inst.spot_taker_fee + strat.slippage)
                + view.mark / strat.leverage + view.mark * (inst.perp_taker_fee + strat.slippage))
    if per_unit <= 0:
        return ZERO
    qty = (budget / per_unit / inst.qty_step).to_integral_value(rounding=ROUND_DOWN) * inst.qty_step
    return qty if qty >= inst.min_qty else ZERO


def check_open(view: MarketView, ctx: OpenContext, inst: InstrumentConfig, strat: StrategyConfig,
               risk: RiskConfig) -> str | None:
    """None when the pair may open now, else the first failing reason (checked in this order)."""
    if ctx.has_position:
        return "OPEN_POSITION_EXISTS"
    if ctx.emergency:
        return "OPEN_EMERGENCY"
    if ctx.reduce_only:
        return "OPEN_REDUCE_ONLY"
    if ctx.breaker_tripped:
        return "OPEN_BREAKER_TRIPPED"
    if ctx.account_health < risk.min_open_health:
        return "OPEN_MARGIN_HEALTH_LOW"
    if strat.leverage > MAX_LEVERAGE:
        return "OPEN_LEVERAGE_ABOVE_MAX"
    if view.rate < strat.min_rate:
        return "OPEN_RATE_BELOW_MIN"
    if view.rate > strat.max_rate:
        return "OPEN_RATE_ABOVE_MAX"
    if view.spot <= 0 or abs(view.mark / view.spot - ONE) > risk.max_basis:
        return "OPEN_BASIS_TOO_WIDE"
    if expected_carry(view, strat) <= round_trip_cost(view, inst, strat):
        return "OPEN_NOT_NET_OF_FEES"
    if ctx.spike:
        return "OPEN_PRICE_SPIKE"
    if size_pair(view, inst, strat) <= 0:
        return "OPEN_SIZE_BELOW_MIN"
    if ctx.free_usdt is not None and size_pair(view, inst, strat, ctx.free_usdt) <= 0:
        return "OPEN_INSUFFICIENT_FUNDS"
    return None


def book_open(symbol: str, qty: Decimal, spot_px: Decimal, perp_px: Decimal, fees: Decimal,
              leverage: Decimal, ts_ms: int) -> PairBook:
    """The book after both legs filled at these average prices."""
    margin = qty * perp_px / leverage
    return PairBook(symbol=symbol, spot_qty=qty, short_qty=qty, spot_entry=spot_px, perp_entry=perp_px,
                    margin=margin, margin_at_open=margin, fees=fees, capital_committed=qty * spot_px + margin,
                    opened_ms=ts_ms)


def check_close(book: PairBook, view: MarketView, inst: InstrumentConfig, strat: StrategyConfig,
                risk: RiskConfig, emergency: bool = False) -> str | None:
    """None to keep holding, else why the pair closes now (first match)."""
    if book.is_flat:
        return None
    if emergency:
        return "CLOSE_EMERGENCY"
    if margin_health(book, view.mark) < risk.close_health:
        return "CLOSE_MARGIN_HEALTH"
    if book.capital_committed > 0:
        ret = net_pnl(book, view, inst, strat.slippage) / book.capital_committed
        if ret >= strat.take_profit:
            return "CLOSE_TAKE_PROFIT"
        if ret <= -strat.stop_loss:
            return "CLOSE_STOP_LOSS"
    if book.negative_streak >= strat.negative_periods_to_close:
        return "CLOSE_FUNDING_NEGATIVE"
    return None


def leg_gap(spot_qty: Decimal, short_qty: Decimal) -> Decimal:
    """The size gap between the legs over the larger leg (0 when both are flat)."""
    big = max(spot_qty, short_qty)
    return abs(spot_qty - short_qty) / big if big > 0 else ZERO


def check_rebalance(book: PairBook, view: MarketView, strat: StrategyConfig, risk: RiskConfig,
                    inst: InstrumentConfig | None = None) -> str | None:
    """``REBALANCE_GAP`` when the legs drift apart, ``REBALANCE_MARGIN_HEALTH`` when the short needs margin:
    health under ``topup_health``, or (given the instrument) its liquidation distance under
    ``topup_liq_distance`` (after a long rally health against the opening margin understates the risk)."""
    if book.is_flat:
        return None
    if leg_gap(book.spot_qty, book.short_qty) > strat.rebalance_gap:
        return "REBALANCE_GAP"
    if not risk.topups_enabled:
        return None
    if margin_health(book, view.mark) < risk.topup_health:
        return "REBALANCE_MARGIN_HEALTH"
    if inst is not None:
        dist = liquidation_distance(book, inst, view.mark)
        if dist is not None and dist < risk.topup_liq_distance:
            return "REBALANCE_MARGIN_HEALTH"
    return None


@dataclass(frozen=True)
class LegOrder:
    leg: str  # "spot" or "perp"
    side: str  # "buy" / "sell"
    qty: Decimal
    reduce_only: bool


def rebalance_orders(spot_qty: Decimal, short_qty: Decimal, step: Decimal, min_qty: Decimal) -> list[LegOrder]:
    """Orders that bring the legs within one step of each other by **reducing** the larger leg (no new
    exposure while rebalancing); when the difference is under the venue's minimum, both legs are cut to the
    nearest tradable equal size instead."""
    diff = spot_qty - short_qty
    if diff == 0:
        return []
    qty = (abs(diff) / step).to_integral_value(rounding=ROUND_DOWN) * step
    if qty >= min_qty:
        if diff > 0:
            return [LegOrder("spot", "sell", qty, False)]
        return [LegOrder("perp", "buy", qty, True)]
    # Too small to trade alone: take both legs down to the same tradable size.
    target = (min(spot_qty, short_qty) / step).to_integral_value(rounding=ROUND_DOWN) * step
    if target >= min_qty:
        target -= min_qty
    orders = []
    if spot_qty - target >= min_qty:
        orders.append(LegOrder("spot", "sell", spot_qty - target, False))
    if short_qty - target >= min_qty:
        orders.append(LegOrder("perp", "buy", short_qty - target, True))
    return orders


def topup_amount(book: PairBook, mark: Decimal, risk: RiskConfig, inst: InstrumentConfig | None = None) -> Decimal:
    """USDT to add to the isolated margin to bring health back to ``topup_target`` and (given the instrument)
    the liquidation distance to ``topup_liq_target``, whichever needs more (0 when neither does)."""
    if book.short_qty <= 0 or book.margin_at_open <= 0:
        return ZERO
    upnl = (book.perp_entry - mark) * book.short_qty
    need = risk.topup_target * book.margin_at_open - (book.margin + upnl)
    if inst is not None:
        # Margin M with (entry + M / size) / (1 + mmr + fee) = mark x (1 + target), the notes' form solved for M.
        wanted = book.short_qty * (mark * (ONE + risk.topup_liq_target)
                                   * (ONE + inst.maintenance_margin_rate + inst.perp_taker_fee) - book.perp_entry)
        need = max(need, wanted - book.margin)
    return need.quantize(Decimal("0.01"), rounding="ROUND_UP") if need > 0 else ZERO


def delever_qty(book: PairBook, view: MarketView, need: Decimal, funds: Decimal, step: Decimal) -> Decimal:
    """When the account cannot pay a top-up of ``need``: the base units to take off **both** legs so that the
    spot sold and the short's margin released pay what the smaller short still needs. Cutting a fraction f
    leaves a need of (1 - f) x need and frees f x (spot value + the short's margin balance), so
    f = (need - funds) / (need + spot value + margin balance), rounded up to the step."""
    if need <= funds or book.short_qty <= 0:
        return ZERO
    balance = book.margin + (book.perp_entry - view.mark) * book.short_qty
    freed = book.spot_qty * view.spot + max(balance, ZERO)
    fraction = (need - funds) / (need + freed)
    qty = (fraction * book.short_qty / step).to_integral_value(rounding="ROUND_CEILING") * step
    return min(qty, book.short_qty, book.spot_qty)


def topup_transfer_id(symbol: str, opened_ms: int, n: int) -> str:
    """The idempotency key of the n-th top-up of one position: the same top-up retried never moves twice."""
    base = "".join(c for c in symbol if c.isalnum())[:8]
    return f"cu{base}{opened_ms}n{n}"[:32]


def book_topup(book: PairBook, amount: Decimal, transfer_id: str) -> PairBook:
    if transfer_id in book.topup_ids:
        return book
    return replace(book, margin=book.margin + amount, topup_ids=(*book.topup_ids, transfer_id))


def funding_payment(short_qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What the short receives at a settlement: size x mark x rate (positive rate: longs pay shorts)."""
    return short_qty * mark * rate


def book_funding(book: PairBook, amount: Decimal, rate: Decimal, ts_ms: int) -> PairBook:
    """Book one settlement once (a settlement at or before the last booked one is ignored: no double count
    after a restart or a partial exit). Funding of an isolated position goes into its margin."""
    if ts_ms <= book.last_funding_ms or book.short_qty <= 0:
        return book
    streak = book.negative_streak + 1 if rate < 0 else 0
    return replace(book, funding=book.funding + amount, margin=book.margin + amount, negative_streak=streak,
                   last_funding_ms=ts_ms)


def book_reduce(book: PairBook, leg: str, qty: Decimal, price: Decimal, fee: Decimal) -> PairBook:
    """A rebalance trade that reduced one leg: realised PnL, fee, and for the perp the margin released in
    proportion (the isolated position keeps its health)."""
    if leg == "spot":
        realized = qty * (price - book.spot_entry)
        return replace(book, spot_qty=book.spot_qty - qty, realized=book.realized + realized,
                       fees=book.fees + fee)
    realized = qty * (book.perp_entry - price)
    share = qty / book.short_qty if book.short_qty > 0 else ONE
    released = book.margin * share
    return replace(book, short_qty=book.short_qty - qty, realized=book.realized + realized, fees=book.fees + fee,
                   margin=book.margin - released, margin_at_open=book.margin_at_open * (ONE - share))
