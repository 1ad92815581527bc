"""The dashboard's view models: the dataclasses the loaders fill and the page draws (no IO, no streamlit).

A file's health (``FileHealth``), the pool (``PoolSummary``), the step penalty walk (``PenaltyAnalysis``),
a grid's ladder (``LadderView``), the pool over time (``PoolHistory``) and everything one page run shows
(``Snapshot``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from mac.dashboard.labels import CODES
from mac.dashboard.times import ms_to_naive_cst
from mac.grid.ladder import NextBuy
from mac.grid.params import CompiledParams
from shared_schema.ledger_math import utilization
from shared_schema.models import Allocation, PoolFile, QuoteFile, ReductionStatus, Signal, symbol_key

# A parse's outcome (FRESH / MISSING / INVALID) and a file's health (OK / STALE / MISSING / INVALID / DOWN).
FRESH, MISSING, INVALID, STALE, OK = "FRESH", "MISSING", "INVALID", "STALE", "OK"
DOWN = "DOWN"  # the executor's heartbeat (shared_pool.json rewrites) stopped


@dataclass(frozen=True)
class NodeView:
    """A node's ``dashboard_state_<code>.json`` (what ``StrategyNode.dashboard_view`` writes)."""

    code: str
    updated_at: datetime | None
    last_bar_t: int
    penalty_on: bool
    anchor: float | None
    lots: tuple[dict[str, Any], ...]
    pending: tuple[str, ...]
    mismatch: str
    indicators: dict[str, float]
    counters: dict[str, int]
    events: tuple[dict[str, Any], ...]
    history: pd.DataFrame  # t (epoch ms), utilization, penalty_on (the node's flag)
    last_flat_index: int | None = None
    usable_index: int | None = None
    rsi: float | None = None


@dataclass(frozen=True)
class SignalsView:
    signals: tuple[Signal, ...]
    invalid_entries: int


@dataclass
class PoolPoint:
    """One ``shared_pool.json`` seen in this page session (the live alpha series between history points)."""

    t: datetime
    seq: int
    used: dict[str, Decimal]
    frozen: dict[str, Decimal]
    acc_alpha: dict[str, Decimal]
    utilization: float


def pool_utilization(pool: PoolFile) -> float:
    """Utilisation from the pool file's exact amounts by the one shared function (the node and the vault
    call it too), never from the published ``utilization`` figure, which an older executor rounded."""
    committed = sum(per_code(pool, "used").values(), Decimal(0)) + sum(per_code(pool, "frozen").values(), Decimal(0))
    return utilization(committed, Decimal(pool.physical_pool))


def per_code(pool: PoolFile, prefix: str) -> dict[str, Decimal]:
    """The pool file's ``<prefix>_<symbol>`` fields by code, exact yuan."""
    return {c: Decimal(getattr(pool, f"{prefix}_{symbol_key(c)}")) for c in CODES}


@dataclass(frozen=True)
class FileHealth:
    name: str
    status: str  # OK / STALE / MISSING / INVALID
    age_s: float | None = None
    error: str = ""
    required: bool = True

    @property
    def is_problem(self) -> bool:
        return self.status != OK and self.required


@dataclass(frozen=True)
class PoolSummary:
    """The pool as the vault published it (or as a replay reconstructs it), exact yuan."""

    physical_pool: Decimal
    reserve_ratio: Decimal
    caps: dict[str, Decimal]
    used: dict[str, Decimal]
    frozen: dict[str, Decimal]
    acc_alpha: dict[str, Decimal]
    utilization: float
    risk_state: str = "NORMAL"
    halted: bool = False
    market_time: datetime | None = None
    seq: int | None = None
    allocations: dict[str, tuple[Allocation, ...]] = field(default_factory=dict)
    reduction: ReductionStatus | None = None  # the executor's forced reduction under way

    @property
    def committed(self) -> Decimal:
        return sum(self.used.values(), Decimal(0)) + sum(self.frozen.values(), Decimal(0))

    @property
    def free(self) -> Decimal:
        return self.physical_pool - self.committed

    @property
    def reserve_line(self) -> Decimal:
        """Committed amount at which a layer-0 buy would eat the reserve (85% of the pool by default)."""
        return self.physical_pool * (1 - self.reserve_ratio)

    @classmethod
    def of(cls, pool: PoolFile) -> PoolSummary:
        return cls(
            physical_pool=Decimal(pool.physical_pool),
            reserve_ratio=Decimal(pool.reserve_ratio),
            caps={c: Decimal(getattr(pool, f"nominal_cap_{symbol_key(c)}")) for c in CODES},
            used=per_code(pool, "used"),
            frozen=per_code(pool, "frozen"),
            acc_alpha=per_code(pool, "acc_alpha"),
            utilization=pool_utilization(pool),
            risk_state=pool.risk_state,
            halted=pool.halted,
            market_time=pool.market_time,
            seq=pool.seq,
            allocations={c: tuple(getattr(pool, f"allocations_{symbol_key(c)}")) for c in CODES},
            reduction=pool.reduction,
        )


