"""What the account's risk state means for the grid: one pure mapping used by the node and the backtest.

The executor owns the risk state machine (``core.risk``) and publishes its state in ``shared_pool.json``;
the backtest runs the same machine in memory. Both turn ``(risk_state, halted)`` into a ``GridRiskMode``
with ``grid_risk_mode`` and apply it the same way:

| state        | buys                         | buy step              | close all |
|--------------|------------------------------|-----------------------|-----------|
| NORMAL       | yes                          | x1                    | no        |
| DEGRADED     | yes, or none at layer 0      | x multiplier (widen)  | no        |
| COOLDOWN     | no                           | -                     | no        |
| REDUCE_ONLY  | no                           | -                     | no        |
| FUSE         | no (until a manual reset)    | -                     | yes       |

Halted: no buys and no close-all (the executor accepts no new order of any kind until Resume). An unknown
state string blocks buys: a newer executor may publish a state this node does not know, and the safe
reading of "unknown" is "do not add exposure".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

DegradedAction = Literal["widen", "block_layer0"]

# Detail codes of the node's BUY_BLOCKED events and the backtest's blocked-buy counters.
BLOCK_HALTED = "HALTED"
BLOCK_DEGRADED_LAYER0 = "RISK_DEGRADED_LAYER0"


class GridRiskPolicy(BaseModel):
    """How the grid reacts to DEGRADED: widen the buy step (default) or open no new cycle (layer 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    degraded_action: DegradedAction = "widen"
    degraded_step_multiplier: float = Field(default=1.5, ge=1.0, description="buy step x this in DEGRADED (widen)")


class DegradedSettings(Protocol):
    """The fields of the config's ``node`` section (``settings.config.NodeConfig``) that say what DEGRADED
    means; a Protocol so the pure grid package needs nothing of the config but these two."""

    @property
    def degraded_action(self) -> DegradedAction: ...

    @property
    def degraded_step_multiplier(self) -> float: ...


def risk_policy_from_config(node: DegradedSettings) -> GridRiskPolicy:
    """The grid's DEGRADED policy from the config's ``node`` section (the node and the backtest read it
    here, so both react to DEGRADED the same way)."""
    return GridRiskPolicy(degraded_action=node.degraded_action, degraded_step_multiplier=node.degraded_step_multiplier)


@dataclass(frozen=True, slots=True)
class GridRiskMode:
    """What the grid may do under the current risk state. ``block_reason`` names why buys are refused."""

    buys_allowed: bool = True
    layer0_allowed: bool = True
    buy_step_multiplier: float = 1.0
    close_all: bool = False
    block_reason: str = ""

    def buy_refusal(self, layer_index: int) -> str:
        """The reason a buy at ``layer_index`` is refused now, or ``""`` when it may go."""
        if not self.buys_allowed:
            return self.block_reason
        if layer_index == 0 and not self.layer0_allowed:
            return BLOCK_DEGRADED_LAYER0
        return ""


NORMAL_MODE = GridRiskMode()


def grid_risk_mode(risk_state: str, halted: bool, policy: GridRiskPolicy) -> GridRiskMode:
    """The grid's mode for a published risk state (the one definition; node and backtest call it)."""
    if halted:
        return GridRiskMode(False, False, 1.0, False, BLOCK_HALTED)
    if risk_state == "NORMAL":
        return NORMAL_MODE
    if risk_state == "DEGRADED":
        if policy.degraded_action == "block_layer0":
            return GridRiskMode(True, False, 1.0, False, "")
        return GridRiskMode(True, True, policy.degraded_step_multiplier, False, "")
    if risk_state == "FUSE":
        return GridRiskMode(False, False, 1.0, True, "RISK_FUSE")
    # COOLDOWN, REDUCE_ONLY and anything this version does not know: only sell.
    return GridRiskMode(False, False, 1.0, False, f"RISK_{risk_state}")
