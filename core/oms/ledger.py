"""Signed position ledger for margined instruments (perpetual swaps), exact in Decimal.

A margined position is valued by its PnL, never at ``size x mark``: equity = wallet + unrealised PnL. The
wallet moves only by realised PnL, fees, funding and transfers; opening a position moves no money (margin
is reserved, not spent).

Each position keeps a *signed* quantity (negative = short) and a *signed* cost basis (``qty x WAC``;
negative for a short), so one set of formulas serves both sides. A fill that goes through zero is handled
explicitly as two legs: the whole basis is closed (realised) and the remainder opens at the fill price.
Every booking carries a key (fill id, funding bill id, funding settlement, transfer id) and is applied at
most once, so a fill or a funding bill seen again after a restart, a partial exit or an added entry is
never counted twice. A funding settlement is keyed by ``(symbol, settlement time)`` as well as by its bill
id: the venue's bill and a locally computed accrual of the same settlement cannot both land.

Exact conservation, checked by property tests: ``wallet - sum(cost)`` always equals the starting wallet
minus the signed traded value, minus fees, plus funding and transfers. The ETF long-only accounting
(``core.oms.account``) is untouched; ``to_account_state`` hands this ledger to the risk kernel in the same
``AccountState`` shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal

from core.oms.account import BASIS_QUANTUM, AccountState, HeldPosition

ZERO = Decimal(0)


class LedgerError(ValueError):
    """A booking the ledger refuses; the ledger is left unchanged. ``code`` is the machine-readable reason:
    LEDGER_NO_KEY (a fill, bill or transfer without its id), LEDGER_BAD_FILL (qty 0 or price <= 0),
    LEDGER_BAD_MARK (mark <= 0)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class LedgerPosition:
    """One symbol's position and its lifetime money (realised PnL, fees and funding stay after it is flat)."""

    symbol: str
    qty: Decimal = ZERO  # signed base units: + long, - short
    cost: Decimal = ZERO  # signed basis = qty x WAC (negative for a short); exactly 0 when flat
    mark: Decimal = ZERO
    liq: Decimal | None = None
    realised_pnl: Decimal = ZERO  # price PnL of closed quantity, gross of fees and funding
    fees: Decimal = ZERO  # positive = paid (a maker rebate is negative)
    funding: Decimal = ZERO  # positive = received

    @property
    def entry(self) -> Decimal:
        """Weighted average entry price (0 when flat)."""
        return self.cost / self.qty if self.qty else ZERO

    @property
    def unrealised_pnl(self) -> Decimal:
        """(mark - entry) x qty, as ``qty x mark - cost`` (exact, no division)."""
        return self.qty * self.mark - self.cost if self.qty else ZERO

    @property
    def notional(self) -> Decimal:
        return abs(self.qty) * self.mark

    @property
    def net_pnl(self) -> Decimal:
        """Everything this symbol has earned: realised + unrealised - fees + funding."""
        return self.realised_pnl + self.unrealised_pnl - self.fees + self.funding

    def held(self) -> HeldPosition:
        """The risk kernel's view (liquidation distance, notional)."""
        return HeldPosition(self.symbol, self.qty, self.cost, self.mark, self.liq, self.realised_pnl)


@dataclass(frozen=True)
class LedgerFill:
    """One execution. ``qty`` is signed (+ buy, - sell) in base units; ``fee`` in the settle currency (the
    wallet's), positive = paid, negative = a maker rebate."""

    fill_id: str
    symbol: str
    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO


@dataclass(frozen=True)
class FundingBill:
    """One funding payment as the venue bills it: ``amount`` signed, positive = received."""

    bill_id: str
    symbol: str
    amount: Decimal
    ts_ms: int  # the settlement time the bill belongs to


