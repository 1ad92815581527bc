"""Backtest speed: bars/second for one and five years, one symbol and both on a shared vault, against a
straightforward pandas per-bar loop (``df.iloc[i]``, the design's original style) of the reference rules.

    python bench/bench_backtest.py --out bench.json [--pandas-days 242]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from backtest.engine import run_realistic, run_reference  # noqa: E402
from backtest.synth import generate  # noqa: E402
from settings.grid import default_params  # noqa: E402

CODES = ("512890.SH", "159201.SZ")
YEAR = 242


def pandas_reference(df: pd.DataFrame, factor: float, floor: float, tp0: float, sell_factor: float) -> int:
    """The reference grid as a plain pandas loop (no cooling/stop), returning the trade count."""
    tr = pd.concat(
        [df.high - df.low, (df.high - df.close.shift()).abs(), (df.low - df.close.shift()).abs()], axis=1
    )
    df = df.assign(atr=tr.max(axis=1, skipna=False).rolling(14).mean())
    ma = df.close.rolling(60).mean()
    df["slope"] = ((ma - ma.shift(5)) / ma.shift(5)).ewm(span=3, adjust=False).mean()
    df["atr_avg"] = df.atr.shift(1).rolling(60).mean()
    lots, anchor, trades = [], None, 0
    for i in range(len(df)):
        row = df.iloc[i]
        if math.isnan(row.atr) or math.isnan(row.slope) or math.isnan(row.atr_avg):
            continue
        p = row.close
        anchor = p if anchor is None else anchor
        step, tp, size = max(floor, row.atr / p * factor), tp0, 1
        if row.slope > 0:
            step, tp, size = step * 1.2, tp * 1.33, 0.7
        elif row.slope < 0:
            tp, size = tp * 0.83, 1.2
        step += 0.0001 * len(lots)
        triggered = p <= anchor * (1 - step)
        keep = [b for b in lots if p < b * (1 + tp * sell_factor)]
        trades += len(lots) - len(keep)
        if lots and not keep:
            anchor = p
        lots = keep
        if len(lots) < 9 and triggered and not row.atr > row.atr_avg * 2.0:
            if int(200000 / 9 * size / p / 100) > 0:
                lots.append(p)
                anchor = p
                trades += 1
    return trades


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench_backtest.json")
    ap.add_argument("--pandas-days", type=int, default=YEAR, help="days for the (slow) pandas loop")
    args = ap.parse_args(argv)
    figures: dict = {"python": platform.python_version(), "machine": platform.machine(), "runs": []}
    for years in (1, 5):
        data = {c: generate(c, YEAR * years, seed=100 + k) for k, c in enumerate(CODES)}
        ref_params = {c: default_params(c, "reference") for c in CODES}
        real_params = {c: default_params(c) for c in CODES}
        n1 = len(data[CODES[0]])
        res, dt = timed(run_reference, data[CODES[0]], ref_params[CODES[0]])
        figures["runs"].append({"years": years, "what": "reference, one symbol", "bars": n1, "seconds": dt,
                                "bars_per_second": n1 / dt, "trades": len(res.trades)})  # fmt: skip
        nb = n1 + len(data[CODES[1]])
        t0 = time.perf_counter()
        trades = sum(len(run_reference(data[c], ref_params[c]).trades) for c in CODES)
        dt = time.perf_counter() - t0
        figures["runs"].append({"years": years, "what": "reference, both symbols", "bars": nb, "seconds": dt,
                                "bars_per_second": nb / dt, "trades": trades})  # fmt: skip
        res, dt = timed(run_realistic, {CODES[0]: data[CODES[0]]}, {CODES[0]: real_params[CODES[0]]})
        figures["runs"].append({"years": years, "what": "realistic, one symbol + vault", "bars": n1, "seconds": dt,
                                "bars_per_second": n1 / dt, "trades": len(res.trades)})  # fmt: skip
        res, dt = timed(run_realistic, data, real_params)
        figures["runs"].append({"years": years, "what": "realistic, both symbols, shared vault", "bars": nb,
                                "seconds": dt, "bars_per_second": nb / dt, "trades": len(res.trades)})  # fmt: skip
    # pandas per-bar loop on the first pandas_days of the one-year 512890 series, same rules (no cooling/stop)
    code = CODES[0]
    bars = generate(code, args.pandas_days, seed=100)
    p = default_params(code, "reference")
    df = bars.to_frame()
    n_pd, dt_pd = timed(pandas_reference, df, p.atr_grid_factor, p.grid_step_floor, p.sell_profit_threshold,
                        p.sell_threshold_factor)  # fmt: skip
    res, dt_core = timed(run_reference, bars, p)
    figures["pandas_iloc"] = {
        "bars": len(bars), "seconds": dt_pd, "bars_per_second": len(bars) / dt_pd, "trades": n_pd,
        "gridbridge_seconds": dt_core, "gridbridge_trades": len(res.trades), "speedup": dt_pd / dt_core,
    }  # fmt: skip
    for r in figures["runs"]:
        print(f"{r['years']}y {r['what']:<40} {r['bars']:>8} bars {r['seconds']:7.3f}s {r['bars_per_second']:>11,.0f} bars/s"
              f"  trades {r['trades']}")  # fmt: skip
    pd_ = figures["pandas_iloc"]
    print(f"pandas iloc loop: {pd_['bars']} bars {pd_['seconds']:.2f}s ({pd_['bars_per_second']:,.0f} bars/s), "
          f"gridbridge {pd_['gridbridge_seconds']:.3f}s -> {pd_['speedup']:.0f}x; trades {pd_['trades']} vs "
          f"{pd_['gridbridge_trades']}")  # fmt: skip
    Path(args.out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
