"""The minimal closed loop for BTC and ETH: sample marks into bars, run the trend + vol-target strategy and
the fixed-weight portfolio (clipped by the risk budget), hand the targets to the engine.

A thin shell: the strategy (``crypto.trend``) and the engine's decisions are pure; this reads the venue's
mark prices and the engine's equity and risk state, and calls ``CryptoEngine.cycle``. New targets are
computed only when a bar closes (the strategy works on closed bars); between bars the engine keeps
approaching the last ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from crypto.execution.engine import CryptoEngine
from crypto.trend.bars import BarBuilder
from crypto.trend.strategy import TargetPosition, TrendConfig, portfolio_targets, trend_signal


@dataclass
class TrendLoop:
    engine: CryptoEngine
    trend: TrendConfig
    bar_interval_ms: int
    builders: dict[str, BarBuilder] = field(default_factory=dict)
    targets: dict[str, TargetPosition] = field(default_factory=dict)
    bars_seen: int = 0

    def step(self) -> dict[str, str]:
        """One loop turn: sample, maybe re-target, one engine cycle."""
        now = self.engine.now_ms()
        closed_any = False
        marks: dict[str, Decimal] = {}
        for symbol in self.trend.weights:
            # The engine's marks of its last venue read: one read per cycle, not two.
            mark = self.engine.marks.get(symbol)
            if mark is None:
                continue
            marks[symbol] = mark
            before = self.builders.get(symbol) or BarBuilder(self.bar_interval_ms)
            after = before.add(now, mark)
            self.builders[symbol] = after
            if after.closed[-1:] != before.closed[-1:]:
                closed_any = True  # a bar closed for this symbol
        new_targets: dict[str, TargetPosition] | None = None
        equity = self.engine.equity
        if closed_any and equity is not None:
            self.bars_seen += 1
            signals = {s: trend_signal(s, b.bars(), self.trend) for s, b in self.builders.items() if b.bars()}
            budget = self.engine.risk.risk_budget(self.engine.risk_cfg)
            targets = portfolio_targets(signals, equity, budget, self.trend, marks)
            new_targets = {t.symbol: t for t in targets if t.symbol in self.engine.cfg.symbols}
            self.targets = new_targets
        return self.engine.cycle(new_targets)
