"""Market views for the manager, read from a ``Venue``: mark, liquidation price, an ATR from sampled marks.

The ``Venue`` Protocol has no candles, so the ATR is built here from the marks the feed samples: samples
are bucketed into bars of ``bar_ms`` and ATR is the mean true range of the last ``atr_bars`` complete bars
(None until two bars exist; the manager then uses the liquidation-buffer stop for a new position).

Market data down (a venue read fails): the feed returns the last view it had, flagged stale; the manager
only guards the stop on it. The service keeps polling at its fixed interval.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from core.oms.reasons import VenueReason
from crypto.pm.decisions import MarketView
from crypto.venue.protocol import Venue
from crypto.venue.types import Position, VenueError


@dataclass
class _Bar:
    start_ms: int
    high: Decimal
    low: Decimal
    close: Decimal


def true_range(bar: _Bar, prev_close: Decimal | None) -> Decimal:
    if prev_close is None:
        return bar.high - bar.low
    return max(bar.high - bar.low, abs(bar.high - prev_close), abs(bar.low - prev_close))


class AtrTape:
    """ATR of one symbol from price samples (pure bookkeeping, time passed in)."""

    def __init__(self, bar_ms: int = 60_000, atr_bars: int = 14) -> None:
        self.bar_ms = bar_ms
        self.bars: deque[_Bar] = deque(maxlen=atr_bars + 1)

    def sample(self, ts_ms: int, price: Decimal) -> None:
        start = ts_ms - ts_ms % self.bar_ms
        if self.bars and self.bars[-1].start_ms == start:
            b = self.bars[-1]
            b.high, b.low, b.close = max(b.high, price), min(b.low, price), price
        elif not self.bars or start > self.bars[-1].start_ms:
            self.bars.append(_Bar(start, price, price, price))

    def atr(self) -> Decimal | None:
        done = list(self.bars)[:-1]  # the last bar is still forming
        if len(done) < 2:
            return None
        trs = [true_range(b, done[i - 1].close if i else None) for i, b in enumerate(done)]
        return sum(trs[1:], Decimal(0)) / (len(trs) - 1)


class VenueFeed:
    """``observe`` reads one mark from the venue (one request) and keeps the view; ``view`` answers from what
    was observed (no request), flagged stale when the last observation failed or is older than
    ``stale_ms``. A mark that is not a finite positive number, or that jumps more than ``spike_limit`` (20 %)
    from the last good one, is held back until readings agreeing with it (within ``spike_limit``) span
    ``confirm_ms`` (2 s): one bad answer, or the same bad answer twice in one loop, never becomes the mark. Liquidation prices come from the service's position poll (``note_positions``)."""

    def __init__(self, venue: Venue, bar_ms: int = 60_000, atr_bars: int = 14,
                 clock_ms: Callable[[], int] | None = None, stale_ms: int = 5_000,
                 spike_limit: Decimal = Decimal("0.2"), confirm_ms: int = 2_000) -> None:
        self.venue = venue
        self.clock_ms = clock_ms or venue.now_ms
        self.bar_ms = bar_ms
        self.atr_bars = atr_bars
        self.stale_ms = stale_ms
        self.tapes: dict[str, AtrTape] = {}
        self.last: dict[str, MarketView] = {}
        self.failed: set[str] = set()
        self.liq: dict[str, Decimal | None] = {}
        self.signals: dict[str, int] = {}  # the trend signal, when a strategy publishes one here
        self.spike_limit = spike_limit
        self.spikes = 0
        self.confirm_ms = confirm_ms
        self._pending: dict[str, tuple[Decimal, int]] = {}  # symbol -> (jumped mark, first seen ms), unconfirmed

    def note_positions(self, positions: list[Position]) -> None:
        for p in positions:
            self.liq[p.symbol] = p.liq_price

    def observe(self, symbol: str) -> tuple[MarketView, bool] | None:
        try:
            now = self.clock_ms()
            mark = self.venue.mark_price(symbol)
            market = self.venue.market(symbol)
        except VenueError:
            self.failed.add(symbol)
            last = self.last.get(symbol)
            return None if last is None else (last, True)
        if self._is_spike(symbol, mark):
            # One reading never moves the mark: the last good view, flagged stale (the pass only guards the
            # stop on it); a level a second reading confirms is taken.
            self.failed.add(symbol)
            self.spikes += 1
            last = self.last.get(symbol)
            return None if last is None else (last, True)
        self.failed.discard(symbol)
        tape = self.tapes.setdefault(symbol, AtrTape(self.bar_ms, self.atr_bars))
        tape.sample(now, mark)
        v = MarketView(mark=mark, ts_ms=now, atr=tape.atr(), liq_price=self.liq.get(symbol),
                       signal=self.signals.get(symbol), tick=market.tick, qty_step=market.qty_step,
                       min_qty=market.min_qty)
        self.last[symbol] = v
        return v, False

    def _is_spike(self, symbol: str, mark: Decimal) -> bool:
        if not mark.is_finite() or mark <= 0:
            return True
        last = self.last.get(symbol)
        if last is None or abs(mark - last.mark) <= self.spike_limit * last.mark:
            self._pending.pop(symbol, None)
            return False
        now = self.clock_ms()
        pending = self._pending.get(symbol)
        if pending is not None and abs(mark - pending[0]) <= self.spike_limit * pending[0]:
            if now - pending[1] >= self.confirm_ms:
                self._pending.pop(symbol, None)
                return False  # readings agreeing for confirm_ms: a real move
            return True
        self._pending[symbol] = (mark, now)
        return True

    def view(self, symbol: str) -> tuple[MarketView, bool] | None:
        last = self.last.get(symbol)
        if last is None:
            return self.observe(symbol)
        stale = symbol in self.failed or self.clock_ms() - last.ts_ms > self.stale_ms
        return last, stale


