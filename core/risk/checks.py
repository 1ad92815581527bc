"""Pre-trade checks: what the current risk snapshot forbids.

Each check returns ``None`` or a stable reason code; ``check_order`` runs them in a fixed order and returns
the first failure (NautilusTrader RiskEngine style). Reducing trades survive every state except a halt
and a symbol FREEZE: FUSE and COOLDOWN *require* reductions, so refusing them would be backwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from core.risk.config import RiskConfig, base_asset
from core.risk.snapshot import RiskSnapshot
from core.risk.state import RiskState


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"


class MarginMode(str, Enum):
    ISOLATED = "ISOLATED"
    CROSS = "CROSS"


class RiskReason(str, Enum):
    RISK_HALTED = "RISK_HALTED"
    RISK_SYMBOL_FROZEN = "RISK_SYMBOL_FROZEN"
    RISK_DUST_LOCKED = "RISK_DUST_LOCKED"
    RISK_FUSE = "RISK_FUSE"
    RISK_COOLDOWN = "RISK_COOLDOWN"
    RISK_REDUCE_ONLY = "RISK_REDUCE_ONLY"
    RISK_DATA_NOT_OK = "RISK_DATA_NOT_OK"
    RISK_CROSS_MARGIN = "RISK_CROSS_MARGIN"
    RISK_LEVERAGE = "RISK_LEVERAGE"
    RISK_EVENT_WINDOW_FROZEN = "RISK_EVENT_WINDOW_FROZEN"
    RISK_LIQ_DISTANCE = "RISK_LIQ_DISTANCE"
    RISK_NO_BUDGET = "RISK_NO_BUDGET"


@dataclass(frozen=True)
class OrderIntent:
    """An order the strategy wants. ``opens`` = it increases exposure (a buy of a long, a sell that opens
    or adds to a short); the caller knows the position, so it decides. ``margin_mode`` None = spot/ETF."""

    symbol: str
    side: Side
    qty: Decimal
    opens: bool
    leverage: Decimal = Decimal(1)
    margin_mode: MarginMode | None = None


Check = Callable[[RiskSnapshot, OrderIntent, RiskConfig], RiskReason | None]


def check_halted(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return RiskReason.RISK_HALTED if s.halted else None


def check_symbol_frozen(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    # A frozen symbol's real position is unknown: even a "reducing" sell could oversell or open a short.
    return RiskReason.RISK_SYMBOL_FROZEN if o.symbol in s.frozen_symbols else None


def check_dust_locked(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return RiskReason.RISK_DUST_LOCKED if o.opens and o.symbol in s.dust_locked else None


_STATE_REASON = {
    RiskState.FUSE: RiskReason.RISK_FUSE,
    RiskState.COOLDOWN: RiskReason.RISK_COOLDOWN,
    RiskState.REDUCE_ONLY: RiskReason.RISK_REDUCE_ONLY,
}


def check_state(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return _STATE_REASON.get(s.state) if o.opens else None


def check_data_ok(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return RiskReason.RISK_DATA_NOT_OK if o.opens and not s.data_ok else None


def check_margin_mode(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    cross = o.margin_mode is MarginMode.CROSS
    return RiskReason.RISK_CROSS_MARGIN if o.opens and cross and c.require_isolated_margin else None


def check_leverage(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    # Whitelist per base asset (BTC/ETH 3x, SOL 2x, anything else 1x), 1x in an event window; a
    # non-positive leverage is malformed, never "unlevered".
    bad = o.leverage <= 0 or o.leverage > c.leverage_cap(o.symbol, s.is_stressed)
    return RiskReason.RISK_LEVERAGE if o.opens and bad else None


def check_event_window(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    if not (o.opens and s.event_window):
        return None
    frozen = base_asset(o.symbol, c.event_window_freeze_opens) is not None
    return RiskReason.RISK_EVENT_WINDOW_FROZEN if frozen else None


def check_liq_distance(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return RiskReason.RISK_LIQ_DISTANCE if o.opens and s.liq_blocked else None


def check_budget(s: RiskSnapshot, o: OrderIntent, c: RiskConfig) -> RiskReason | None:
    return RiskReason.RISK_NO_BUDGET if o.opens and s.risk_budget(c) <= 0 else None


CHECKS: tuple[Check, ...] = (
    check_halted,
    check_symbol_frozen,
    check_dust_locked,
    check_state,
    check_data_ok,
    check_margin_mode,
    check_leverage,
    check_event_window,
    check_liq_distance,
    check_budget,
)


def check_order(
    risk_snapshot: RiskSnapshot, order_intent: OrderIntent, cfg: RiskConfig | None = None
) -> RiskReason | None:
    """The first reason the current risk state forbids this order, or None when it may go."""
    config = cfg or _DEFAULT
    for check in CHECKS:
        reason = check(risk_snapshot, order_intent, config)
        if reason is not None:
            return reason
    return None


_DEFAULT = RiskConfig()
