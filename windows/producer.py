"""The quote producer: publishes ``shared_quote.json`` (quotes, recent 1-minute bars, positions, cash).

In paper mode the quotes come from a replayed 1-minute bar file on an accelerated clock and the account
from the paper broker's published view (the simulated terminal's books); with xtquant both come from QMT.
Sources sit behind small Protocols so the producer loop is the same for both.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from marketdata.bars import Bars
from settings.config import GridbridgeConfig
from shared_schema.atomic_io import WriteFailed, atomic_write_model, read_seq
from shared_schema.clock import Clock, SystemClock
from shared_schema.models import QUOTE_FILE, Account, Bar, Position, Quote, QuoteFile
from shared_schema.types import ms_to_datetime

log = logging.getLogger("gridbridge.producer")

RECENT_BARS = 300
TICK = 0.001


class QuoteSource(Protocol):
    def next_quotes(self) -> dict[str, Quote] | None:
        """The next market snapshot, or ``None`` when the source is exhausted."""
        ...


class AccountSource(Protocol):
    def read_account(self) -> tuple[dict[str, Position], Account | None, bool]:
        """(positions, account, ok); ok is False when the venue could not be asked."""
        ...


@dataclass
class _SymbolTape:
    code: str
    bars: Bars
    pos: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BARS))
    prev_close: float | None = None
    day_close: float | None = None
    day: object = None
    day_volume: float = 0.0


class BarReplaySource:
    """Replays bar files of several codes in time order, one bar end per snapshot."""

    def __init__(self, bars: dict[str, Bars]) -> None:
        self.tapes = {code: _SymbolTape(code, b) for code, b in bars.items()}
        self._times = iter(sorted({int(t) for b in bars.values() for t in b.t.tolist()}))
        self._latest: dict[str, Quote] = {}
        self.bars_published = 0

    def _advance(self, tape: _SymbolTape, t_ms: int) -> bool:
        b, i = tape.bars, tape.pos
        if i >= len(b) or int(b.t[i]) != t_ms:
            return False
        tape.pos += 1
        bar = Bar(t=t_ms, o=float(b.o[i]), h=float(b.h[i]), l=float(b.l[i]), c=float(b.c[i]), v=float(b.v[i]))
        day = ms_to_datetime(t_ms).date()
        if day != tape.day:
            if tape.day_close is not None:
                tape.prev_close = tape.day_close
            tape.day = day
            tape.day_volume = 0.0
        tape.day_close = bar.c
        tape.day_volume += bar.v
        tape.recent.append(bar)
        return True

    def resume_after(self, t_ms: int) -> int:
        """Skip, without publishing, every bar up to ``t_ms`` (a restarted producer continues where it was),
        rebuilding the recent bars and previous closes on the way. Returns the bars skipped."""
        skipped = 0
        pending = list(self._times)
        index = 0
        while index < len(pending) and pending[index] <= t_ms:
            for tape in self.tapes.values():
                self._advance(tape, pending[index])
            index += 1
            skipped += 1
        self._times = iter(pending[index:])
        for tape in self.tapes.values():
            if tape.recent:
                self._latest[tape.code] = self._quote(tape)
        return skipped

    def _quote(self, tape: _SymbolTape) -> Quote:
        bar = tape.recent[-1]
        # The last trade sat on the side the bar moved to: up bars trade at the ask, down bars at the bid.
        if bar.c >= bar.o:
            ask, bid = bar.c, round(bar.c - TICK, 3)
        else:
            bid, ask = bar.c, round(bar.c + TICK, 3)
        return Quote(
            code=tape.code,
            last=bar.c,
            bid1=bid,
            ask1=ask,
            volume=tape.day_volume,
            quote_time=ms_to_datetime(bar.t),
            prev_close=tape.prev_close or float(tape.bars.o[0]),
            bars=list(tape.recent),
        )

    def next_quotes(self) -> dict[str, Quote] | None:
        t_ms = next(self._times, None)
        if t_ms is None:
            return None
        for tape in self.tapes.values():
            if self._advance(tape, t_ms):
                self._latest[tape.code] = self._quote(tape)
        self.bars_published += 1
        return dict(self._latest)


class PaperAccountSource:
    """The paper broker's published books (``paper_account.json``), or the configured opening account."""

    def __init__(self, path: Path, config: GridbridgeConfig) -> None:
        self.path = Path(path)
        self.config = config

    def read_account(self) -> tuple[dict[str, Position], Account | None, bool]:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            positions = {
                code: Position(code=code, volume=shares, can_use_volume=shares, avg_cost=0.0, market_value=0.0)
                for code, shares in self.config.paper.initial_positions.items()
            }
            cash = self.config.paper.initial_cash
            return positions, Account(cash=cash, total_asset=cash), True
        except (OSError, ValueError):
            return {}, None, False
        positions = {p["code"]: Position(**p) for p in raw.get("positions", [])}
        account = Account(
            cash=Decimal(str(raw["cash"])), total_asset=Decimal(str(raw["total_asset"])),
            frozen_cash=Decimal(str(raw.get("frozen_cash", 0))),
        )
        return positions, account, True


class Producer:
    def __init__(
        self, shared_dir: Path, quotes: QuoteSource, account: AccountSource, wall_clock: Clock | None = None,
        source: str = "paper-replay",
    ) -> None:
        self.source = source  # the quote file says where its data came from (replay or the QMT terminal)
        self.shared_dir = Path(shared_dir)
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        self.quotes = quotes
        self.account = account
        self.wall_clock = wall_clock or SystemClock()
        self.seq = read_seq(self.shared_dir / QUOTE_FILE)
        self.last_account: tuple[dict[str, Position], Account | None] = ({}, None)
        self.write_failures = 0

    def publish_once(self) -> bool:
        """Publish the next snapshot; False when the source is exhausted."""
        snapshot = self.quotes.next_quotes()
        if snapshot is None:
            return False
        positions, account, ok = self.account.read_account()
        if ok:
            self.last_account = (positions, account)
        else:
            positions, account = self.last_account
        self.seq += 1
        model = QuoteFile(
            seq=self.seq, updated_at=self.wall_clock.now(), source=self.source, quotes=snapshot,
            positions=positions, account=account, positions_ok=ok,
        )
        try:
            atomic_write_model(self.shared_dir / QUOTE_FILE, model)
        except WriteFailed as exc:
            self.write_failures += 1
            log.error("quote publish failed, the last good file stays: %s", exc)
        return True

    def run(self, speed: float, max_bars: int | None = None) -> int:
        """Replay at ``speed`` x real time (one 1-minute bar every 60/speed s; 0 = as fast as possible)."""
        published = 0
        interval = 60.0 / speed if speed > 0 else 0.0
        next_at = time.monotonic()
        while max_bars is None or published < max_bars:
            if not self.publish_once():
                break
            published += 1
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return published


def iter_codes(specs: list[str]) -> Iterator[tuple[str, Path]]:
    for spec in specs:
        code, _, path = spec.partition("=")
        if not path:
            raise ValueError(f"--bars expects CODE=CSV, got {spec!r}")
        yield code, Path(path)
