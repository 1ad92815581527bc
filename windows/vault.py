"""GlobalVault: the one physical cash pool shared by the grid symbols, as a pure in-memory ledger.

Every BUY is an *allocation* keyed by its ``client_order_id``: granted ``amount`` goes to *frozen* when the
order is sent, moves to *used* as fills arrive (at the real fill value), returns to the pool when the rest
of the order is cancelled, and leaves *used* when a SELL closes the lot (``release``). All money is integer
fen, so frozen, used and released never drift. Every call is idempotent by ``client_order_id`` (sells by
the sell's id and cumulative fill), so replaying a journal or a duplicated broker event changes nothing.

No IO here: persistence (journal, snapshots, the published ``shared_pool.json``) lives in ``vault_store``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from shared_schema.models import AllocationState
from shared_schema.types import fen_to_yuan, to_fen


class VaultDecision(str, Enum):
    APPROVED = "APPROVED"
    NOMINAL_CAP = "NOMINAL_CAP"
    POOL_EXHAUSTED = "POOL_EXHAUSTED"
    POOL_RESERVE_15 = "POOL_RESERVE_15"
    INVALID_REQUEST = "INVALID_REQUEST"


class VaultError(ValueError):
    """A call that contradicts the ledger (unknown id, wrong symbol); nothing was changed."""


@dataclass
class Allocation:
    symbol: str
    client_order_id: str
    amount: int  # fen granted
    layer_index: int
    requested_shares: int | None
    frozen: int
    used: int = 0
    state: AllocationState = AllocationState.FROZEN
    filled_shares: int = 0
    filled_value: int = 0  # fen, cumulative fill value of the BUY
    buy_fees: int = 0  # fen, cumulative buy fees
    released_shares: int = 0
    released_cost: int = 0  # fen of used already returned to the pool by sells
    released_fees: int = 0  # fen of buy fees already charged to alpha

    @property
    def holding_shares(self) -> int:
        return self.filled_shares - self.released_shares

    @property
    def is_open(self) -> bool:
        """Still moving: frozen money or a lot that a sell can release."""
        return self.frozen > 0 or self.used > 0


@dataclass
class SellProgress:
    """What one SELL order has released so far; makes ``apply_sell_fill`` idempotent and leak-free."""

    symbol: str
    client_order_id: str
    release_ids: tuple[str, ...]
    total_shares: int
    start_holding: dict[str, int]  # lot shares when the sell first filled
    start_cost: dict[str, int]  # lot used fen when the sell first filled
    start_fees: dict[str, int]
    filled_shares: int = 0
    proceeds: int = 0
    fees: int = 0
    released_shares: dict[str, int] = field(default_factory=dict)
    released_cost: dict[str, int] = field(default_factory=dict)
    released_fees: dict[str, int] = field(default_factory=dict)


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


class GlobalVault:
    """The ledger. Methods mirror the design: ``request_allocation``, ``on_fill``, ``on_cancel``, ``release``."""

    def __init__(self, limits: VaultLimits) -> None:
        self.limits = limits
        self.allocations: dict[str, Allocation] = {}
        self.decisions: dict[str, VaultDecision] = {}
        self.sells: dict[str, SellProgress] = {}
        self.acc_alpha: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        # Running totals so a check is O(1); ``check_invariants`` recomputes them from the allocations.
        self._used: dict[str, int] = {code: 0 for code in limits.nominal_caps}
        self._frozen: dict[str, int] = {code: 0 for code in limits.nominal_caps}

    # ------------------------------------------------------------------------------------------ views

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.limits.nominal_caps)

    def get_used_map(self) -> dict[str, int]:
        return dict(self._used)

    def get_frozen_map(self) -> dict[str, int]:
        return dict(self._frozen)

    def committed(self) -> int:
        """used + frozen over all symbols, in fen."""
        return sum(self._used.values()) + sum(self._frozen.values())

    def _set(self, alloc: Allocation, used: int | None = None, frozen: int | None = None) -> None:
        if used is not None:
            self._used[alloc.symbol] += used - alloc.used
            alloc.used = used
        if frozen is not None:
            self._frozen[alloc.symbol] += frozen - alloc.frozen
            alloc.frozen = frozen

    def utilization(self) -> float:
        return self.committed() / self.limits.physical_pool

    # ---------------------------------------------------------------------------------------- actions

    def check_allocation(self, symbol: str, amount_fen: int, layer_index: int) -> VaultDecision:
        """The vault's verdict on a new BUY, without changing anything."""
        if symbol not in self.limits.nominal_caps or amount_fen <= 0 or layer_index < 0:
            return VaultDecision.INVALID_REQUEST
        symbol_committed = self._used[symbol] + self._frozen[symbol]
        if symbol_committed + amount_fen > self.limits.nominal_caps[symbol]:
            return VaultDecision.NOMINAL_CAP
        total_after = self.committed() + amount_fen
        if total_after > self.limits.physical_pool:
            return VaultDecision.POOL_EXHAUSTED
        if layer_index == 0 and total_after > self.limits.reserve_floor_fen:
            return VaultDecision.POOL_RESERVE_15
        return VaultDecision.APPROVED

    def request_allocation(
        self,
        symbol: str,
        amount_fen: int,
        layer_index: int,
        client_order_id: str,
        requested_shares: int | None = None,
    ) -> VaultDecision:
        """Grant ``amount_fen`` to a BUY and freeze it, or refuse with the rule that blocks it.

        A repeated call with the same ``client_order_id`` returns the first verdict and changes nothing.
        """
        if client_order_id in self.decisions:
            return self.decisions[client_order_id]
        decision = self.check_allocation(symbol, amount_fen, layer_index)
        self.decisions[client_order_id] = decision
        if decision is VaultDecision.APPROVED:
            self.allocations[client_order_id] = Allocation(
                symbol=symbol,
                client_order_id=client_order_id,
                amount=amount_fen,
                layer_index=layer_index,
                requested_shares=requested_shares,
                frozen=amount_fen,
            )
            self._frozen[symbol] += amount_fen
        return decision

    def on_fill(
        self, symbol: str, client_order_id: str, filled_shares: int, filled_value_fen: int, fees_fen: int = 0
    ) -> bool:
        """Apply a BUY's *cumulative* fill. Only the filled part leaves frozen; a stale or repeated total is a no-op.

        Returns whether anything changed.
        """
        alloc = self._get(symbol, client_order_id)
        if filled_shares <= alloc.filled_shares:
            return False
        # A fill that lands after the cancel was confirmed is still money spent: the broker is the truth.
        alloc.filled_shares = filled_shares
        alloc.filled_value = max(alloc.filled_value, filled_value_fen)
        alloc.buy_fees = max(alloc.buy_fees, fees_fen)
        self._set(alloc, used=alloc.filled_value - alloc.released_cost)
        if alloc.state in (AllocationState.FROZEN, AllocationState.PARTIAL):
            self._set(alloc, frozen=self._frozen_left(alloc))
            alloc.state = AllocationState.PARTIAL if alloc.frozen > 0 else AllocationState.USED
        elif alloc.state is AllocationState.CANCELLED:
            alloc.state = AllocationState.USED
        return True

    def _frozen_left(self, alloc: Allocation) -> int:
        if alloc.requested_shares:
            left = alloc.requested_shares - alloc.filled_shares
            if left <= 0:
                return 0
            # Pro rata by shares, rounded down, so frozen can never exceed what is still unfilled.
            return alloc.amount * left // alloc.requested_shares
        return max(0, alloc.amount - alloc.filled_value)

    def on_cancel(self, symbol: str, client_order_id: str) -> bool:
        """The BUY ended (cancelled, rejected, expired, or done): whatever is still frozen goes back to the pool."""
        alloc = self._get(symbol, client_order_id)
        if alloc.frozen == 0 and alloc.state not in (AllocationState.FROZEN, AllocationState.PARTIAL):
            return False
        self._set(alloc, frozen=0)
        alloc.state = AllocationState.USED if alloc.filled_shares > 0 else AllocationState.CANCELLED
        return True

    def release(self, symbol: str, client_order_id: str, proceeds_fen: int | None = None, sell_fees_fen: int = 0) -> bool:
        """A SELL closed the whole lot: its remaining cost basis (never a market value) returns to the pool.

        ``proceeds_fen`` (sell value) feeds ``acc_alpha``; without it the alpha is left unchanged.
        """
        alloc = self._get(symbol, client_order_id)
        if alloc.used == 0 and alloc.state is AllocationState.RELEASED:
            return False
        if alloc.frozen > 0:
            raise VaultError(f"{client_order_id} is still frozen; cancel or fill it before releasing")
        cost = alloc.used
        fees = alloc.buy_fees - alloc.released_fees
        alloc.released_shares = alloc.filled_shares
        alloc.released_cost += cost
        alloc.released_fees += fees
        self._set(alloc, used=0)
        alloc.state = AllocationState.RELEASED
        if proceeds_fen is not None:
            self.acc_alpha[symbol] += proceeds_fen - cost - fees - sell_fees_fen
        return True

    def lots_releasable(self, symbol: str, release_ids: list[str] | tuple[str, ...]) -> str | None:
        """``None`` when every id names a filled lot of ``symbol`` with shares left, else the reason code."""
        for coid in release_ids:
            alloc = self.allocations.get(coid)
            if alloc is None or alloc.symbol != symbol:
                return "RELEASE_UNKNOWN"
            if alloc.holding_shares <= 0:
                return "RELEASE_EMPTY"
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
    ) -> bool:
        """Apply a SELL's *cumulative* fill: release its lots pro rata to the filled part.

        Each lot releases ``lot_shares * filled / total`` (rounded down, capped at the lot), and its cost
        basis in the same proportion, so a fully filled sell releases exactly what the buys used and a
        partially filled one leaves every lot holding what did not sell. Alpha grows by the increment of
        proceeds minus the released cost, buy fees and sell fees.
        """
        progress = self.sells.get(sell_client_order_id)
        if progress is None:
            if filled_shares <= 0:
                return False
            lots = [self._get(symbol, coid) for coid in release_ids]
            progress = SellProgress(
                symbol=symbol,
                client_order_id=sell_client_order_id,
                release_ids=tuple(release_ids),
                total_shares=total_shares,
                start_holding={a.client_order_id: a.holding_shares for a in lots},
                start_cost={a.client_order_id: a.used for a in lots},
                start_fees={a.client_order_id: a.buy_fees - a.released_fees for a in lots},
            )
            self.sells[sell_client_order_id] = progress
        if filled_shares <= progress.filled_shares:
            return False
        filled_shares = min(filled_shares, progress.total_shares)
        released_cost_delta = 0
        released_fees_delta = 0
        for coid in progress.release_ids:
            alloc = self._get(symbol, coid)
            start = progress.start_holding[coid]
            target_shares = min(start, start * filled_shares // progress.total_shares) if progress.total_shares else 0
            if target_shares >= start:
                target_cost, target_fees = progress.start_cost[coid], progress.start_fees[coid]
            else:
                target_cost = progress.start_cost[coid] * target_shares // start if start else 0
                target_fees = progress.start_fees[coid] * target_shares // start if start else 0
            d_shares = target_shares - progress.released_shares.get(coid, 0)
            d_cost = target_cost - progress.released_cost.get(coid, 0)
            d_fees = target_fees - progress.released_fees.get(coid, 0)
            progress.released_shares[coid] = target_shares
            progress.released_cost[coid] = target_cost
            progress.released_fees[coid] = target_fees
            alloc.released_shares += d_shares
            alloc.released_cost += d_cost
            alloc.released_fees += d_fees
            self._set(alloc, used=alloc.used - d_cost)
            released_cost_delta += d_cost
            released_fees_delta += d_fees
            if alloc.frozen == 0:
                if alloc.holding_shares <= 0:
                    alloc.state = AllocationState.RELEASED
                elif alloc.released_shares > 0:
                    alloc.state = AllocationState.PARTLY_RELEASED
        d_proceeds = proceeds_fen - progress.proceeds
        d_sell_fees = fees_fen - progress.fees
        progress.filled_shares = filled_shares
        progress.proceeds = proceeds_fen
        progress.fees = fees_fen
        self.acc_alpha[symbol] += d_proceeds - released_cost_delta - released_fees_delta - d_sell_fees
        return True

    # ---------------------------------------------------------------------------------------- helpers

    def _get(self, symbol: str, client_order_id: str) -> Allocation:
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
            if alloc.frozen < 0 or alloc.used < 0:
                problems.append(f"{alloc.client_order_id}: negative frozen/used")
            if alloc.frozen > alloc.amount:
                problems.append(f"{alloc.client_order_id}: frozen above grant")
            if alloc.used != alloc.filled_value - alloc.released_cost:
                problems.append(f"{alloc.client_order_id}: used != filled - released")
            if alloc.holding_shares < 0:
                problems.append(f"{alloc.client_order_id}: released more shares than filled")
        used, frozen = self.get_used_map(), self.get_frozen_map()
        for code in self.codes:
            mine = [a for a in self.allocations.values() if a.symbol == code]
            if used[code] != sum(a.used for a in mine) or frozen[code] != sum(a.frozen for a in mine):
                problems.append(f"{code}: used/frozen totals differ from the sum of allocations")
        for code in self.codes:
            if used[code] < 0 or frozen[code] < 0:
                problems.append(f"{code}: negative total")
        return problems

    def yuan(self, fen: int) -> Decimal:
        return fen_to_yuan(fen)
