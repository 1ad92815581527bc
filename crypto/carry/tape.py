"""The funding tape: 1-minute spot and perp mark prices plus the funding rate settled at each settlement.

Format (one ``.npz`` file, numpy's zip of arrays, loaded without pandas): prices are int64 **ticks**
(``tick`` in the metadata, 0.1 USDT for BTC) so every price the engine sees converts to an exact Decimal;
funding rates are int64 in units of 1e-9 (``Decimal(rate_e9).scaleb(-9)`` is exact). Arrays:

- ``ts_ms``: minute open times (UTC epoch ms), one per minute, no gaps;
- ``spot_ticks``, ``mark_ticks``: the spot price and the perp mark price at that minute;
- ``funding_ts_ms``: settlement times; ``funding_rate_e9``: the rate settled then;
  ``funding_interval_ms``: the time since the previous settlement (8 h by default, shorter at the cap);
- ``meta``: one JSON string (symbol, regime, seed, tick, cap, floor, interest, source).

Calibration (checked against the venue's published rules; see ``docs/crypto.md``, carry section):

- rate = clamp(P + clamp(I - P, -0.05 %, +0.05 %), floor, cap) with P the average premium
  ((mark - index) / index) over the interval and I the interest component, 0.01 % per 8 h scaled to the
  interval. OKX's own help page now states interest 0 (``--interest 0`` reproduces it); the 0.01 % anchor is
  what the design asks for and what 8-hourly history clusters on.
- cap/floor +-0.375 % per period (OKX's published BTC swap bounds); when a settlement hits the cap or floor the
  interval escalates one level (8 h -> 4 h -> 2 h -> 1 h) and returns to the default once the rate is back
  inside (OKX, April 2026 rule). Settlements stay on the UTC grid of their interval.

Regimes: ``calm`` (vol 35 %/y, premium around +0.012 %), ``bull`` (drift +90 %/y, premium +0.11 %: high
funding, about 0.06 % per 8 h), ``negative`` (spells of negative premium, days long), ``crash`` (calm, then one day in the
middle when the perp mark rises 40 % and spot 36 %, ending in a 5-minute +20 % candle), ``squeeze`` (premium pinned
above the cap for days: funding at the cap, intervals shortened), ``mixed`` (the five in turn).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DEFAULT_INTERVAL_MS = 8 * HOUR_MS
INTERVAL_LEVELS_MS = (8 * HOUR_MS, 4 * HOUR_MS, 2 * HOUR_MS, 1 * HOUR_MS)
DEFAULT_START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC
REGIMES = ("calm", "bull", "negative", "crash", "squeeze", "mixed")
RATE_SCALE = 9  # rates stored as int64 units of 1e-9

INTEREST_PER_8H = 0.0001  # 0.01 % per 8 h
INTEREST_CLAMP = 0.0005  # +-0.05 %
OKX_BTC_CAP = 0.00375  # +-0.375 % per period


class TapeError(ValueError):
    """A tape file or funding history that cannot be read; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class Tape:
    ts_ms: np.ndarray
    spot_ticks: np.ndarray
    mark_ticks: np.ndarray
    funding_ts_ms: np.ndarray
    funding_rate_e9: np.ndarray
    funding_interval_ms: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return str(self.meta.get("symbol", "BTC-USDT-SWAP"))

    @property
    def tick(self) -> Decimal:
        return Decimal(str(self.meta.get("tick", "0.1")))

    @property
    def tick_f(self) -> float:
        return float(self.tick)

    def spot_f(self) -> np.ndarray:
        return self.spot_ticks * self.tick_f

    def mark_f(self) -> np.ndarray:
        return self.mark_ticks * self.tick_f

    def price(self, ticks: int) -> Decimal:
        """An exact Decimal price from a tick count."""
        return Decimal(int(ticks)) * self.tick

    def rate(self, i: int) -> Decimal:
        """The settled funding rate of settlement ``i`` as an exact Decimal."""
        return Decimal(int(self.funding_rate_e9[i])).scaleb(-RATE_SCALE)

    def minute_index(self, ts_ms: int) -> int:
        """Index of the minute that contains ``ts_ms`` (clipped to the tape)."""
        i = (int(ts_ms) - int(self.ts_ms[0])) // MINUTE_MS
        return max(0, min(int(i), len(self.ts_ms) - 1))

    def with_funding(self, ts_ms: np.ndarray, rate_e9: np.ndarray, source: str) -> Tape:
        """The same prices with another funding series (real history dropped in), cut to the price span."""
        lo, hi = int(self.ts_ms[0]), int(self.ts_ms[-1])
        keep = (ts_ms > lo) & (ts_ms <= hi + MINUTE_MS)
        ts, rates = ts_ms[keep], rate_e9[keep]
        if ts.size == 0:
            raise TapeError("FUNDING_OUTSIDE_TAPE", "no funding settlement falls inside the price tape")
        prev = np.concatenate(([ts[0] - DEFAULT_INTERVAL_MS], ts[:-1]))
        meta = dict(self.meta, funding_source=source)
        return Tape(self.ts_ms, self.spot_ticks, self.mark_ticks, ts, rates, ts - prev, meta)


