"""The pool over time, from what a run recorded: the executor's published pool history
(``shared_schema.pool_history``) or a backtest's ``trades.csv``; the alpha series; chart downsampling.

The dashboard never re-books the ledger: in a dry run or a live session the pool's figures and open lots
are the ones the executor booked and published point by point. Only the final signals' payloads (price,
layer) come from the executor's journal, read-only through ``core.journal``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.journal import read_records
from mac.dashboard.labels import CODES
from mac.dashboard.times import ms_to_naive_cst, to_naive_cst
from mac.dashboard.view_models import POOL_HISTORY_COLUMNS, LotView, PoolHistory, PoolPoint, PoolSummary
from mac.grid.core import OPEN
from mac.grid.ladder import take_profit_price
from mac.grid.params import CompiledParams
from shared_schema.ledger_math import commission, utilization
from shared_schema.models import symbol_key
from shared_schema.pool_history import PoolHistoryPoint

POOL_HISTORY_SOURCE = "executor pool history (pool_history.jsonl beside the executor journal)"


def history_from_points(points: Sequence[PoolHistoryPoint], params: dict[str, CompiledParams],
                        physical_pool: Decimal = Decimal(300000), skipped: int = 0) -> PoolHistory:
    """The executor's published pool history as the dashboard's frame: one row per point (t naive CST) and
    the open lots after it, priced by the grid's take-profit rule. ``physical_pool`` is used only when
    there is no point yet; ``skipped`` counts the file's invalid lines, for the page to report."""
    rows: list[dict[str, Any]] = []
    lots: list[dict[str, tuple[LotView, ...]]] = []
    for point in points:
        row: dict[str, Any] = {"t": to_naive_cst(point.t)}
        for c in CODES:
            k = symbol_key(c)
            row[f"used_{k}"] = float(point.used.get(c, Decimal(0)))
            row[f"frozen_{k}"] = float(point.frozen.get(c, Decimal(0)))
            row[f"alpha_{k}"] = float(point.acc_alpha.get(c, Decimal(0)))
        row["utilization"] = point.utilization
        rows.append(row)
        lots.append({
            c: tuple(LotView(lot.client_order_id, lot.layer_index, lot.shares, lot.avg_price,
                             take_profit_price(lot.avg_price, 0.0, params[c]) if c in params else 0.0, lot.status)
                     for lot in point.lots.get(c, ()))
            for c in CODES
        })
    pool = points[-1].physical_pool if points else physical_pool
    return PoolHistory(pd.DataFrame(rows, columns=POOL_HISTORY_COLUMNS), tuple(lots), pool, POOL_HISTORY_SOURCE,
                       skipped)


def journal_signals(path: Path) -> dict[str, dict[str, Any]]:
    """Every signal payload the executor journaled (by ``signal_id``), read-only: a final signal has left
    ``order_signal.json``, so its price and layer come from here. A torn last line is ignored."""
    signals: dict[str, dict[str, Any]] = {}
    for record, _size in read_records(path):
        if record.get("k") == "signal" and isinstance(record.get("sig"), dict):
            signals[record["id"]] = record["sig"]
    return signals


