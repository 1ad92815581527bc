"""GlobalVault: the one physical cash pool shared by the grid symbols, as a pure in-memory ledger.

Every BUY is an *allocation* keyed by its ``client_order_id``: granted ``amount`` goes to *frozen* when the
order is sent, moves to *used* as fills arrive (at the real fill value), returns to the pool when the rest
of the order is cancelled, and leaves *used* as SELL fills release the lot (``apply_sell_fill``). All money
is integer fen, so frozen, used and released never drift. Every call is idempotent by ``client_order_id``
(sells by the sell's id and cumulative fill), so replaying a journal or a duplicated broker event changes
nothing. The pool rule and the commission are ``shared_schema.ledger_math``'s, the ones the grid uses.

No IO here: the executor journals the calls (``windows.executor_state``) and publishes ``shared_pool.json``.

Over 500 lines because it is one ledger: every call keeps the same invariants, checked in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from shared_schema.ledger_math import PoolRefusal, commission_fen, pool_refusal, split_shares, utilization
from shared_schema.models import AllocationState
from shared_schema.types import fen_to_yuan, to_fen


class VaultDecision(str, Enum):
    APPROVED = "APPROVED"
    NOMINAL_CAP = "NOMINAL_CAP"
    POOL_EXHAUSTED = "POOL_EXHAUSTED"
    POOL_RESERVE_15 = "POOL_RESERVE_15"
    INVALID_REQUEST = "INVALID_REQUEST"


_DECISIONS = {
    PoolRefusal.NOMINAL_CAP: VaultDecision.NOMINAL_CAP,
    PoolRefusal.POOL_EXHAUSTED: VaultDecision.POOL_EXHAUSTED,
    PoolRefusal.RESERVE: VaultDecision.POOL_RESERVE_15,
}


class VaultError(ValueError):
    """A call that contradicts the ledger (unknown id, wrong symbol); nothing was changed."""


@dataclass
class VaultAllocation:
    """One BUY's grant and, once it fills, the lot it holds.

    The lot's cost basis is what left the account for it: fill value plus buy fees. Whatever its shares,
    the cost released so far is always ``cost_of(released_shares)``, so releases over any number of sells
    (or a fee reconciled later) never drift from the lot's total.
    """

    symbol: str
    client_order_id: str
    amount: int  # fen granted for the notional
    layer_index: int
    requested_shares: int | None
    frozen: int
    used: int = 0
    state: AllocationState = AllocationState.FROZEN
    fee_reserve: int = 0  # fen granted on top of ``amount`` for the buy's commission (the estimate)
    filled_shares: int = 0
    filled_value: int = 0  # fen, cumulative fill value of the BUY
    buy_fees: int = 0  # fen, cumulative buy fees (the broker's figure, or the estimate when it reports 0)
    fees_estimated: bool = False  # ``buy_fees`` is the fee model's estimate, not yet the broker's figure
    released_shares: int = 0
    released_cost: int = 0  # fen of the cost basis already returned to the pool by sells

    @property
    def grant(self) -> int:
        """Everything the approval reserved: notional plus fee estimate."""
        return self.amount + self.fee_reserve

    @property
    def cost_basis(self) -> int:
        """Cash that left the account for the filled shares: value plus buy fees (fen)."""
        return self.filled_value + self.buy_fees

    def cost_of(self, shares: int) -> int:
        """Cost basis of ``shares`` of this lot, pro rata, rounded down; all of them cost the whole basis."""
        if self.filled_shares <= 0 or shares <= 0:
            return 0
        if shares >= self.filled_shares:
            return self.cost_basis
        return self.cost_basis * shares // self.filled_shares

    @property
    def released_fees(self) -> int:
        """Buy fees already charged to alpha with the released shares (the fee share of ``released_cost``)."""
        if self.filled_shares <= 0 or self.released_shares <= 0:
            return 0
        if self.released_shares >= self.filled_shares:
            return self.buy_fees
        return self.buy_fees * self.released_shares // self.filled_shares

    @property
    def holding_shares(self) -> int:
        return self.filled_shares - self.released_shares

    @property
    def is_open(self) -> bool:
        """Still moving: frozen money or a lot that a sell can release."""
        return self.frozen > 0 or self.used > 0 or self.holding_shares > 0


@dataclass
class SellProgress:
    """What one SELL has sold from each lot so far; makes ``apply_sell_fill`` idempotent and exact."""

    symbol: str
    client_order_id: str
    release_ids: tuple[str, ...]
    total_shares: int
    start_holding: dict[str, int]  # lot shares when the sell first filled: the basis of the split
    filled_shares: int = 0
    proceeds: int = 0
    fees: int = 0
    fees_estimated: bool = False
    sold: dict[str, int] = field(default_factory=dict)  # shares this sell took from each lot


@dataclass(frozen=True)
class VaultLimits:
    physical_pool: int  # fen
    nominal_caps: dict[str, int]  # fen per symbol
    reserve_ratio: Decimal

    @classmethod
    def from_yuan(cls, physical_pool: Decimal, nominal_caps: dict[str, Decimal], reserve_ratio: Decimal) -> VaultLimits:
        return cls(to_fen(physical_pool), {c: to_fen(v) for c, v in nominal_caps.items()}, Decimal(reserve_ratio))

    @property
    def reserve_floor_fen(self) -> Decimal:
        """Most that used+frozen may reach after a layer-0 grant: pool x (1 - reserve)."""
        return Decimal(self.physical_pool) * (1 - self.reserve_ratio)


def fees_after(current: int, current_estimated: bool, reported: int, reported_estimated: bool) -> tuple[int, bool]:
    """An order's cumulative fees after one report: ``(fen, is_estimate)``.

    The broker's figure (non-zero, not estimated) replaces an estimate up or down and otherwise only grows;
    an estimate (made when the broker reported 0) replaces an earlier estimate but never a broker's figure.
    """
    if reported_estimated:
        if current_estimated or current == 0:
            return reported, True
        return current, False
    if reported > 0:
        return (reported, False) if current_estimated else (max(current, reported), False)
    return current, current_estimated


@dataclass(frozen=True)
class FeeModel:
    """The configured commission model: ``rate`` of the value, at least ``min_fen``, rounded half up to the fen."""

    rate: Decimal = Decimal(0)
    min_fen: int = 0

    def estimate_fen(self, value_fen: int) -> int:
        return commission_fen(value_fen, self.rate, self.min_fen)


class GlobalVault:
    """The ledger. Methods mirror the design: ``request_allocation``, ``on_fill``, ``on_cancel``, and the
    design's ``release`` as ``apply_sell_fill`` (sells release lots by their cumulative fills)."""

    def __init__(self, limits: VaultLimits, fee_model: FeeModel | None = None) -> None:
        self.limits = limits
        self.fee_model = fee_model or FeeModel()
        self.allocations: dict[str, VaultAllocation] = {}
        self.decisions: dict[str, VaultDecision] = {}
        self.sells: dict[str, SellProgress] = {}
        self.acc_alpha: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        # Realised sell proceeds net of sell fees per symbol: acc_alpha == realised - released cost basis.
        self.realised: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        self.replay_notes: list[str] = []  # journaled verdicts honoured although today's rules differ
        # Running totals so a check is O(1); ``check_invariants`` recomputes them from the allocations.
        self._used: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        self._frozen: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        self._open_lots: dict[str, set[str]] = {code: set() for code in limits.nominal_caps}

    # ------------------------------------------------------------------------------------------ views

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.limits.nominal_caps)

    def get_used_map(self) -> dict[str, int]:
        return dict(self._used)

    def get_frozen_map(self) -> dict[str, int]:
        return dict(self._frozen)

    def committed(self) -> int:
        """used + frozen over all symbols, in fen: cash that left, or is reserved to leave, fees included."""
        return sum(self._used.values()) + sum(self._frozen.values())

    def utilization(self) -> float:
        """committed / pool by the one shared function (``shared_schema.ledger_math.utilization``)."""
        return utilization(self.committed(), self.limits.physical_pool)

    def is_first_layer(self, symbol: str) -> bool:
        """No open or pending lot of ``symbol`` in the ledger: a BUY now starts a new grid (the reserve applies)."""
        return not self._open_lots.get(symbol)

    def _set(self, alloc: VaultAllocation, used: int | None = None, frozen: int | None = None) -> None:
        if used is not None:
            self._used[alloc.symbol] += used - alloc.used
            alloc.used = used
        if frozen is not None:
            self._frozen[alloc.symbol] += frozen - alloc.frozen
            alloc.frozen = frozen
        lots = self._open_lots[alloc.symbol]
        if alloc.frozen > 0 or alloc.holding_shares > 0:
            lots.add(alloc.client_order_id)
        else:
            lots.discard(alloc.client_order_id)

    # ---------------------------------------------------------------------------------------- actions

    def check_allocation(self, symbol: str, amount_fen: int, layer_index: int, fee_fen: int = 0) -> VaultDecision:
        """The vault's verdict on a new BUY of ``amount_fen`` plus its fee estimate, without changing anything.

        The 15% reserve binds a first layer: ``layer_index == 0`` or, whatever the signal claims, a symbol
        with no open or pending lot in this ledger.
        """
        if symbol not in self.limits.nominal_caps or amount_fen <= 0 or layer_index < 0 or fee_fen < 0:
            return VaultDecision.INVALID_REQUEST
        refusal = pool_refusal(
            committed_fen=self.committed(),
            physical_pool_fen=self.limits.physical_pool,
            need_fen=amount_fen + fee_fen,
            first_layer=layer_index == 0 or self.is_first_layer(symbol),
            reserve_ratio=self.limits.reserve_ratio,
            symbol_committed_fen=self._used[symbol] + self._frozen[symbol],
            symbol_cap_fen=self.limits.nominal_caps[symbol],
        )
        return VaultDecision.APPROVED if refusal is None else _DECISIONS[refusal]

    def request_allocation(
        self,
        symbol: str,
        amount_fen: int,
        layer_index: int,
        client_order_id: str,
        requested_shares: int | None = None,
        fee_fen: int = 0,
    ) -> VaultDecision:
        """Grant ``amount_fen`` plus ``fee_fen`` (the commission estimate) to a BUY and freeze it, or refuse.

        A repeated call with the same ``client_order_id`` returns the first verdict and changes nothing.
        """
        if client_order_id in self.decisions:
            return self.decisions[client_order_id]
        decision = self.check_allocation(symbol, amount_fen, layer_index, fee_fen)
        self.decisions[client_order_id] = decision
        if decision is VaultDecision.APPROVED:
            self._grant(symbol, amount_fen, layer_index, client_order_id, requested_shares, fee_fen)
        return decision

    def record_allocation(
        self,
        symbol: str,
        amount_fen: int,
        layer_index: int,
        client_order_id: str,
        requested_shares: int | None,
        decision: VaultDecision,
        why: str,
    ) -> VaultDecision:
        """Replay a verdict journaled under earlier rules as it was given (the order it approved was sent).

        Only for journal records older than the current vault rules; the difference is kept in ``replay_notes``.
        """
        if client_order_id in self.decisions:
            return self.decisions[client_order_id]
        now = self.check_allocation(symbol, amount_fen, layer_index)
        if now is not decision:
            self.replay_notes.append(f"{client_order_id}: journaled {decision.value}, today's rules say {now.value} "
                                     f"({why})")
        self.decisions[client_order_id] = decision
        if decision is VaultDecision.APPROVED and symbol in self.limits.nominal_caps:
            self._grant(symbol, amount_fen, layer_index, client_order_id, requested_shares, 0)
        return decision

    def _grant(
        self, symbol: str, amount_fen: int, layer_index: int, client_order_id: str, requested_shares: int | None,
        fee_fen: int,
    ) -> None:
        alloc = VaultAllocation(
            symbol=symbol, client_order_id=client_order_id, amount=amount_fen, layer_index=layer_index,
            requested_shares=requested_shares, frozen=0, fee_reserve=fee_fen,
        )
        self.allocations[client_order_id] = alloc
        self._set(alloc, frozen=alloc.grant)

    def on_fill(
        self,
        symbol: str,
        client_order_id: str,
        filled_shares: int,
        filled_value_fen: int,
        fees_fen: int = 0,
        fees_estimated: bool = False,
    ) -> bool:
        """Apply a BUY's *cumulative* fill and fees. Only the filled part leaves frozen; ``used`` becomes the
        lot's cost basis (value plus buy fees) less what sells released.

        A stale or repeated report is a no-op. Fees: the broker's figure replaces an estimate (up or down);
        an estimate never replaces a broker's figure. Returns whether anything changed.
        """
        alloc = self._get(symbol, client_order_id)
        if filled_shares < alloc.filled_shares:
            return False
        fees, estimated = fees_after(alloc.buy_fees, alloc.fees_estimated, fees_fen, fees_estimated)
        value = max(alloc.filled_value, filled_value_fen)
        if (filled_shares, value, fees, estimated) == (
            alloc.filled_shares, alloc.filled_value, alloc.buy_fees, alloc.fees_estimated
        ):
            return False
        grew = filled_shares > alloc.filled_shares
        # A fill that lands after the cancel was confirmed is still money spent: the broker is the truth.
        alloc.filled_shares = filled_shares
        alloc.filled_value = value
        alloc.buy_fees, alloc.fees_estimated = fees, estimated
        self._rebase(alloc)
        if grew and alloc.state in (AllocationState.FROZEN, AllocationState.PARTIAL):
            self._set(alloc, frozen=self._frozen_left(alloc))
            alloc.state = AllocationState.PARTIAL if alloc.frozen > 0 else AllocationState.USED
        elif grew and alloc.state is AllocationState.CANCELLED:
            alloc.state = AllocationState.USED
        self._restate(alloc)
        return True

    def _rebase(self, alloc: VaultAllocation) -> None:
        """The lot's cost basis changed (a fill, a reconciled fee): keep ``released_cost == cost_of(released)``.

        A change to the part already sold is realised: it moves ``acc_alpha``, never ``used``.
        """
        target = alloc.cost_of(alloc.released_shares)
        self.acc_alpha[alloc.symbol] -= target - alloc.released_cost
        alloc.released_cost = target
        self._set(alloc, used=alloc.cost_basis - alloc.released_cost)

    def _frozen_left(self, alloc: VaultAllocation) -> int:
        if alloc.requested_shares:
            left = alloc.requested_shares - alloc.filled_shares
            if left <= 0:
                return 0
            # Pro rata by shares, rounded down, so frozen can never exceed what is still unfilled.
            return alloc.grant * left // alloc.requested_shares
        return max(0, alloc.grant - alloc.cost_basis)

    def on_cancel(self, symbol: str, client_order_id: str) -> bool:
        """The BUY ended (cancelled, rejected, expired, or done): whatever is still frozen goes back to the pool."""
        alloc = self._get(symbol, client_order_id)
        if alloc.frozen == 0 and alloc.state not in (AllocationState.FROZEN, AllocationState.PARTIAL):
            return False
        self._set(alloc, frozen=0)
        alloc.state = AllocationState.USED if alloc.filled_shares > 0 else AllocationState.CANCELLED
        self._restate(alloc)
        return True

    def _sell_from(self, alloc: VaultAllocation, shares: int) -> int:
        """Move ``shares`` (negative: back) of ``alloc`` to released; returns the cost basis released."""
        alloc.released_shares += shares
        target = alloc.cost_of(alloc.released_shares)
        delta = target - alloc.released_cost
        alloc.released_cost = target
        self._set(alloc, used=alloc.cost_basis - target)
        self.acc_alpha[alloc.symbol] -= delta
        self._restate(alloc)
        return delta

    @staticmethod
    def _restate(alloc: VaultAllocation) -> None:
        if alloc.frozen > 0 or alloc.filled_shares == 0:
            return
        if alloc.holding_shares <= 0:
            alloc.state = AllocationState.RELEASED
        elif alloc.released_shares > 0:
            alloc.state = AllocationState.PARTLY_RELEASED
        else:
            alloc.state = AllocationState.USED

    def lots_releasable(self, symbol: str, release_ids: list[str] | tuple[str, ...]) -> str | None:
        """``None`` when every id names a filled lot of ``symbol`` with shares left, else the reason code."""
        for lot_id in release_ids:
            alloc = self.allocations.get(lot_id)
            if alloc is None or alloc.symbol != symbol:
                return "RELEASE_UNKNOWN"
            if alloc.holding_shares <= 0:
                return "RELEASE_EMPTY"
        return None

    def sell_problem(
        self, symbol: str, release_ids: list[str] | tuple[str, ...], shares: int, lot_size: int
    ) -> tuple[str, str] | None:
        """``None`` when a SELL of ``shares`` naming ``release_ids`` may go, else ``(detail code, message)``.

        The named lots must exist and hold shares, the sell may not sell more than they hold together
        (``SELL_ABOVE_LOTS``), and a quantity that is not whole board lots must carry exactly the lots' odd
        remainder (``LOT_SIZE``): an odd remainder can only be sold, and only in one order.
        """
        if not release_ids:  # not a grid release (e.g. a manual sell of the base position): whole lots only
            if shares % lot_size:
                return "LOT_SIZE", f"shares {shares} is not a multiple of {lot_size} and sells no named lot"
            return None
        problem = self.lots_releasable(symbol, release_ids)
        if problem is not None:
            return problem, "release_client_order_ids name no open lot of this symbol"
        if len(set(release_ids)) != len(release_ids):
            return "RELEASE_DUPLICATE", "a lot is named twice"
        held = sum(self.allocations[c].holding_shares for c in release_ids)
        if shares > held:
            return "SELL_ABOVE_LOTS", f"sell {shares} > {held} held by the named lots"
        odd = shares % lot_size
        if odd and odd != held % lot_size:
            return "LOT_SIZE", (f"shares {shares} is not whole lots of {lot_size}; an odd quantity must carry the "
                                f"lots' whole odd remainder {held % lot_size}")
        return None

    def apply_sell_fill(
        self,
        symbol: str,
        sell_client_order_id: str,
        release_ids: tuple[str, ...] | list[str],
        total_shares: int,
        filled_shares: int,
        proceeds_fen: int,
        fees_fen: int,
        fees_estimated: bool = False,
    ) -> bool:
        """Apply a SELL's *cumulative* fill: the shares sold so far are split over its lots, and each lot
        releases the cost basis of exactly the shares taken from it.

        The split is ``split_shares(filled, lot holdings when the sell started)``: pro rata, largest
        remainder, in board lots, never more than a lot holds, always adding up to ``filled``. It is a
        function of the cumulative fill only, so the grid (at the final fill) gets the same split. Alpha
        moves by the proceeds less sell fees less the released cost basis (buy fees included).
        """
        progress = self.sells.get(sell_client_order_id)
        if progress is None:
            if filled_shares <= 0:
                return False
            lots = [self._get(symbol, lot_id) for lot_id in release_ids]
            progress = SellProgress(
                symbol=symbol,
                client_order_id=sell_client_order_id,
                release_ids=tuple(release_ids),
                total_shares=total_shares,
                start_holding={a.client_order_id: a.holding_shares for a in lots},
            )
            self.sells[sell_client_order_id] = progress
        filled_shares = min(filled_shares, progress.total_shares, sum(progress.start_holding.values()))
        if filled_shares < progress.filled_shares:
            return False
        fees, estimated = fees_after(progress.fees, progress.fees_estimated, fees_fen, fees_estimated)
        proceeds = max(progress.proceeds, proceeds_fen)
        if (filled_shares, proceeds, fees, estimated) == (
            progress.filled_shares, progress.proceeds, progress.fees, progress.fees_estimated
        ):
            return False
        parts = split_shares(filled_shares, [progress.start_holding[c] for c in progress.release_ids])
        for lot_id, target in zip(progress.release_ids, parts, strict=True):
            delta = target - progress.sold.get(lot_id, 0)
            if delta:
                self._sell_from(self._get(symbol, lot_id), delta)
                progress.sold[lot_id] = target
        net = (proceeds - fees) - (progress.proceeds - progress.fees)
        self.realised[symbol] += net
        self.acc_alpha[symbol] += net
        progress.filled_shares = filled_shares
        progress.proceeds = proceeds
        progress.fees, progress.fees_estimated = fees, estimated
        return True

    # ---------------------------------------------------------------------------------------- helpers

    def _get(self, symbol: str, client_order_id: str) -> VaultAllocation:
        alloc = self.allocations.get(client_order_id)
        if alloc is None:
            raise VaultError(f"no allocation {client_order_id}")
        if alloc.symbol != symbol:
            raise VaultError(f"{client_order_id} belongs to {alloc.symbol}, not {symbol}")
        return alloc

    def check_invariants(self) -> list[str]:
        """Every ledger rule as a list of broken ones (empty when the books are right)."""
        problems = []
        for alloc in self.allocations.values():
            c = alloc.client_order_id
            if alloc.frozen < 0 or alloc.used < 0:
                problems.append(f"{c}: negative frozen/used")
            if alloc.frozen > alloc.grant:
                problems.append(f"{c}: frozen above grant")
            if alloc.used != alloc.cost_basis - alloc.released_cost:
                problems.append(f"{c}: used != value + buy fees - released cost")
            if alloc.released_cost != alloc.cost_of(alloc.released_shares):
                problems.append(f"{c}: released cost is not the cost of the released shares")
            if not 0 <= alloc.released_shares <= alloc.filled_shares:
                problems.append(f"{c}: released shares outside [0, filled]")
            if (c in self._open_lots[alloc.symbol]) != (alloc.frozen > 0 or alloc.holding_shares > 0):
                problems.append(f"{c}: open-lot index out of step")
        for sell in self.sells.values():
            parts = [sell.sold.get(c, 0) for c in sell.release_ids]
            if sum(parts) != sell.filled_shares:
                problems.append(f"{sell.client_order_id}: shares sold from lots != shares filled")
            if any(p > sell.start_holding[c] for p, c in zip(parts, sell.release_ids, strict=True)):
                problems.append(f"{sell.client_order_id}: sold more from a lot than it held")
        used, frozen = self.get_used_map(), self.get_frozen_map()
        for code in self.codes:
            mine = [a for a in self.allocations.values() if a.symbol == code]
            if used[code] != sum(a.used for a in mine) or frozen[code] != sum(a.frozen for a in mine):
                problems.append(f"{code}: used/frozen totals differ from the sum of allocations")
            if used[code] < 0 or frozen[code] < 0:
                problems.append(f"{code}: negative total")
            if self.acc_alpha[code] != self.realised[code] - sum(a.released_cost for a in mine):
                problems.append(f"{code}: acc_alpha != proceeds - sell fees - released cost basis")
        return problems

    def yuan(self, fen: int) -> Decimal:
        return fen_to_yuan(fen)
