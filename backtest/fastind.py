"""Vectorised indicators for the backtest, bit-identical to ``mac.grid.indicators``.

Every simple mean is a window sum added oldest-to-newest, then divided by ``n``. Done as ``n`` shifted
array additions (``acc = x[j]; acc += x[j+1]; ...``), each element sees exactly the additions the
incremental code does, so the values are equal to the last bit, not just close. The EMA of the slope is
recursive: ``_recursion`` finds it column-wise and checks every element against its predecessor, so it
is the loop's result bit for bit (a few ms for five years of minutes, where a Python loop takes tens).
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from mac.grid.indicators import IndicatorPeriods, IndicatorValues, rsi_from_means


def _window_mean(x: np.ndarray, n: int) -> np.ndarray:
    """``out[i] = (x[i-n+1] + ... + x[i]) / n`` added left to right; NaN where the window is short."""
    out = np.full(x.shape[0], np.nan)
    m = x.shape[0] - n + 1
    if m <= 0:
        return out
    acc = x[0:m].copy()
    for j in range(1, n):
        acc += x[j : j + m]
    out[n - 1 :] = acc / n
    return out


def _ema(raw: np.ndarray, alpha: float) -> np.ndarray:
    """The slope's EMA, ``s = alpha * r + beta * s`` from the first defined ``r`` on, skipping NaNs (not
    defined yet) the way the incremental code does. Without a gap (always, on real bars) it is
    ``_recursion``: exact, column-wise; with one, the plain loop."""
    beta = 1.0 - alpha
    out = np.full(raw.shape[0], np.nan)
    defined = np.flatnonzero(~np.isnan(raw))
    if not defined.size:
        return out
    first = int(defined[0])
    if defined.size == raw.shape[0] - first:
        out[first:] = _recursion(raw[first:], alpha, beta)
        return out
    s = None
    values = out.tolist()
    for i, r in enumerate(raw.tolist()):
        if r != r:  # NaN: not defined yet
            continue
        s = r if s is None else alpha * r + beta * s
        values[i] = s
    return np.array(values)


_PASSES = 24  # whole-array passes at most (each halves the guess's error when beta is 1/2)
_FEW = 512  # inconsistent elements left to the loop


def _recursion(r: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """``s[0] = r[0]``, ``s[i] = alpha * r[i] + beta * s[i - 1]`` in IEEE doubles, bit for bit as the
    sequential loop, without a Python step per element.

    A sequence ``s`` with ``s[0] = r[0]`` in which every ``s[i]`` equals ``alpha * r[i] + beta * s[i - 1]``
    evaluated on its stored predecessor *is* the loop's result (by induction on ``i``), whatever way it was
    found. So: a close guess (the recurrence unrolled by doubling, ``s[i] += beta^d * s[i - d]``, until
    ``beta^d`` is below any double's relative precision), then whole-array passes of the recurrence on the
    guess, which fix every element whose predecessor is already right (the error shrinks by ``beta`` per
    pass), then the loop itself only from each element still inconsistent with its predecessor until an
    element comes out as stored. The result is checked element by element, never assumed."""
    n = r.shape[0]
    if beta > 0.75 or n < 2:  # each pass fixes a share 1 - beta of the rest: too few to be worth it
        return np.array(list(accumulate(r.tolist(), lambda x, y: alpha * y + beta * x)))
    a = alpha * r
    guess = a.copy()
    guess[0] = r[0]
    power, span = beta, 1
    while span < n and power > 1e-20:
        guess[span:] += power * guess[:-span]
        power *= power
        span *= 2
    s = guess
    scaled = np.empty(n - 1)
    for _ in range(_PASSES):  # whole passes while they fix many elements at once
        np.multiply(beta, s[:-1], out=scaled)
        np.add(a[1:], scaled, out=scaled)
        bad_mask = scaled != s[1:]
        count = int(np.count_nonzero(bad_mask))
        if not count:
            return s
        if count <= _FEW:
            break
        s[1:] = scaled
    else:  # a slow EMA (beta near 1) converges slowly: the loop over the whole is then the quicker way
        return np.array(list(accumulate(r.tolist(), lambda x, y: alpha * y + beta * x)))
    bad = (np.flatnonzero(bad_mask) + 1).tolist()
    i = 0
    for start in bad:
        if start <= i:
            continue  # already walked through
        i = start
        while i < n:
            v = float(a[i]) + beta * float(s[i - 1])
            if v == s[i]:
                break  # consistent from here on until the next inconsistent element
            s[i] = v
            i += 1
    return s


def compute_indicators(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, periods: IndicatorPeriods | None = None
) -> dict[str, np.ndarray]:
    """ATR, slope, ATR_AVG, RSI and the usable index per bar (NaN / -1 where undefined)."""
    p = periods or IndicatorPeriods()
    high = np.asarray(high, dtype=float)
    low = np.asarray(low, dtype=float)
    close = np.asarray(close, dtype=float)
    n = close.shape[0]
    prev = np.empty(n)
    prev[0] = np.nan
    prev[1:] = close[:-1]
    tr = np.maximum(np.maximum(high - low, np.abs(high - prev)), np.abs(low - prev))
    tr[0] = np.nan
    atr = np.full(n, np.nan)
    if n > 1:
        atr[1:] = _window_mean(tr[1:], p.atr)
    ma = _window_mean(close, p.ma)
    raw = np.full(n, np.nan)
    lag = p.slope_lag
    if n > lag:
        base = ma[:-lag]
        raw[lag:] = (ma[lag:] - base) / base
    slope = _ema(raw, p.alpha)
    atr_avg = np.full(n, np.nan)
    # mean of the atr_avg ATRs *before* each bar
    first_atr = p.atr  # index of the first defined ATR
    if n > first_atr:
        means = _window_mean(atr[first_atr:], p.atr_avg)  # means[j] covers atr[first..first+j]
        atr_avg[first_atr + 1 :] = means[:-1]
    diff = np.full(n, np.nan)
    diff[1:] = close[1:] - close[:-1]
    gains = np.where(diff > 0, diff, 0.0)
    losses = np.where(diff < 0, -diff, 0.0)
    g = np.full(n, np.nan)
    lo = np.full(n, np.nan)
    if n > 1:
        g[1:] = _window_mean(gains[1:], p.rsi)
        lo[1:] = _window_mean(losses[1:], p.rsi)
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + g / lo)
    rsi = np.where((lo == 0) | np.isnan(lo), 100.0, rsi)
    usable = ~(np.isnan(atr) | np.isnan(slope) | np.isnan(atr_avg))
    usable_index = np.where(usable, np.cumsum(usable) - 1, -1)
    return {"atr": atr, "slope": slope, "atr_avg": atr_avg, "rsi": rsi, "usable_index": usable_index}


def indicator_rows(ind: dict[str, np.ndarray]) -> list[IndicatorValues | None]:
    """Per-bar ``IndicatorValues`` (``None`` in warm-up), ready for ``StepContext``."""
    columns = (ind[k].tolist() for k in ("atr", "slope", "atr_avg", "rsi", "usable_index"))
    rows: list[IndicatorValues | None] = list(map(IndicatorValues, *columns))
    for i in np.flatnonzero(ind["usable_index"] < 0).tolist():
        rows[i] = None  # warm-up
    return rows


__all__ = ["compute_indicators", "indicator_rows", "rsi_from_means"]