def _regime_params(regime: str) -> dict[str, float]:
    base = {"mu": 0.0, "vol": 0.35, "prem": 0.00012, "prem_sd": 0.00025, "prem_kappa": 0.02}
    if regime == "bull":
        base.update(mu=0.9, vol=0.55, prem=0.0011, prem_sd=0.0005)
    elif regime == "squeeze":
        base.update(mu=0.3, vol=0.6, prem=0.0003, prem_sd=0.0004)
    elif regime == "negative":
        base.update(mu=-0.3, vol=0.5, prem=0.00005, prem_sd=0.0003)
    return base


def _premium_path_fast(rng: np.random.Generator, n: int, regime: str, p: dict[str, float]) -> np.ndarray:
    """Minute premium of the perp over spot: AR(1) deviations around a regime-dependent mean."""
    k, sd = p["prem_kappa"], p["prem_sd"]
    shocks = rng.normal(0.0, sd * np.sqrt(2 * k), n)
    return _premium_mean(rng, n, regime, p) + _ar1(shocks, 1.0 - k)


def _ar1(shocks: np.ndarray, decay: float, block: int = 256) -> np.ndarray:
    """x[i] = decay * x[i-1] + shocks[i], vectorised per block: inside a block x = d^i * cumsum(s_j d^-j)
    (d^-block stays small enough that no precision is lost), the state carried between blocks."""
    out = np.empty_like(shocks)
    powers = decay ** np.arange(block)
    state = 0.0
    for a in range(0, shocks.size, block):
        s = shocks[a:a + block]
        pw = powers[: s.size]
        x = pw * np.cumsum(s / pw) + state * decay * pw
        out[a:a + block] = x
        state = float(x[-1])
    return out


