"""A recorded run (a dry-run folder or a backtest output folder) that the page can show at any time ``t``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from mac.dashboard.analysis import analyse_penalty, build_ladder
from mac.dashboard.history import alpha_frame, history_from_trades
from mac.dashboard.labels import CODES
from mac.dashboard.live import Memory, load_live
from mac.dashboard.orders import ORDER_COLUMNS
from mac.dashboard.params import load_params
from mac.dashboard.parsing import ParseFn, parse_file
from mac.dashboard.sources import Sources
from mac.dashboard.times import ms_to_naive_cst, to_naive_cst
from mac.dashboard.view_models import (
    FRESH,
    OK,
    POOL_HISTORY_COLUMNS,
    FileHealth,
    NodeView,
    PoolHistory,
    PoolSummary,
    Snapshot,
)
from mac.grid.params import CompiledParams
from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, symbol_key
from shared_schema.types import CST


@dataclass
class Replay:
    """A recorded run (dry-run folder or backtest output) that can be viewed at any time ``t``."""

    kind: str  # dry-run / backtest
    root: Path
    params: dict[str, CompiledParams]
    pool_history: PoolHistory
    nodes: dict[str, NodeView]
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame
    audit: pd.DataFrame
    final_pool: PoolSummary | None
    metrics: dict[str, Any] | None
    health: list[FileHealth]
    times: list[pd.Timestamp]

    def snapshot_at(self, t: pd.Timestamp | None) -> Snapshot:
        """The views as they stood at ``t`` (None: the end of the run)."""
        end = self.times[-1] if self.times else None
        t = end if t is None else t
        t_ms = None if t is None else int((pd.Timestamp(t) - pd.Timestamp("1970-01-01")).total_seconds() * 1000) \
            - 8 * 3_600_000
        ph = self.pool_history
        i = ph.at(t)
        pool = self._pool_at(i)
        penalty, ladders, bars = {}, {}, {}
        for code in CODES:
            cp = self.params[code]
            node = self.nodes.get(code)
            if node is not None:
                hist = node.history
            else:  # a backtest: the pool's own utilisation steps
                hist = pd.DataFrame({"t": (ph.frame["t"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)
                                     - 8 * 3_600_000, "utilization": ph.frame["utilization"]})
            if t_ms is not None and len(hist):
                hist = hist[hist["t"] <= t_ms]
            penalty[code] = analyse_penalty(code, hist, cp.penalty_trigger, cp.penalty_release,
                                            node.penalty_on if node is not None and t == end else None,
                                            pool.utilization if pool else None)
            b = self.bars.get(code, pd.DataFrame(columns=["t", "o", "h", "l", "c"]))
            if t_ms is not None and len(b):
                b = b[b["t"] <= t_ms]
            bars[code] = b
            last = float(b["c"].iloc[-1]) if len(b) else None
            at_end = t == end and node is not None
            lots = None if at_end else (ph.lots[i][code] if i is not None and i < len(ph.lots) else ())
            ladders[code] = build_ladder(code, node if at_end else None, cp, last, lots_override=lots,
                                         penalty_on=penalty[code].on)
        orders = self.orders
        if t is not None and len(orders):
            orders = orders[orders["created_at"].isna() | (orders["created_at"] <= t)]
        audit = self.audit[self.audit["ts"] <= t] if t is not None and len(self.audit) else self.audit
        return Snapshot(
            mode="replay", source=f"{self.kind}: {self.root}", as_of=t, health=self.health, pool=pool, quotes=None,
            bars=bars, nodes=self.nodes if t == end else {}, params=self.params, penalty=penalty,
            ladders=ladders, alpha=alpha_frame(ph, (), None, until=t), orders=orders, audit=audit, acks=[],
            metrics=self.metrics, drawdown=_metrics_drawdown(self.metrics), pool_history=ph,
            replay_times=self.times,
        )

    def _pool_at(self, i: int | None) -> PoolSummary | None:
        base = self.final_pool
        reserve = base.reserve_ratio if base else Decimal("0.15")
        caps = base.caps if base else {c: Decimal(200000) for c in CODES}
        if i is None:
            zero = {c: Decimal(0) for c in CODES}
            return PoolSummary(self.pool_history.physical_pool, reserve, caps, zero, zero, zero, 0.0)
        row = self.pool_history.frame.iloc[i]
        d = {p: {c: Decimal(str(round(float(row[f"{p}_{symbol_key(c)}"]), 2))) for c in CODES}
             for p in ("used", "frozen", "alpha")}
        at_end = i == len(self.pool_history.frame) - 1 and base is not None
        return PoolSummary(
            self.pool_history.physical_pool, reserve, caps, d["used"], d["frozen"], d["alpha"],
            float(row["utilization"]), risk_state=base.risk_state if at_end and base else "NORMAL",
            halted=bool(base.halted) if at_end and base else False, market_time=row["t"].to_pydatetime(),
        )


def _metrics_drawdown(metrics: dict[str, Any] | None) -> float | None:
    try:
        return float(metrics["total"]["max_drawdown_pct"]) if metrics else None
    except (KeyError, TypeError, ValueError):
        return None


def detect_replay(folder: Path) -> tuple[str, Path] | None:
    """``("backtest", dir)`` for a folder with trades.csv, ``("dry-run", shared_dir)`` for a dry-run root or its
    shared folder, ``None`` otherwise."""
    folder = Path(folder)
    if (folder / "trades.csv").is_file():
        return "backtest", folder
    if (folder / "shared").is_dir():
        return "dry-run", folder / "shared"
    if any((folder / name).exists() for name in (POOL_FILE, RESULT_FILE, QUOTE_FILE)):
        return "dry-run", folder
    return None


def load_replay(folder: Path | str, parse: ParseFn = parse_file, state_dir: Path | str | None = None,
                config: Path | str | None = None) -> Replay:
    """Load a recorded run once; ``snapshot_at`` slices it. Raises ``ValueError`` for an unknown folder.

    ``config`` is the run's config file (default: ``config.json`` beside the shared folder)."""
    found = detect_replay(Path(folder))
    if found is None:
        raise ValueError(f"{folder} is neither a dry-run folder nor a backtest output (trades.csv)")
    kind, base = found
    if kind == "backtest":
        return _load_backtest(base, parse)
    return _load_dry_run(Sources.resolve(base, state_dir, config), parse)


