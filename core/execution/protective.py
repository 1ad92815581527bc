"""Protective orders: stop-loss first, take-profit second, both reduce-only and one-cancels-other.

The stop-loss is the one that matters: if it cannot be attached the position is unprotected, so the
account goes REDUCE_ONLY (or the symbol is frozen, by policy) with EXEC_PROTECTIVE_ORDER_MISSING. A
take-profit that fails is only audited (EXEC_TP_ATTACH_FAILED): the position is still protected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from core.events import AuditCode, AuditEvent, Severity
from core.risk.config import RiskConfig
from core.risk.manual import ManualResult, force_reduce, freeze_symbol
from core.risk.snapshot import CAUSE_PROTECTIVE, RiskSnapshot


class ProtectiveKind(str, Enum):
    SL = "SL"
    TP = "TP"


class MissingSlPolicy(str, Enum):
    REDUCE_ONLY = "REDUCE_ONLY"
    FREEZE_SYMBOL = "FREEZE_SYMBOL"


@dataclass(frozen=True)
class ProtectiveOrder:
    kind: ProtectiveKind
    symbol: str
    qty: Decimal  # positive; closes the position
    trigger_price: Decimal
    close_side: str  # SELL closes a long, BUY closes a short
    oco_group: str
    reduce_only: bool = True


def plan_protective_orders(
    symbol: str, position_qty: Decimal, sl_price: Decimal | None, tp_price: Decimal | None, oco_group: str
) -> tuple[ProtectiveOrder, ...]:
    """The orders to place, in placing order (SL before TP); empty for a flat position."""
    if position_qty == 0:
        return ()
    side = "SELL" if position_qty > 0 else "BUY"
    qty = abs(position_qty)
    long = position_qty > 0
    orders = []
    if (
        sl_price is not None
        and tp_price is not None
        and (sl_price >= tp_price if long else sl_price <= tp_price)
    ):
        raise ValueError("stop-loss must be on the losing side of the take-profit")
    if sl_price is not None:
        orders.append(ProtectiveOrder(ProtectiveKind.SL, symbol, qty, sl_price, side, oco_group))
    if tp_price is not None:
        orders.append(ProtectiveOrder(ProtectiveKind.TP, symbol, qty, tp_price, side, oco_group))
    return tuple(orders)


def oco_to_cancel(orders: tuple[ProtectiveOrder, ...], filled: ProtectiveKind) -> tuple[ProtectiveOrder, ...]:
    """When one side fills, the other side(s) of the same group must be cancelled."""
    return tuple(o for o in orders if o.kind is not filled)


def on_attach_result(
    snapshot: RiskSnapshot,
    symbol: str,
    kind: ProtectiveKind,
    ok: bool,
    now: datetime,
    cfg: RiskConfig,
    policy: MissingSlPolicy = MissingSlPolicy.REDUCE_ONLY,
) -> ManualResult:
    """Fold the venue's answer to a protective order into the risk snapshot and audit."""
    if ok:
        return ManualResult(snapshot)
    if kind is ProtectiveKind.TP:
        ev = AuditEvent(
            now, AuditCode.EXEC_TP_ATTACH_FAILED, Severity.WARN, "take-profit not attached", symbol
        )
        return ManualResult(snapshot, (ev,))
    ev = AuditEvent(
        now,
        AuditCode.EXEC_PROTECTIVE_ORDER_MISSING,
        Severity.CRITICAL,
        f"stop-loss not attached; policy {policy.value}",
        symbol,
        {"policy": policy.value},
    )
    if policy is MissingSlPolicy.FREEZE_SYMBOL:
        res = freeze_symbol(snapshot, symbol, now, cfg, "stop-loss missing")
    else:
        res = force_reduce(snapshot, now, cfg, "stop-loss missing", reason=CAUSE_PROTECTIVE)
    return ManualResult(res.snapshot, (ev, *res.events))
