"""Deterministic synthetic 1-minute ETF bars, calibrated to the shared daily files' summary figures.

Shape: 240 bars a day labelled by their end (09:31..11:30, 13:01..15:00 China time), weekdays only,
prices on the 0.001 tick. Each day draws a regime (``range``: mean-reverting to a slow level; ``trend``:
a drift that persists for days), a close-to-close move, an overnight gap, and an intraday path built as
a Brownian bridge from the open to the close with a U-shaped volatility profile, sampled four times a
minute so every bar has its own high and low. Targets (medians of the real daily bars in
``/work/shared/data``): daily range ~1-1.6 %, close-to-close ~0.4-0.8 %, gap ~0.1-0.2 %.

``conditioned_on`` makes the minutes aggregate exactly to given daily OHLC rows (a real daily file):
the bridge is rescaled so that the day's high and low are hit and the first open / last close match.
``split_adjusted`` takes unadjusted share splits out of such a file (opt-in; the loader does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from marketdata.bars import Bars
from shared_schema.types import CST

SUB = 4  # sub-steps per minute


@dataclass(frozen=True)
class SynthProfile:
    start_price: float
    daily_vol: float  # std of close-to-close log return
    intraday_vol: float  # std of open-to-close path (drives the range)
    gap_vol: float
    trend_drift: float  # per-day drift in a trend regime
    p_trend: float  # chance to switch into a trend regime
    p_exit_trend: float
    volume: float  # median units per day


PROFILES: dict[str, SynthProfile] = {
    # medians from the README: 512890 range 1.0-1.2 %, c2c 0.42-0.55 %, gap 0.08-0.11 %
    "512890.SH": SynthProfile(1.15, 0.0060, 0.0062, 0.0013, 0.0012, 0.04, 0.15, 3.0e8),
    # 159201: range 0.9-1.6 %, c2c 0.41-0.83 %, gap 0.10-0.22 %
    "159201.SZ": SynthProfile(1.30, 0.0075, 0.0075, 0.0018, 0.0015, 0.04, 0.15, 3.5e8),
}


def minute_labels(day: date) -> np.ndarray:
    """The 240 bar-end times of one trading day, epoch ms."""
    base = datetime(day.year, day.month, day.day, tzinfo=CST)
    am = [base + timedelta(hours=9, minutes=30 + m) for m in range(1, 121)]
    pm = [base + timedelta(hours=13, minutes=m) for m in range(1, 121)]
    return np.array([round(x.timestamp() * 1000) for x in am + pm], dtype=np.int64)


def trading_days(start: date, n: int) -> list[date]:
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _vol_profile() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 240 * SUB)
    w = 1.0 + 1.6 * (1.0 - x) ** 6 + 0.7 * x**8  # busy open, livelier close
    return w / np.sqrt(np.mean(w**2))


def _day_path(rng: np.random.Generator, o: float, c: float, vol: float, prof: np.ndarray) -> np.ndarray:
    """Log-price path of 240*SUB+1 points from log(o) to log(c) (Brownian bridge, U-shaped vol)."""
    n = 240 * SUB
    inc = rng.standard_normal(n) * prof * (vol / np.sqrt(n))
    w = np.concatenate(([0.0], np.cumsum(inc)))
    tt = np.linspace(0.0, 1.0, n + 1)
    return np.log(o) + w - tt * w[-1] + tt * (np.log(c) - np.log(o))


def _bars_from_path(px: np.ndarray, tick: float) -> tuple[np.ndarray, ...]:
    q = np.round(px / tick) * tick
    seg = q[1:].reshape(240, SUB)
    opens = np.concatenate(([q[0]], seg[:-1, -1]))
    closes = seg[:, -1]
    highs = np.maximum(seg.max(axis=1), opens)
    lows = np.minimum(seg.min(axis=1), opens)
    return opens, highs, lows, closes


def generate(
    code: str,
    days: int,
    seed: int,
    start: date = date(2021, 1, 4),
    profile: SynthProfile | None = None,
    tick: float = 0.001,
) -> Bars:
    """``days`` weekdays of synthetic 1-minute bars for ``code`` (deterministic for a given seed)."""
    prof = profile or PROFILES.get(code) or PROFILES["512890.SH"]
    rng = np.random.default_rng(seed)
    vp = _vol_profile()
    dates = trading_days(start, days)
    level = np.log(prof.start_price)
    logp = level
    trend = 0.0
    parts: list[tuple[np.ndarray, ...]] = []
    for _day in dates:
        if trend == 0.0 and rng.random() < prof.p_trend:
            trend = prof.trend_drift * (1 if rng.random() < 0.5 else -1)
        elif trend != 0.0 and rng.random() < prof.p_exit_trend:
            trend = 0.0
        level += 0.3 * prof.daily_vol * rng.standard_normal() + trend
        gap = prof.gap_vol * rng.standard_t(4) * 0.7
        o_log = logp + gap
        pull = 0.08 * (level - o_log)  # range regime: drift back toward the slow level
        move = pull + trend + prof.daily_vol * rng.standard_normal() * 0.95
        c_log = o_log + move
        vol = prof.intraday_vol * float(np.exp(0.35 * rng.standard_normal()))
        path = np.exp(_day_path(rng, float(np.exp(o_log)), float(np.exp(c_log)), vol, vp))
        parts.append(_bars_from_path(path, tick))
        logp = np.log(parts[-1][3][-1])
    return _assemble(dates, parts, prof.volume, rng, tick)


def generate_conditioned(
    code: str, daily: list[tuple[date, float, float, float, float]], seed: int, tick: float = 0.001
) -> Bars:
    """Minutes whose daily roll-up equals the given ``(date, open, high, low, close)`` rows exactly."""
    prof = PROFILES.get(code) or PROFILES["512890.SH"]
    rng = np.random.default_rng(seed)
    vp = _vol_profile()
    parts = []
    for _, o, h, lo, c in daily:
        path = np.exp(_day_path(rng, o, c, prof.intraday_vol, vp))
        hi0, lo0 = max(o, c), min(o, c)
        m_hi, m_lo = path.max(), path.min()
        up = path > hi0
        if m_hi > hi0:
            path[up] = hi0 + (path[up] - hi0) * (h - hi0) / (m_hi - hi0)
        dn = path < lo0
        if m_lo < lo0:
            path[dn] = lo0 - (lo0 - path[dn]) * (lo0 - lo) / (lo0 - m_lo)
        path = np.clip(path, lo, h)
        path[0], path[-1] = o, c
        bo, bh, bl, bc = _bars_from_path(path, tick)
        # pin the extremes exactly on some interior bar when the bridge never reached them
        if bh.max() < h - tick / 2:
            bh[int(rng.integers(1, 239))] = h
        if bl.min() > lo + tick / 2:
            bl[int(rng.integers(1, 239))] = lo
        bh, bl = np.minimum(bh, h), np.maximum(bl, lo)
        bo[0], bc[-1] = o, c
        bh, bl = np.maximum(bh, np.maximum(bo, bc)), np.minimum(bl, np.minimum(bo, bc))
        parts.append((bo, bh, bl, bc))
    return _assemble([row[0] for row in daily], parts, prof.volume, rng, tick)


DailyRow = tuple[date, float, float, float, float]


def split_adjusted(
    daily: list[DailyRow], min_ratio: float = 1.5, tolerance: float = 0.15, tick: float = 0.001
) -> tuple[list[DailyRow], list[tuple[date, int]]]:
    """The daily rows with unadjusted share splits taken out, and the ``(day, ratio)`` of each split found.

    A split-like day opens at about ``1/r`` of the previous close for a whole ``r >= 2`` (within
    ``tolerance``, wider than the exchange's 10 % daily limit) where the gap is at least ``min_ratio``; every
    earlier row is divided by ``r`` and put back on the tick (forward adjustment: the latest prices stay
    as traded). Nothing else is touched. ``data synth --daily`` calls this only with ``--split-adjust``: the loader passes such a
    day through as a real move (docs/strategy.md, "The real 512890 path")."""
    rows = list(daily)
    found: list[tuple[date, int]] = []
    for i in range(len(rows) - 1, 0, -1):
        prev_close, day_open = rows[i - 1][4], rows[i][1]
        if day_open <= 0 or prev_close / day_open < min_ratio:
            continue
        ratio = round(prev_close / day_open)
        if ratio < 2 or abs(prev_close / (day_open * ratio) - 1) > tolerance:
            continue
        found.append((rows[i][0], ratio))
        for j in range(i):
            d, o, h, lo, c = rows[j]
            o, h, lo, c = (round(round(x / ratio / tick) * tick, 9) for x in (o, h, lo, c))
            rows[j] = (d, o, h, lo, c)
    return rows, found[::-1]


def _assemble(dates, parts, volume: float, rng: np.random.Generator, tick: float) -> Bars:
    t = np.concatenate([minute_labels(d) for d in dates]) if dates else np.zeros(0, dtype=np.int64)
    o = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    h = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    lo = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    c = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    rnd = lambda a: np.round(np.round(a / tick) * tick, 3)  # noqa: E731 - the file's 3-decimal values
    shape = np.tile(
        1.0 + 2.0 * np.exp(-np.arange(240) / 20.0) + np.exp(-(239 - np.arange(240)) / 15.0), len(dates)
    )
    v = np.round(
        volume / 240 * shape / shape[:240].mean() * np.exp(0.5 * rng.standard_normal(t.shape[0])), -2
    )
    return Bars(t=t, o=rnd(o), h=rnd(h), l=rnd(lo), c=rnd(c), v=v)


def daily_rollup(bars: Bars) -> dict[str, np.ndarray]:
    """Daily OHLC of minute bars (240 per day), for calibration checks."""
    n = bars.t.shape[0] // 240
    o = bars.o[: n * 240].reshape(n, 240)
    return {
        "open": o[:, 0],
        "high": bars.h[: n * 240].reshape(n, 240).max(axis=1),
        "low": bars.l[: n * 240].reshape(n, 240).min(axis=1),
        "close": bars.c[: n * 240].reshape(n, 240)[:, -1],
    }


def daily_stats(daily: dict[str, np.ndarray]) -> dict[str, float]:
    """Medians as in the data README: range/close, |close-to-close|, |gap| (fractions)."""
    c = daily["close"]
    return {
        "range": float(np.median((daily["high"] - daily["low"]) / c)),
        "close_to_close": float(np.median(np.abs(c[1:] / c[:-1] - 1))),
        "gap": float(np.median(np.abs(daily["open"][1:] / c[:-1] - 1))),
    }