def _bars_from(folder: Path | None, parse: ParseFn) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    if folder is None or not folder.is_dir():
        return out
    for code in CODES:
        path = folder / f"{symbol_key(code)}.csv"
        if path.is_file():
            parsed = parse("bars", path)
            if parsed.status == FRESH:
                out[code] = parsed.value
    return out


def _load_dry_run(sources: Sources, parse: ParseFn) -> Replay:
    memory = Memory()
    live = load_live(sources, datetime.now(CST), memory, parse, stale_after_s=math.inf)
    params = live.params
    history = live.pool_history
    if history is None:  # no journal: only the final pool is known
        history = PoolHistory(pd.DataFrame(columns=POOL_HISTORY_COLUMNS), (),
                              live.pool.physical_pool if live.pool else Decimal(300000), "none")
    bars = _bars_from(sources.shared_dir.parent / "bars", parse)
    for code in CODES:
        if code not in bars:
            bars[code] = live.bars.get(code, pd.DataFrame(columns=["t", "o", "h", "l", "c"]))
    times = sorted(set(
        [ms_to_naive_cst(int(t)) for b in bars.values() if len(b) for t in b["t"].to_numpy()[:: max(1, len(b) // 400)]]
        + list(history.frame["t"])
    ))
    if live.pool is not None and live.pool.market_time is not None:
        times.append(to_naive_cst(live.pool.market_time))
        times = sorted(set(times))
    return Replay("dry-run", sources.shared_dir.parent, params, history, live.nodes, bars, live.orders, live.audit,
                  live.pool, None, live.health, times)


def _load_backtest(folder: Path, parse: ParseFn) -> Replay:
    health: list[FileHealth] = []
    params = load_params(folder / "config.json" if (folder / "config.json").is_file() else None)
    trades = parse("trades", folder / "trades.csv")
    metrics = parse("metrics", folder / "metrics.json")
    for name, parsed in (("trades.csv", trades), ("metrics.json", metrics)):
        health.append(FileHealth(name, OK if parsed.status == FRESH else parsed.status, None, parsed.error))
    frame = trades.value if trades.status == FRESH else pd.DataFrame(
        columns=["time", "code", "side", "price", "shares", "reason"])
    pool_size = Decimal(str(params[CODES[0]].source.physical_pool))
    history = history_from_trades(frame, params, pool_size)
    bars = _bars_from(folder / "bars", parse) or _bars_from(folder.parent / "bars", parse)
    orders = pd.DataFrame({
        "signal_id": [f"T{i}" for i in range(len(frame))],
        "code": frame["code"], "direction": frame["side"], "layer_index": None, "price": frame["price"],
        "shares": frame["shares"], "amount": frame["price"] * frame["shares"],
        "created_at": ms_to_naive_cst(frame["time"].to_numpy()) if len(frame) else [],
        "status": "FILLED", "status_label": "已成 / filled", "reason": "", "detail": frame["reason"],
        "reason_label": frame["reason"], "message": "", "filled_shares": frame["shares"],
        "avg_price": frame["price"], "updated_at": None, "source": "backtest",
    }, columns=ORDER_COLUMNS)
    times = list(history.frame["t"])
    for b in bars.values():
        times += [ms_to_naive_cst(int(t)) for t in b["t"].to_numpy()[:: max(1, len(b) // 400)]]
    return Replay("backtest", folder, params, history, {}, bars, orders,
                  pd.DataFrame(columns=["ts", "code", "severity", "symbol", "cause", "data"]), None,
                  metrics.value if metrics.status == FRESH else None, health, sorted(set(times)))