@dataclass(frozen=True)
class PenaltyAnalysis:
    """The step penalty over the utilisation history, walked through ``penalty_after``."""

    code: str
    series: pd.DataFrame  # t (epoch ms), utilization, penalty (computed)
    switches: tuple[tuple[int, bool, float], ...]  # (t, now_on, utilisation)
    on: bool
    since_t: int | None
    utilization: float | None  # the last point's
    node_flag: bool | None  # what the node persisted
    next_on: bool | None  # penalty_after(on, pool utilisation now): what the next bar does
    pool_utilization: float | None
    trigger: float
    release: float

    @property
    def agrees_with_node(self) -> bool:
        return self.node_flag is None or self.node_flag == self.on

    def rule_text(self) -> str:
        """The state and the rule that holds it, e.g. 'ON since 10:42, utilisation 87.0%: stays on until below 85%'."""
        since = "" if self.since_t is None else f" since {ms_to_naive_cst(self.since_t):%m-%d %H:%M}"
        u = self.utilization if self.pool_utilization is None else self.pool_utilization
        u_text = "n/a" if u is None else f"{u:.1%}"
        if self.on:
            return (f"ON 开启{since}, utilisation {u_text}: stays on until utilisation falls below "
                    f"{self.release:.0%} (惩罚保持至利用率低于{self.release:.0%})")
        return (f"OFF 关闭{since}, utilisation {u_text}: switches on only above {self.trigger:.0%} "
                f"(利用率高于{self.trigger:.0%}才开启)")

    def why_text(self) -> str:
        if not self.switches:
            return "no switch in the recorded history"
        t, on, u = self.switches[-1]
        edge = f"above {self.trigger:.0%}" if on else f"below {self.release:.0%}"
        return f"last switch {'ON' if on else 'OFF'} at {ms_to_naive_cst(t):%m-%d %H:%M}: utilisation {u:.2%} {edge}"


@dataclass(frozen=True)
class LotView:
    client_order_id: str
    layer_index: int
    shares: int
    buy_price: float
    take_profit: float
    status: str


@dataclass(frozen=True)
class LadderView:
    """One symbol's grid: open lots with take-profit prices, the next buy, indicators and pauses."""

    code: str
    last_price: float | None
    lots: tuple[LotView, ...]
    next_buy: NextBuy | None
    atr: float | None
    atr_avg: float | None
    slope: float | None
    trend: str
    breaker_on: bool
    cooling_left: int | None
    penalty_on: bool
    mismatch: str
    approximate: bool = False  # replay: reconstructed from the vault, not the node's own state


POOL_HISTORY_COLUMNS = ["t"] + [f"{p}_{symbol_key(c)}" for p in ("used", "frozen", "alpha") for c in CODES] + [
    "utilization"]


@dataclass(frozen=True)
class PoolHistory:
    """The pool over time: one row per change (t naive CST), and the open lots after each row."""

    frame: pd.DataFrame  # POOL_HISTORY_COLUMNS
    lots: tuple[dict[str, tuple[LotView, ...]], ...] = ()
    physical_pool: Decimal = Decimal(300000)
    source: str = ""
    skipped: int = 0  # lines of the history file that were not valid points

    def at(self, t: pd.Timestamp | None) -> int | None:
        """Index of the last row at or before ``t`` (None when the history starts later)."""
        if not len(self.frame):
            return None
        if t is None:
            return len(self.frame) - 1
        i = int(np.searchsorted(self.frame["t"].to_numpy(), np.datetime64(t), side="right")) - 1
        return i if i >= 0 else None


@dataclass
class Snapshot:
    """Everything one page run shows."""

    mode: str  # live / replay
    source: str
    as_of: pd.Timestamp | None
    health: list[FileHealth]
    pool: PoolSummary | None
    quotes: QuoteFile | None
    bars: dict[str, pd.DataFrame]
    nodes: dict[str, NodeView]
    params: dict[str, CompiledParams]
    penalty: dict[str, PenaltyAnalysis]
    ladders: dict[str, LadderView]
    alpha: pd.DataFrame
    orders: pd.DataFrame
    audit: pd.DataFrame
    acks: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    drawdown: float | None = None
    pool_history: PoolHistory | None = None
    replay_times: list[pd.Timestamp] = field(default_factory=list)

    @property
    def problems(self) -> list[FileHealth]:
        return [h for h in self.health if h.is_problem]
