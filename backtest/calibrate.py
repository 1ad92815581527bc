"""Calibrate the gate's ETF activity floors from realistic backtests (``docs/risk.md``, "Gate").

    python -m backtest.calibrate --run fish1:512890.SH=fish_s1.csv --run syn1:512890.SH=a.csv,159201.SZ=b.csv

Each ``--run`` is one realistic backtest (default grid and risk settings, one shared vault). For each run
it prints the gate's activity KRIs over the whole replay, per trading day of the data's own calendar
(weekdays without bars are holidays), and the spread of the same rates over every window of
``--window`` trading days (the Shadow stage's length): the 5th and 10th percentiles, the minimum and the
share of windows with no fill at all. ``--floors S,F`` also shows the share of windows each floor pair
would pass. The floors in ``settings.config`` come from these figures (rule in ``docs/risk.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from backtest.engine import RunResult, run_realistic
from core.events import AuditCode
from core.gate import EXCHANGE_TZ, GateConfig, trading_days
from marketdata.bars import Bars, load_bars, session_holidays
from settings.grid import default_params

_CST_MS = 8 * 3_600_000
_DAY_MS = 86_400_000


def _day(ts: datetime) -> date:
    return ts.astimezone(EXCHANGE_TZ).date()


def activity(result: RunResult, data: dict[str, Bars], window: int = 14) -> dict[str, Any]:
    """The gate's activity rates of one realistic run, whole replay and over ``window``-day windows."""
    assert result.risk is not None and result.risk.audit is not None
    times = np.concatenate([b.t for b in data.values()])
    days = sorted({date.fromordinal(int(d) + date(1970, 1, 1).toordinal())
                   for d in np.unique((times + _CST_MS) // _DAY_MS)})  # fmt: skip
    cfg = GateConfig(holidays=session_holidays(times))
    start = datetime.combine(days[0], datetime.min.time(), EXCHANGE_TZ)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), EXCHANGE_TZ)
    n_days = trading_days(start, end, cfg)
    signals: Counter[date] = Counter()
    fills: Counter[date] = Counter()
    for ev in result.risk.audit:
        if ev.code is AuditCode.SIGNAL_ACCEPTED:
            signals[_day(ev.ts)] += 1
        elif ev.code is AuditCode.ORDER_FILLED:
            fills[_day(ev.ts)] += 1
    s = np.array([signals[d] for d in days], dtype=float)
    f = np.array([fills[d] for d in days], dtype=float)
    out: dict[str, Any] = {
        "trading_days": n_days,
        "signals_per_day": float(s.sum() / n_days),
        "fills_per_day": float(f.sum() / n_days),
        "trades": len(result.trades),
    }
    if len(days) >= window:
        kernel = np.ones(window)
        ws = np.convolve(s, kernel, "valid") / window
        wf = np.convolve(f, kernel, "valid") / window
        out["window"] = window
        out["window_signals"] = {"p5": float(np.percentile(ws, 5)), "p10": float(np.percentile(ws, 10)),
                                 "min": float(ws.min())}  # fmt: skip
        out["window_fills"] = {"p5": float(np.percentile(wf, 5)), "p10": float(np.percentile(wf, 10)),
                               "min": float(wf.min())}  # fmt: skip
        out["windows_without_fills"] = float((wf == 0).mean())
        out["_ws"], out["_wf"] = ws, wf
    return out


def calibrate(runs: dict[str, dict[str, Bars]], window: int = 14) -> dict[str, dict[str, Any]]:
    """``activity`` of a realistic run with default settings for each named data set."""
    out = {}
    for label, data in runs.items():
        result = run_realistic(data, {c: default_params(c) for c in data})
        out[label] = activity(result, data, window)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backtest.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="LABEL:CODE=CSV[,CODE=CSV]")
    p.add_argument("--window", type=int, default=14)
    p.add_argument("--floors", help="S,F: signals and fills per trading day to try on every window")
    args = p.parse_args(argv)
    runs: dict[str, dict[str, Bars]] = {}
    for item in args.run:
        label, _, spec = item.partition(":")
        pairs = [x.split("=", 1) for x in spec.split(",")]
        if not label or not spec or any(len(p) != 2 for p in pairs):
            raise SystemExit(f"--run {item!r}: expected LABEL:CODE=CSV[,CODE=CSV]")
        runs[label] = {code: load_bars(path) for code, path in pairs}
    rows = calibrate(runs, args.window)
    floors = [Decimal(x) for x in args.floors.split(",")] if args.floors else None
    for label, row in rows.items():
        ws, wf = row.pop("_ws", None), row.pop("_wf", None)
        if floors is not None and ws is not None and wf is not None:
            row["windows_passing_floors"] = float(((ws >= float(floors[0])) & (wf >= float(floors[1]))).mean())
        print(json.dumps({"run": label, **row}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
