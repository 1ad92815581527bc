"""Pure comparison of local and broker positions and cash, graded NONE / MINOR / SEVERE.

The risk engine turns the grade into action: MINOR degrades the account, SEVERE freezes the symbols that
disagree (a cash mismatch, which belongs to no symbol, makes the account REDUCE_ONLY).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from pydantic import BaseModel, ConfigDict

from core.events import AuditCode, AuditEvent, Severity

ZERO = Decimal(0)


class ReconcileSeverity(str, Enum):
    NONE = "NONE"
    MINOR = "MINOR"
    SEVERE = "SEVERE"


_RANK = {ReconcileSeverity.NONE: 0, ReconcileSeverity.MINOR: 1, ReconcileSeverity.SEVERE: 2}


class ReconcileTolerances(BaseModel):
    """A qty gap within ``qty_abs`` is noise; within ``qty_minor_pct`` of the larger side it is MINOR (a fill
    report in flight); beyond, or a holding only one side knows of, is SEVERE. Cash likewise in money."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    qty_abs: Decimal = ZERO
    qty_minor_pct: Decimal = Decimal("0.05")
    cash_abs: Decimal = Decimal("1")
    cash_minor: Decimal = Decimal("100")


@dataclass(frozen=True)
class Mismatch:
    symbol: str | None  # None for cash
    local: Decimal
    broker: Decimal
    severity: ReconcileSeverity

    @property
    def diff(self) -> Decimal:
        return self.broker - self.local


@dataclass(frozen=True)
class ReconcileResult:
    severity: ReconcileSeverity
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def severe_symbols(self) -> frozenset[str]:
        return frozenset(
            m.symbol
            for m in self.mismatches
            if m.symbol is not None and m.severity is ReconcileSeverity.SEVERE
        )

    @property
    def has_severe_cash(self) -> bool:
        return any(m.symbol is None and m.severity is ReconcileSeverity.SEVERE for m in self.mismatches)


def _grade_qty(local: Decimal, broker: Decimal, tol: ReconcileTolerances) -> ReconcileSeverity:
    gap = abs(broker - local)
    if gap <= tol.qty_abs:
        return ReconcileSeverity.NONE
    if local == 0 or broker == 0 or (local > 0) != (broker > 0):
        return ReconcileSeverity.SEVERE  # a holding only one side knows of, or opposite sides
    if gap <= tol.qty_minor_pct * max(abs(local), abs(broker)):
        return ReconcileSeverity.MINOR
    return ReconcileSeverity.SEVERE


def _grade_cash(local: Decimal, broker: Decimal, tol: ReconcileTolerances) -> ReconcileSeverity:
    gap = abs(broker - local)
    if gap <= tol.cash_abs:
        return ReconcileSeverity.NONE
    return ReconcileSeverity.MINOR if gap <= tol.cash_minor else ReconcileSeverity.SEVERE


def reconcile(
    local_positions: Mapping[str, Decimal],
    broker_positions: Mapping[str, Decimal],
    local_cash: Decimal | None,
    broker_cash: Decimal | None,
    tolerances: ReconcileTolerances | None = None,
) -> ReconcileResult:
    """Compare quantities per symbol and cash; the result's severity is the worst mismatch's."""
    tol = tolerances or ReconcileTolerances()
    found: list[Mismatch] = []
    for symbol in sorted(set(local_positions) | set(broker_positions)):
        local = local_positions.get(symbol, ZERO)
        broker = broker_positions.get(symbol, ZERO)
        grade = _grade_qty(local, broker, tol)
        if grade is not ReconcileSeverity.NONE:
            found.append(Mismatch(symbol, local, broker, grade))
    if local_cash is not None and broker_cash is not None:
        grade = _grade_cash(local_cash, broker_cash, tol)
        if grade is not ReconcileSeverity.NONE:
            found.append(Mismatch(None, local_cash, broker_cash, grade))
    worst = max((m.severity for m in found), key=_RANK.__getitem__, default=ReconcileSeverity.NONE)
    return ReconcileResult(worst, tuple(found))


def reconcile_events(result: ReconcileResult, now: datetime) -> list[AuditEvent]:
    """One OMS_RECONCILE_MISMATCH per mismatch (nothing when clean), for the audit log."""
    events = []
    for m in result.mismatches:
        events.append(
            AuditEvent(
                ts=now,
                code=AuditCode.OMS_RECONCILE_MISMATCH,
                severity=Severity.ERROR if m.severity is ReconcileSeverity.SEVERE else Severity.WARN,
                cause=f"{'cash' if m.symbol is None else 'position'} mismatch graded {m.severity.value}",
                symbol=m.symbol,
                data={
                    "local": str(m.local),
                    "broker": str(m.broker),
                    "diff": str(m.diff),
                    "grade": m.severity.value,
                },
            )
        )
    return events
