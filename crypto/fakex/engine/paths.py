"""Seeded price paths, one per base currency per scenario, a pure function of (seed, scenario, base, t).

The path moves in 10-second steps: the log index price takes a scenario drift (by hour since the start)
plus Gaussian noise; the perpetual's premium over the index follows a mean-reverting walk around the
scenario's target. Floats live only inside the generator; every price leaving this module is a Decimal.
The same seed gives the same path on every machine and after every restart (the cache is rebuilt, never
saved).

Scenarios (hours from the scenario start):
- ``calm``: no drift, 2% daily volatility, premium around +0.01%.
- ``trend``: +6% a day, 3% daily volatility, premium around +0.04%.
- ``crash``: -30% between hours 1 and 7, then +40% between hours 8 and 20; 5% volatility; premium -0.4%
  while falling.
- ``squeeze``: +25% between hours 1 and 5 with the perpetual 1.5% over the index until hour 16, which
  holds the funding rate at its cap.
"""

from __future__ import annotations

import math
import random
import threading
from array import array
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

Scenario = Literal["calm", "trend", "crash", "squeeze"]
SCENARIOS: tuple[Scenario, ...] = ("calm", "trend", "crash", "squeeze")
STEP_MS = 10_000
_HOUR = 3_600_000
_STEPS_PER_DAY = 86_400_000 / STEP_MS


@dataclass(frozen=True)
class _Regime:
    drift_per_hour: float  # log drift
    vol_day: float
    premium_target: float


def regime(scenario: Scenario, hours: float) -> _Regime:
    """The scenario's drift, volatility and premium target at ``hours`` since its start."""
    if scenario == "calm":
        return _Regime(0.0, 0.02, 0.0001)
    if scenario == "trend":
        return _Regime(math.log(1.06) / 24, 0.03, 0.0004)
    if scenario == "crash":
        if 1 <= hours < 7:
            return _Regime(math.log(0.70) / 6, 0.05, -0.004)
        if 8 <= hours < 20:
            return _Regime(math.log(1.40) / 12, 0.05, 0.0002)
        return _Regime(0.0, 0.05, 0.0001)
    if scenario == "squeeze":
        if 1 <= hours < 5:
            return _Regime(math.log(1.25) / 4, 0.04, 0.015)
        if 5 <= hours < 16:
            return _Regime(0.0, 0.04, 0.015)
        return _Regime(0.0, 0.03, 0.0002)
    raise ValueError(f"unknown scenario {scenario!r}")


class PricePath:
    """Index price and perpetual premium for one base currency; thread-safe lazy generation."""

    def __init__(self, seed: int, scenario: Scenario, base: str, start_price: Decimal, start_ms: int) -> None:
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        self.scenario = scenario
        self.start_ms = start_ms
        self._rng = random.Random(f"fakex:{seed}:{scenario}:{base}")
        # Flat float arrays (8 bytes a point): a model year of 10-second steps is ~25 MB per series.
        self._log_index = array("d", [math.log(float(start_price))])
        self._premium = array("d", [regime(scenario, 0).premium_target])
        # Before the start: a driftless walk backwards at the scenario's opening volatility, from its own
        # random stream, so features that need history (EMA, ATR, candles) have some.
        self._back_rng = random.Random(f"fakex:{seed}:{scenario}:{base}:history")
        self._back_log = array("d", [self._log_index[0]])  # [j] = step -j
        self._back_premium = array("d", [self._premium[0]])
        self._lock = threading.Lock()

    def _extend(self, k: int) -> None:
        while len(self._log_index) <= k:
            i = len(self._log_index)
            hours = i * STEP_MS / _HOUR
            r = regime(self.scenario, hours)
            dt = STEP_MS / _HOUR
            z = self._rng.gauss(0.0, 1.0)
            self._log_index.append(self._log_index[-1] + r.drift_per_hour * dt
                                   + r.vol_day * z / math.sqrt(_STEPS_PER_DAY))
            p = self._premium[-1]
            self._premium.append(p + 0.02 * (r.premium_target - p) + 0.00003 * self._rng.gauss(0.0, 1.0))

    def _extend_back(self, j: int) -> None:
        r = regime(self.scenario, 0)
        while len(self._back_log) <= j:
            z = self._back_rng.gauss(0.0, 1.0)
            self._back_log.append(self._back_log[-1] - r.vol_day * z / math.sqrt(_STEPS_PER_DAY))
            p = self._back_premium[-1]
            self._back_premium.append(p + 0.02 * (r.premium_target - p)
                                      + 0.00003 * self._back_rng.gauss(0.0, 1.0))

    def _step(self, ts_ms: int) -> int:
        return (ts_ms - self.start_ms) // STEP_MS

    def _point(self, ts_ms: int) -> tuple[float, float]:
        k = self._step(ts_ms)
        with self._lock:
            if k >= 0:
                self._extend(k)
                return self._log_index[k], self._premium[k]
            self._extend_back(-k)
            return self._back_log[-k], self._back_premium[-k]

    def index(self, ts_ms: int) -> Decimal:
        return Decimal(repr(math.exp(self._point(ts_ms)[0])))

    def premium(self, ts_ms: int) -> Decimal:
        return Decimal(repr(round(self._point(ts_ms)[1], 8)))

    def mean_premium(self, from_ms: int, to_ms: int, sample_ms: int = 60_000) -> Decimal:
        """The average premium over [from, to), sampled each minute (OKX averages a premium per minute)."""
        if to_ms <= from_ms:
            return self.premium(to_ms)
        total = Decimal(0)
        n = 0
        t = from_ms
        while t < to_ms:
            total += self.premium(t)
            n += 1
            t += sample_ms
        return total / n
