"""backtest.metrics' shortcuts: the sortedness ones give what ``np.unique`` gives, sorted input or not; the
vectorised equity curves give what the per-trade loop gave."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from backtest.engine import RunResult, SymbolResult, Trade
from backtest.metrics import _days, combined_equity, equity_curve, union_times


def test_union_times_is_np_unique_of_the_concatenation() -> None:
    rng = np.random.default_rng(13)
    for _ in range(300):
        columns = []
        for _ in range(int(rng.integers(1, 4))):
            col = rng.integers(0, 60, int(rng.integers(0, 30)))
            columns.append(np.sort(col) if rng.random() < 0.8 else col)
        got = union_times(columns)
        want = np.unique(np.concatenate(columns))
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_days_counts_distinct_china_days_sorted_or_not() -> None:
    rng = np.random.default_rng(7)
    hour = 3_600_000
    for _ in range(300):
        times = rng.integers(0, 24 * 20, int(rng.integers(0, 40))) * hour
        if rng.random() < 0.7:
            times = np.sort(times)
        want = np.unique((times + 8 * hour) // 86_400_000).size
        assert _days(times) == want
    assert _days(np.zeros(0, dtype=np.int64)) == 0


def _equity_by_loop(res):
    """``equity_curve`` as it was: one search and one addition per trade."""
    cash_delta, share_delta = np.zeros(len(res.times)), np.zeros(len(res.times))
    for t in res.trades:
        i = int(np.searchsorted(res.times, t.t))
        value = float(t.price * t.shares)
        if t.side == "BUY":
            cash_delta[i] -= value + float(t.fees)
            share_delta[i] += t.shares
        else:
            cash_delta[i] += value - float(t.fees)
            share_delta[i] -= t.shares
    return np.cumsum(cash_delta) + np.cumsum(share_delta) * res.closes


def _combined_by_search(result):
    times = union_times([r.times for r in result.symbols.values()])
    total = np.zeros(times.size)
    for r in result.symbols.values():
        idx = np.searchsorted(r.times, times, side="right") - 1
        total += np.where(idx >= 0, _equity_by_loop(r)[np.clip(idx, 0, None)], 0.0)
    return times, total


def test_equity_curves_are_the_per_trade_loop_bit_for_bit() -> None:
    """Trades on random bars, several on one bar (sells and buys, fees), symbols on equal and on different
    timelines: the vectorised curves and the combined equity equal the loop's to the last bit."""
    rng = np.random.default_rng(5)
    for case in range(60):
        symbols = {}
        shared_n = int(rng.integers(1, 400))  # every fourth case: both symbols on one timeline
        for k, code in enumerate(("512890.SH", "159201.SZ")):
            n = shared_n if case % 4 == 0 else int(rng.integers(1, 400))
            times = np.sort(rng.choice(1000, n, replace=False)).astype(np.int64) if case % 2 else np.arange(n) * 60
            closes = np.round(rng.uniform(0.8, 1.6, n), 3)
            trades = []
            for _ in range(int(rng.integers(0, 40))):
                i = int(rng.integers(0, n))
                side = "BUY" if rng.random() < 0.5 else "SELL"
                trades.append(Trade(int(times[i]), code, side, int(rng.integers(800, 1600)), int(rng.integers(1, 300)) * 100,
                                    "R", f"c{k}{len(trades)}", 0, Decimal(str(round(rng.uniform(0, 9), 2))), 0))  # fmt: skip
            res = SymbolResult(code, None, trades)  # type: ignore[arg-type]
            res.times, res.closes = times, closes
            symbols[code] = res
            assert equity_curve(res).tolist() == _equity_by_loop(res).tolist()
        result = RunResult("reference", symbols)
        got, want = combined_equity(result), _combined_by_search(result)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