def _premium_mean(rng: np.random.Generator, n: int, regime: str, p: dict[str, float]) -> np.ndarray:
    mean = np.full(n, p["prem"])
    day = 1440
    if regime == "negative":
        days = max(1, n // day + 1)
        state = np.zeros(days, dtype=bool)
        draws = rng.random(days)
        for d in range(1, days):
            flip = draws[d] < (0.2 if state[d - 1] else 0.12)
            state[d] = (not state[d - 1]) if flip else state[d - 1]
        mean = np.where(np.repeat(state, day)[:n], -0.0006, p["prem"])
    elif regime == "squeeze":
        start, stop = n // 3, min(n, n // 3 + 7 * day)
        mean[start:stop] = 0.006
    return mean


def _spot_path(rng: np.random.Generator, n: int, p: dict[str, float], start_price: float) -> np.ndarray:
    dt = 1.0 / (365 * 1440)
    steps = rng.normal((p["mu"] - 0.5 * p["vol"] ** 2) * dt, p["vol"] * np.sqrt(dt), n)
    steps[0] = 0.0
    return start_price * np.exp(np.cumsum(steps))


def _crash_day(spot: np.ndarray, prem: np.ndarray) -> None:
    """In place: one day in the middle when spot rises 36 % and the perp mark 40 % (a short squeeze on the
    perp), a 5-minute candle carrying most of the move, then a partial retrace over the next day."""
    n = spot.size
    day = min(1440, max(2, n // 2))  # a tape shorter than two days squeezes the day to fit
    start = max(0, min(n - 2 * day, n // 2))
    ramp = np.zeros(n)
    t = np.arange(day) * (1440.0 / day)
    # 45 % of the (log) move spread over the day, 55 % in a 5-minute squeeze candle at 23:50 (+20 %): the
    # kind of candle a liquidation cascade prints, faster than a 5-minute scan can follow.
    slow = 0.45 * np.minimum(t / 1430.0, 1.0)
    wick = 0.55 * np.clip((t - 1430) / 5.0, 0.0, 1.0)
    ramp[start:start + day] = slow + wick
    ramp[start + day:] = 1.0 - 0.3 * np.clip(np.arange(n - start - day) / day, 0.0, 1.0)
    spot *= np.exp(np.log(1.36) * ramp)
    # The perp's extra 2.9 % (1.40 / 1.36) as premium that comes with the candle, fading over 12 hours after.
    bump = np.zeros(n)
    bump[start:start + day] = wick / 0.55
    fade = np.clip(1.0 - np.arange(n - start - day) / (day / 2.0), 0.0, 1.0)
    bump[start + day:] = fade
    prem += (1.40 / 1.36 - 1.0) * bump


def settle_funding(ts_ms: np.ndarray, prem: np.ndarray, interest_per_8h: float, cap: float,
                   floor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Settlements over the minute premium path: times, rates (float), intervals.

    Each settlement averages the premium over its interval; a rate at the cap or floor escalates the next
    interval one level (8 h -> 4 h -> 2 h -> 1 h), a rate back inside restores the default.
    """
    t0 = int(ts_ms[0])
    end = int(ts_ms[-1]) + MINUTE_MS
    csum = np.concatenate(([0.0], np.cumsum(prem)))
    times, rates, intervals = [], [], []
    level = 0
    last = t0 - t0 % DEFAULT_INTERVAL_MS
    while True:
        interval = INTERVAL_LEVELS_MS[level]
        nxt = (last // interval + 1) * interval  # back to 8 h from 13:00 settles at 16:00: the UTC grid
        interval = nxt - last
        if nxt > end:
            break
        i0 = max(0, (last - t0) // MINUTE_MS)
        i1 = max(i0 + 1, (nxt - t0) // MINUTE_MS)
        avg = (csum[i1] - csum[i0]) / (i1 - i0)
        interest = interest_per_8h * interval / DEFAULT_INTERVAL_MS
        rate = avg + min(max(interest - avg, -INTEREST_CLAMP), INTEREST_CLAMP)
        rate = min(max(rate, floor), cap)
        times.append(nxt)
        rates.append(rate)
        intervals.append(interval)
        at_bound = rate >= cap or rate <= floor
        level = min(level + 1, len(INTERVAL_LEVELS_MS) - 1) if at_bound else 0
        last = nxt
    return np.asarray(times, dtype=np.int64), np.asarray(rates), np.asarray(intervals, dtype=np.int64)


def synth(symbol: str = "BTC-USDT-SWAP", days: int = 365, seed: int = 0, regime: str = "calm",
          start_ms: int = DEFAULT_START_MS, start_price: float = 60_000.0, tick: str = "0.1",
          interest_per_8h: float = INTEREST_PER_8H, cap: float = OKX_BTC_CAP) -> Tape:
    """A seeded, deterministic tape (same arguments -> the same arrays, bit for bit)."""
    if regime not in REGIMES:
        raise TapeError("UNKNOWN_REGIME", f"regime {regime!r} not in {REGIMES}")
    if days < 1:
        raise TapeError("BAD_DAYS", "days must be >= 1")
    if start_ms % DEFAULT_INTERVAL_MS:
        raise TapeError("BAD_START", "start_ms must sit on the 8-hour funding grid")
    rng = np.random.default_rng(seed)
    n = days * 1440
    ts = start_ms + MINUTE_MS * np.arange(n, dtype=np.int64)
    if regime == "mixed":
        parts = ("calm", "bull", "negative", "squeeze", "crash")
        bounds = np.linspace(0, n, len(parts) + 1).astype(int)
        spot = np.empty(n)
        prem = np.empty(n)
        price = start_price
        for name, a, b in zip(parts, bounds[:-1], bounds[1:], strict=True):
            p = _regime_params(name)
            s = _spot_path(rng, b - a, p, price)
            pr = _premium_path_fast(rng, b - a, name, p)
            if name == "crash":
                _crash_day(s, pr)
            spot[a:b], prem[a:b] = s, pr
            price = float(s[-1])
    else:
        p = _regime_params(regime)
        spot = _spot_path(rng, n, p, start_price)
        prem = _premium_path_fast(rng, n, regime, p)
        if regime == "crash":
            _crash_day(spot, prem)
    mark = spot * (1.0 + prem)
    tick_f = float(tick)
    spot_ticks = np.rint(spot / tick_f).astype(np.int64)
    mark_ticks = np.rint(mark / tick_f).astype(np.int64)
    f_ts, f_rate, f_int = settle_funding(ts, prem, interest_per_8h, cap, -cap)
    meta = {"symbol": symbol, "regime": regime, "seed": seed, "days": days, "tick": tick,
            "cap": str(cap), "floor": str(-cap), "interest_per_8h": str(interest_per_8h),
            "funding_source": "synthetic"}
    return Tape(ts, spot_ticks, mark_ticks, f_ts, np.rint(f_rate * 10**RATE_SCALE).astype(np.int64), f_int,
                meta)


def save(tape: Tape, path: Path | str) -> Path:
    """Write the tape as one ``.npz`` (the name gets ``.npz`` if it has no suffix)."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".tmp-" + path.name)
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, ts_ms=tape.ts_ms, spot_ticks=tape.spot_ticks, mark_ticks=tape.mark_ticks,
                            funding_ts_ms=tape.funding_ts_ms, funding_rate_e9=tape.funding_rate_e9,
                            funding_interval_ms=tape.funding_interval_ms,
                            meta=np.asarray(json.dumps(tape.meta, sort_keys=True)))
    tmp.replace(path)
    return path


_ARRAYS = ("ts_ms", "spot_ticks", "mark_ticks", "funding_ts_ms", "funding_rate_e9", "funding_interval_ms")


def load(path: Path | str) -> Tape:
    """Read a tape written by ``save``; a bad file raises ``TapeError`` with a code."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in (*_ARRAYS, "meta") if k not in data.files]
            if missing:
                raise TapeError("TAPE_FIELDS_MISSING", f"{path}: missing {missing}")
            arrays = {k: np.asarray(data[k]) for k in _ARRAYS}
            meta = json.loads(str(data["meta"]))
    except FileNotFoundError:
        raise TapeError("TAPE_NOT_FOUND", str(path)) from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, TapeError):
            raise
        raise TapeError("TAPE_UNREADABLE", f"{path}: {exc}") from None
    tape = Tape(meta=meta, **arrays)
    _check(tape)
    return tape


def _check(tape: Tape) -> None:
    n = tape.ts_ms.size
    if n < 2 or tape.spot_ticks.size != n or tape.mark_ticks.size != n:
        raise TapeError("TAPE_SHAPE", "price arrays empty or of different lengths")
    if np.any(np.diff(tape.ts_ms) != MINUTE_MS):
        raise TapeError("TAPE_GAPS", "minute times must be contiguous")
    if np.any(tape.spot_ticks <= 0) or np.any(tape.mark_ticks <= 0):
        raise TapeError("TAPE_PRICES", "prices must be positive")
    f = tape.funding_ts_ms
    if f.size != tape.funding_rate_e9.size or f.size != tape.funding_interval_ms.size:
        raise TapeError("TAPE_SHAPE", "funding arrays of different lengths")
    if f.size and np.any(np.diff(f) <= 0):
        raise TapeError("TAPE_FUNDING_ORDER", "settlement times must increase")


def load_ccxt_funding_history(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Settlement times and rates (int64 units of 1e-9) from ccxt ``fetchFundingRateHistory`` output saved
    as JSON: a list of ``{"symbol", "fundingRate", "timestamp", "datetime", "info"}`` dicts (several pages
    may be concatenated; duplicates by timestamp are dropped, order is restored)."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        raise TapeError("HISTORY_NOT_FOUND", str(path)) from None
    except ValueError as exc:
        raise TapeError("HISTORY_NOT_JSON", f"{path}: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise TapeError("HISTORY_EMPTY", "expected a non-empty JSON list of funding-rate dicts")
    seen: dict[int, int] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TapeError("HISTORY_ROW", f"row {i} is not an object")
        ts, rate = row.get("timestamp"), row.get("fundingRate")
        if ts is None or rate is None or isinstance(ts, bool):
            raise TapeError("HISTORY_ROW", f"row {i} lacks timestamp or fundingRate")
        try:
            ts_i = int(ts)
            rate_d = Decimal(str(rate))
        except (ValueError, ArithmeticError):
            raise TapeError("HISTORY_ROW", f"row {i}: bad timestamp or fundingRate") from None
        if not rate_d.is_finite() or abs(rate_d) >= 1:
            raise TapeError("HISTORY_ROW", f"row {i}: funding rate {rate_d} out of range")
        seen[ts_i] = int(rate_d.scaleb(RATE_SCALE).to_integral_value())
    ts_sorted = sorted(seen)
    return np.asarray(ts_sorted, dtype=np.int64), np.asarray([seen[t] for t in ts_sorted], dtype=np.int64)