class VenueTreasury:
    """``TreasuryPort`` over a ``Venue``: free balances of the two accounts and the transfer itself."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    def free_balances(self, asset: str, spot_account: str, fut_account: str) -> tuple[Decimal, Decimal]:
        spot = self.venue.balances(spot_account)  # type: ignore[arg-type]
        fut = self.venue.balances(fut_account)  # type: ignore[arg-type]
        zero = Decimal(0)
        return (spot[asset].free if asset in spot else zero, fut[asset].free if asset in fut else zero)

    def transfer(self, asset: str, amount: Decimal, from_account: str, to_account: str, transfer_id: str) -> str:
        t = self.venue.transfer(asset, amount, from_account, to_account, transfer_id)  # type: ignore[arg-type]
        if t.status == "failed":
            raise VenueError(VenueReason.VENUE_ERROR, "transfer failed", details={"transfer_id": transfer_id})
        return t.venue_transfer_id or t.transfer_id


class VenueClock:
    """The venue's clock without a request per reading: an offset to the local monotonic clock, re-read
    from the venue every ``resync_ms`` (the venue's time endpoint is rate-limited like any other).

    One reading never moves the clock: a resync whose offset differs from the current one by more than
    ``max_jump_ms`` is taken only when ``confirm`` readings in a row agree with it (within ``max_jump_ms``
    of each other). A single answer from 2099 (a bad proxy, a venue bug) would otherwise set every
    ``last_*_ms`` of the service 73 years ahead and stop its ticks, and start the ATR tape's bars there."""

    def __init__(self, venue: Venue, resync_ms: int = 5_000,
                 local_ms: Callable[[], float] = lambda: time.monotonic() * 1000, max_jump_ms: int = 60_000,
                 confirm: int = 3) -> None:
        self.venue = venue
        self.resync_ms = resync_ms
        self.local_ms = local_ms
        self.max_jump_ms = max_jump_ms
        self.confirm = confirm
        self._offset: float | None = None
        self._synced_at = 0.0
        self._candidates: list[float] = []  # offsets of recent readings that disagreed with the current one
        self.outliers = 0

    def _accept(self, offset: float) -> None:
        if self._offset is None or abs(offset - self._offset) <= self.max_jump_ms:
            self._offset = offset
            self._candidates = []
            return
        if self._candidates and abs(offset - self._candidates[-1]) > self.max_jump_ms:
            self._candidates = []
        self._candidates.append(offset)
        self.outliers += 1
        if len(self._candidates) >= self.confirm:
            self._offset = offset
            self._candidates = []

    def __call__(self) -> int:
        local = self.local_ms()
        if self._offset is None or local - self._synced_at >= self.resync_ms:
            try:
                self._accept(self.venue.now_ms() - local)
                self._synced_at = local
            except VenueError:
                if self._offset is None:
                    raise
        assert self._offset is not None
        return int(local + self._offset)