@dataclass(frozen=True)
class MarginLedger:
    """The margined account: wallet balance, positions, and every booking key already applied."""

    wallet: Decimal = ZERO
    positions: Mapping[str, LedgerPosition] = field(default_factory=dict)
    booked: frozenset[str] = frozenset()

    def position(self, symbol: str) -> LedgerPosition:
        return self.positions.get(symbol) or LedgerPosition(symbol)

    @property
    def unrealised_pnl(self) -> Decimal:
        return sum((p.unrealised_pnl for p in self.positions.values()), ZERO)

    @property
    def equity(self) -> Decimal:
        """Wallet + unrealised PnL (a perp is never valued at size x mark)."""
        return self.wallet + self.unrealised_pnl

    @property
    def funding_total(self) -> Decimal:
        return sum((p.funding for p in self.positions.values()), ZERO)

    @property
    def fees_total(self) -> Decimal:
        return sum((p.fees for p in self.positions.values()), ZERO)

    @property
    def realised_total(self) -> Decimal:
        return sum((p.realised_pnl for p in self.positions.values()), ZERO)

    def is_booked(self, key: str) -> bool:
        return key in self.booked

    def _with(self, pos: LedgerPosition, wallet: Decimal, *keys: str) -> MarginLedger:
        return replace(
            self, wallet=wallet, positions={**self.positions, pos.symbol: pos}, booked=self.booked | set(keys)
        )


@dataclass(frozen=True)
class FillEffect:
    """What one fill did: quantities unsigned; ``realised`` is the price PnL of the closed part."""

    closed_qty: Decimal = ZERO
    opened_qty: Decimal = ZERO
    realised: Decimal = ZERO
    flipped: bool = False  # went through zero: a long became a short or the reverse
    duplicate: bool = False  # already booked: nothing changed


@dataclass(frozen=True)
class FillResult:
    ledger: MarginLedger
    effect: FillEffect


@dataclass(frozen=True)
class FundingResult:
    ledger: MarginLedger
    booked: bool  # False: this bill or settlement was already booked (or the position was flat)
    amount: Decimal = ZERO


def fill_key(fill_id: str) -> str:
    return f"fill:{fill_id}"


def bill_key(bill_id: str) -> str:
    return f"bill:{bill_id}"


def settlement_key(symbol: str, ts_ms: int) -> str:
    return f"funding:{symbol}@{ts_ms}"


def transfer_key(transfer_id: str) -> str:
    return f"transfer:{transfer_id}"


def _close_basis(pos: LedgerPosition, closed: Decimal) -> Decimal:
    """The share of the basis that ``closed`` (unsigned, <= |qty|) takes away; the whole basis at a full
    close, so a flat position has exactly zero basis however odd the prices were."""
    if closed == abs(pos.qty):
        return pos.cost
    return (pos.cost * closed / abs(pos.qty)).quantize(BASIS_QUANTUM, rounding=ROUND_HALF_EVEN)


def apply_fill(ledger: MarginLedger, fill: LedgerFill) -> FillResult:
    """Book one fill: open, add, reduce, close or flip, with WAC and realised PnL; once per ``fill_id``.

    A fill that reduces removes its share of the basis at WAC and realises ``closed x (price - entry)``;
    one that crosses zero closes the whole position first, then opens the remainder at the fill price.
    The fee is charged to the wallet whatever the fill did. A position with no mark yet is marked at the
    fill price, so its unrealised PnL starts at zero rather than at minus its basis.
    """
    if not fill.fill_id:
        raise LedgerError("LEDGER_NO_KEY", "a fill needs an id (it is the key that books it once)")
    if fill.qty == 0 or fill.price <= 0:
        raise LedgerError("LEDGER_BAD_FILL", f"{fill.symbol}: a fill needs qty != 0 and price > 0")
    key = fill_key(fill.fill_id)
    if ledger.is_booked(key):
        return FillResult(ledger, FillEffect(duplicate=True))
    pos = ledger.position(fill.symbol)
    same_side = pos.qty == 0 or (pos.qty > 0) == (fill.qty > 0)
    closed = ZERO if same_side else min(abs(fill.qty), abs(pos.qty))
    opened = abs(fill.qty) - closed
    removed = _close_basis(pos, closed) if closed else ZERO
    # Closing f (opposite sign to qty) turns -f x price into cash-like value and gives back its basis.
    closing_signed = -closed if pos.qty > 0 else closed
    realised = -closing_signed * fill.price - removed if closed else ZERO
    qty_after_close = pos.qty + closing_signed
    cost_after_close = pos.cost - removed
    open_signed = opened if fill.qty > 0 else -opened
    new_pos = replace(
        pos,
        qty=qty_after_close + open_signed,
        cost=cost_after_close + open_signed * fill.price,
        mark=pos.mark if pos.mark > 0 else fill.price,
        realised_pnl=pos.realised_pnl + realised,
        fees=pos.fees + fill.fee,
    )
    flipped = pos.qty != 0 and opened > 0 and not same_side
    effect = FillEffect(closed, opened, realised, flipped)
    return FillResult(ledger._with(new_pos, ledger.wallet + realised - fill.fee, key), effect)


