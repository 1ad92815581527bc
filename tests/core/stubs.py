"""Stub factories for the core tests (sensible defaults, override what the test is about)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from core.oms.account import AccountState, HeldPosition
from core.risk.checks import MarginMode, OrderIntent, Side
from core.risk.config import RiskConfig
from core.risk.evaluate import RiskInputs
from core.risk.snapshot import RiskSnapshot

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
CFG = RiskConfig()


def at(hours: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, seconds=seconds)


def account(
    equity: str | int = 100, peak: str | int = 100, positions: list[HeldPosition] | None = None
) -> AccountState:
    return AccountState(
        equity=Decimal(str(equity)),
        peak_equity=Decimal(str(peak)),
        positions={p.symbol: p for p in positions or []},
    )


def inputs(equity: str | int = 100, peak: str | int = 100, **kw: object) -> RiskInputs:
    positions = kw.pop("positions", None)
    return RiskInputs(account=account(equity, peak, positions), **kw)  # type: ignore[arg-type]


def snapshot(**kw: object) -> RiskSnapshot:
    kw.setdefault("peak_equity", Decimal(100))
    kw.setdefault("equity", Decimal(100))
    return RiskSnapshot(**kw)  # type: ignore[arg-type]


def intent(
    symbol: str = "510300",
    opens: bool = True,
    side: Side = Side.BUY,
    qty: str = "100",
    leverage: str = "1",
    margin_mode: MarginMode | None = None,
) -> OrderIntent:
    return OrderIntent(
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        opens=opens,
        leverage=Decimal(leverage),
        margin_mode=margin_mode,
    )


def position(
    symbol: str = "BTCUSDT",
    qty: str = "1",
    mark: str = "100",
    liq: str | None = "50",
    cost: str | None = None,
) -> HeldPosition:
    q = Decimal(qty)
    return HeldPosition(
        symbol=symbol,
        qty=q,
        cost=Decimal(cost) if cost is not None else q * Decimal(mark),
        mark=Decimal(mark),
        liq=Decimal(liq) if liq is not None else None,
    )
