"""Market-agnostic account risk: the state table (``state``), the snapshot (``snapshot``), pure evaluation
(``evaluate`` over ``transitions``), manual commands (``manual``), replay from the audit log (``replay``) and
pre-trade checks (``checks``)."""

from core.risk.checks import MarginMode, OrderIntent, RiskReason, Side, check_order
from core.risk.config import RiskConfig
from core.risk.evaluate import RiskEvaluation, RiskInputs, evaluate
from core.risk.replay import equity_snapshot_event, replay
from core.risk.snapshot import RiskSnapshot, initial_snapshot
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
