"""The grid views computed from what the node and the vault wrote: the step-penalty walk and the ladder.

The penalty state is never re-derived here by hand: ``analyse_penalty`` walks the utilisation history
through ``mac.grid.core.penalty_after``, the one definition of the hysteresis rule; ladder prices come
from ``mac.grid.ladder``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mac.dashboard.view_models import LadderView, LotView, NodeView, PenaltyAnalysis
from mac.grid.core import OPEN, penalty_after
from mac.grid.ladder import cooling_bars_left, next_buy, take_profit_price
from mac.grid.params import CompiledParams


def analyse_penalty(
    code: str,
    history: pd.DataFrame,
    trigger: float,
    release: float,
    node_flag: bool | None = None,
    pool_utilization: float | None = None,
) -> PenaltyAnalysis:
    """Walk ``history`` (t, utilization[, penalty_on]) through ``penalty_after``.

    The grid starts with the penalty off; when the history has a ``penalty_on`` column (a node's history,
    possibly truncated) the state before the window is the node's flag at its first point.
    """
    ts = history["t"].to_numpy(dtype="int64") if len(history) else np.zeros(0, dtype="int64")
    us = history["utilization"].to_numpy(dtype="float64") if len(history) else np.zeros(0)
    on = False
    start = 0
    if len(history) and "penalty_on" in history.columns:
        on = bool(history["penalty_on"].iloc[0])
        start = 1
    states = np.zeros(len(ts), dtype=bool)
    if len(ts):
        states[0] = on
    switches: list[tuple[int, bool, float]] = []
    since: int | None = int(ts[0]) if len(ts) and on else None
    for i in range(start, len(ts)):
        now_on = penalty_after(on, float(us[i]), trigger, release)
        if now_on != on:
            switches.append((int(ts[i]), now_on, float(us[i])))
            since = int(ts[i])
            on = now_on
        states[i] = on
    if since is None and len(ts):
        since = int(ts[0])
    series = pd.DataFrame({"t": ts, "utilization": us, "penalty": states})
    next_on = None if pool_utilization is None else penalty_after(on, pool_utilization, trigger, release)
    return PenaltyAnalysis(code, series, tuple(switches), on, since, float(us[-1]) if len(us) else None,
                           node_flag, next_on, pool_utilization, trigger, release)


def build_ladder(
    code: str,
    node: NodeView | None,
    params: CompiledParams,
    last_price: float | None,
    lots_override: Iterable[LotView] | None = None,
    penalty_on: bool | None = None,
) -> LadderView:
    """The ladder from a node's persisted state (or replayed lots), prices by ``mac.grid.ladder``."""
    ind = node.indicators if node else {}
    slope = ind.get("slope")
    pen = node.penalty_on if penalty_on is None and node else bool(penalty_on)
    if lots_override is not None:
        lots = tuple(lots_override)
        raw_lots: list[dict[str, Any]] = [{"status": lot.status} for lot in lots]
    else:
        raw_lots = list(node.lots) if node else []
        lots = tuple(
            LotView(str(lot.get("client_order_id", "")), int(lot.get("layer_index", 0)), int(lot.get("shares", 0)),
                    float(lot.get("buy_price", 0.0)), take_profit_price(float(lot.get("buy_price", 0.0)), slope, params),
                    str(lot.get("status", OPEN)))
            for lot in raw_lots
        )
    nb = next_buy(node.anchor if node else None, ind, raw_lots, params, pen) if node else None
    cooling = None
    if node is not None and node.usable_index is not None and node.last_flat_index is not None:
        cooling = cooling_bars_left(nb.n_lots if nb else len(lots), node.usable_index, node.last_flat_index,
                                    node.rsi if node.rsi is not None else 50.0, params)
    return LadderView(
        code=code,
        last_price=last_price,
        lots=lots,
        next_buy=nb,
        atr=ind.get("atr"),
        atr_avg=ind.get("atr_avg"),
        slope=slope,
        trend=nb.trend if nb else "FLAT",
        breaker_on=nb.breaker_on if nb else False,
        cooling_left=cooling,
        penalty_on=pen,
        mismatch=node.mismatch if node else "",
        approximate=lots_override is not None,
    )


def lots_table(ladder: LadderView) -> pd.DataFrame:
    return pd.DataFrame(
        [(lot.layer_index, lot.client_order_id, lot.shares, lot.buy_price, lot.take_profit, lot.status)
         for lot in ladder.lots],
        columns=["layer", "client_order_id", "shares", "buy_price", "take_profit", "status"],
    )
