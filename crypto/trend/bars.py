"""Bars from price samples: the loop reads a mark price each cycle and folds it into fixed-interval bars.

Pure: ``add`` returns the new builder and the bars it closed. A sample opens the bar of its interval; a
sample in a later interval closes the current bar (intervals without samples produce no bar: a gap is a
gap, not a flat bar). Samples older than the open bar are ignored (a clock step back adds nothing), except
when the open bar rests on a single sample at least ``outlier_intervals`` ahead: that sample was an outlier
in time (a clock that read 2099 once), so its bar is dropped and the bar it closed early is reopened; one odd
timestamp never freezes the bars.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from crypto.trend.features import Bar


@dataclass(frozen=True)
class BarBuilder:
    interval_ms: int
    current: Bar | None = None
    closed: tuple[Bar, ...] = ()
    keep: int = 500  # closed bars kept (the strategy's warm-up needs far fewer)
    current_samples: int = 0  # samples folded into the open bar
    outlier_intervals: int = 60  # a lone sample this many intervals ahead of the next one was an outlier

    def __post_init__(self) -> None:
        if self.interval_ms <= 0:
            raise ValueError("interval_ms must be positive")

    def add(self, ts_ms: int, price: Decimal) -> BarBuilder:
        """Fold one sample in."""
        if price <= 0:
            raise ValueError("price must be positive")
        start = ts_ms - ts_ms % self.interval_ms
        cur = self.current
        if cur is None or start > cur.ts_ms:
            closed = self.closed if cur is None else (self.closed + (cur,))[-self.keep:]
            return replace(self, current=Bar(start, price, price, price, price), closed=closed, current_samples=1)
        if start < cur.ts_ms:
            last = self.closed[-1] if self.closed else None
            lone_jump = self.current_samples == 1 and cur.ts_ms - start >= self.outlier_intervals * self.interval_ms
            if not lone_jump or (last is not None and start < last.ts_ms):
                return self  # a step back behind a confirmed bar, or a late sample: ignored
            if last is not None and start == last.ts_ms:
                # The lone sample in the future closed this bar early: reopen it, the outlier's bar is gone.
                return replace(self, closed=self.closed[:-1], current_samples=2,
                               current=Bar(last.ts_ms, last.open, max(last.high, price), min(last.low, price), price))
            return replace(self, current=Bar(start, price, price, price, price), current_samples=1)
        return replace(self, current=Bar(cur.ts_ms, cur.open, max(cur.high, price), min(cur.low, price), price),
                       current_samples=self.current_samples + 1)

    def bars(self, include_open: bool = False) -> tuple[Bar, ...]:
        """Closed bars, oldest first (and the forming one when asked)."""
        if include_open and self.current is not None:
            return self.closed + (self.current,)
        return self.closed