def history_from_trades(trades: pd.DataFrame, params: dict[str, CompiledParams],
                        physical_pool: Decimal = Decimal(300000)) -> PoolHistory:
    """A backtest's ``trades.csv`` as a pool history: lots matched by shares, alpha net of commission.

    A take-profit sells one whole lot, so a sell is matched to the cheapest open lot of the same size
    (several lots sold together by a stop are matched greedily). Fees use the params' commission model.
    """
    open_lots: dict[str, list[LotView]] = {c: [] for c in CODES}
    used = {c: Decimal(0) for c in CODES}
    alpha = {c: Decimal(0) for c in CODES}
    fees_open: dict[str, Decimal] = {}
    rows: list[dict[str, Any]] = []
    lots: list[dict[str, tuple[LotView, ...]]] = []
    for i, tr in enumerate(trades.itertuples(index=False)):
        code = str(tr.code)
        if code not in used:
            continue
        cp = params[code]
        price = Decimal(str(tr.price))
        shares = int(tr.shares)
        value = price * shares
        fee = commission(value, cp.commission_rate, cp.commission_min)
        if tr.side == "BUY":
            coid = f"T{i}"
            open_lots[code].append(LotView(coid, len(open_lots[code]), shares, float(price),
                                           take_profit_price(float(price), 0.0, cp), OPEN))
            used[code] += value
            fees_open[coid] = fee
        else:
            left = shares
            chosen = sorted((lot for lot in open_lots[code] if lot.shares == shares), key=lambda lot: lot.buy_price)
            chosen = chosen[:1] or sorted(open_lots[code], key=lambda lot: lot.buy_price)
            for lot in chosen:
                if left <= 0:
                    break
                take = min(left, lot.shares)
                cost = Decimal(str(lot.buy_price)) * take
                frac = Decimal(take) / lot.shares
                buy_fee = fees_open.get(lot.client_order_id, Decimal(0)) * frac
                alpha[code] += price * take - cost - buy_fee
                used[code] -= cost
                open_lots[code].remove(lot)
                if take < lot.shares:
                    open_lots[code].append(replace(lot, shares=lot.shares - take))
                left -= take
            alpha[code] -= fee
        row: dict[str, Any] = {"t": ms_to_naive_cst(int(tr.time))}
        for c in CODES:
            k = symbol_key(c)
            row[f"used_{k}"] = float(used[c])
            row[f"frozen_{k}"] = 0.0
            row[f"alpha_{k}"] = float(alpha[c].quantize(Decimal("0.01")))
        row["utilization"] = utilization(sum(used.values(), Decimal(0)), Decimal(physical_pool))
        rows.append(row)
        lots.append({c: tuple(v) for c, v in open_lots.items()})
    return PoolHistory(pd.DataFrame(rows, columns=POOL_HISTORY_COLUMNS), tuple(lots), physical_pool,
                       "backtest trades")


def alpha_frame(history: PoolHistory | None, memory_points: Iterable[PoolPoint] = (),
                pool: PoolSummary | None = None, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """acc_alpha per symbol over time (t, alpha_159201, alpha_512890), merged from every source we have."""
    cols = ["t"] + [f"alpha_{symbol_key(c)}" for c in CODES]
    parts = []
    if history is not None and len(history.frame):
        parts.append(history.frame[cols])
    mem = [{"t": to_naive_cst(p.t), **{f"alpha_{symbol_key(c)}": float(p.acc_alpha[c]) for c in CODES}}
           for p in memory_points]
    if mem:
        parts.append(pd.DataFrame(mem, columns=cols))
    if pool is not None and pool.market_time is not None and until is None:
        parts.append(pd.DataFrame([{"t": to_naive_cst(pool.market_time),
                                    **{f"alpha_{symbol_key(c)}": float(pool.acc_alpha[c]) for c in CODES}}],
                                  columns=cols))
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    df = df.dropna(subset=["t"]).sort_values("t", kind="stable").drop_duplicates(keep="last")
    if until is not None:
        df = df[df["t"] <= until]
    return df.reset_index(drop=True)


def downsample(df: pd.DataFrame, column: str, max_points: int = 2000, keep: Iterable[int] = ()) -> pd.DataFrame:
    """At most ~``max_points`` rows: per bucket the first, min, max and last of ``column`` (shape-preserving).

    Rows listed in ``keep`` (positions, e.g. penalty switches) always stay.
    """
    n = len(df)
    if n <= max_points:
        return df
    buckets = max(1, max_points // 4)
    edges = np.linspace(0, n, buckets + 1, dtype=int)
    values = df[column].to_numpy(dtype="float64")
    idx = set(int(k) for k in keep if 0 <= k < n)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = values[a:b]
        idx.update((a, b - 1, a + int(np.nanargmin(seg)), a + int(np.nanargmax(seg))))
    return df.iloc[sorted(idx)]