def funding_amount(position_qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Funding received by a position at one settlement: ``-qty x mark x rate`` (a positive rate makes
    longs pay shorts)."""
    return -position_qty * mark * rate


def book_funding(ledger: MarginLedger, bill: FundingBill) -> FundingResult:
    """Book the venue's funding bill once: a second bill with the same id, or any bill for a settlement
    (symbol, time) already booked, changes nothing."""
    if not bill.bill_id:
        raise LedgerError("LEDGER_NO_KEY", "a funding bill needs an id")
    keys = (bill_key(bill.bill_id), settlement_key(bill.symbol, bill.ts_ms))
    if any(ledger.is_booked(k) for k in keys):
        return FundingResult(ledger, False)
    pos = ledger.position(bill.symbol)
    new_pos = replace(pos, funding=pos.funding + bill.amount)
    return FundingResult(ledger._with(new_pos, ledger.wallet + bill.amount, *keys), True, bill.amount)


def settle_funding(ledger: MarginLedger, symbol: str, rate: Decimal, mark: Decimal, ts_ms: int) -> FundingResult:
    """Accrue one settlement from the position held *now* (a simulator or a backtest has no venue bill).

    Keyed by the settlement, so calling it twice for the same time, or after the venue's bill for it was
    booked, books nothing; a flat position pays nothing and books nothing.
    """
    pos = ledger.position(symbol)
    if pos.qty == 0 or ledger.is_booked(settlement_key(symbol, ts_ms)):
        return FundingResult(ledger, False)
    amount = funding_amount(pos.qty, mark, rate)
    return book_funding(ledger, FundingBill(f"{symbol}@{ts_ms}", symbol, amount, ts_ms))


def apply_transfer(ledger: MarginLedger, transfer_id: str, amount: Decimal) -> MarginLedger:
    """Money in (+) or out (-) of the margin wallet, once per ``transfer_id``."""
    if not transfer_id:
        raise LedgerError("LEDGER_NO_KEY", "a transfer needs an id")
    key = transfer_key(transfer_id)
    if ledger.is_booked(key):
        return ledger
    return replace(ledger, wallet=ledger.wallet + amount, booked=ledger.booked | {key})


def mark_position(
    ledger: MarginLedger, symbol: str, mark: Decimal, liq: Decimal | None = None
) -> MarginLedger:
    """New mark price (and liquidation price when known) for one symbol."""
    if mark <= 0:
        raise LedgerError("LEDGER_BAD_MARK", f"{symbol}: mark must be > 0")
    pos = ledger.position(symbol)
    new_pos = replace(pos, mark=mark, liq=liq if liq is not None else pos.liq)
    return replace(ledger, positions={**ledger.positions, symbol: new_pos})


def to_account_state(
    ledger: MarginLedger, peak_equity: Decimal, margin_used_pct: Decimal = ZERO
) -> AccountState:
    """The risk kernel's account: equity = wallet + unrealised PnL; the peak only ever rises."""
    equity = ledger.equity
    return AccountState(
        equity=equity,
        peak_equity=max(peak_equity, equity),
        cash=ledger.wallet,
        margin_used_pct=margin_used_pct,
        positions={s: p.held() for s, p in ledger.positions.items() if p.qty != 0},
    )
