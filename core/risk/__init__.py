"""Market-agnostic account risk: state table, pure evaluation, pre-trade checks."""

from core.risk.checks import MarginMode, OrderIntent, RiskReason, Side, check_order
from core.risk.config import RiskConfig
from core.risk.engine import (
    RiskEvaluation,
    RiskInputs,
    RiskSnapshot,
    equity_snapshot_event,
    evaluate,
    initial_snapshot,
    replay,
)
from core.risk.state import TRANSITIONS, IllegalRiskTransition, RiskState, RiskTrigger, apply_trigger

__all__ = [
    "TRANSITIONS",
    "IllegalRiskTransition",
    "MarginMode",
    "OrderIntent",
    "RiskConfig",
    "RiskEvaluation",
    "RiskInputs",
    "RiskReason",
    "RiskSnapshot",
    "RiskState",
    "RiskTrigger",
    "Side",
    "apply_trigger",
    "check_order",
    "equity_snapshot_event",
    "evaluate",
    "initial_snapshot",
    "replay",
]
