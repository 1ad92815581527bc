"""Judging the quote file before the grid sees it: stamps ahead of the wall clock are refused, once alerted."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from mac.node.state import SymbolRuntime
from shared_schema.models import QUOTE_FILE, QuoteFile
from shared_schema.types import ms_to_datetime

log = logging.getLogger("gridbridge.node")

REFUSALS_REMEMBERED = 1000


class FutureStampGuard:
    """Drops quotes and bars stamped further ahead of the wall clock than ``limit_s`` (None: no limit).

    The node's market clock is its last stepped bar (``last_bar_t``), which only moves forward: one bar
    from 2099 would end every later bar and expire every later signal. So such a bar is dropped, a quote
    whose own time is that far ahead is dropped whole, and each refusal is alerted once (log + event).
    A file stamped that far ahead cannot be judged stale, so it is a data problem (no new buys).
    """

    def __init__(self) -> None:
        self._refused: set[str] = set()  # the refusals already alerted

    def refuse(self, quotes: QuoteFile, now_wall: datetime, limit_s: float | None,
               runtimes: Mapping[str, SymbolRuntime], problems: list[str]) -> QuoteFile:
        """The quote file without what is stamped too far ahead; a problem is appended when the file is."""
        if limit_s is None:
            return quotes
        latest = now_wall + timedelta(seconds=limit_s)
        if quotes.updated_at > latest:
            problems.append(f"{QUOTE_FILE} stamped {quotes.updated_at.isoformat()}, ahead of the wall clock")
        latest_ms = int(latest.timestamp() * 1000)
        kept: dict[str, Any] = {}
        for code, quote in quotes.quotes.items():
            rt = runtimes.get(code)
            if quote.quote_time > latest:
                self._note(rt, code, f"quote time {quote.quote_time.isoformat()}", now_wall, limit_s)
                continue
            bars = [b for b in quote.bars if b.t <= latest_ms]
            if len(bars) != len(quote.bars):
                for bad in (b for b in quote.bars if b.t > latest_ms):
                    self._note(rt, code, f"bar {ms_to_datetime(bad.t).isoformat()}", now_wall, limit_s)
                quote = quote.model_copy(update={"bars": bars})
            kept[code] = quote
        if len(kept) == len(quotes.quotes) and all(kept[c] is quotes.quotes[c] for c in kept):
            return quotes
        return quotes.model_copy(update={"quotes": kept})

    def _note(self, rt: SymbolRuntime | None, code: str, what: str, now_wall: datetime, limit_s: float) -> None:
        key = f"{code}:{what}"
        if key in self._refused:
            return
        self._refused.add(key)
        if len(self._refused) > REFUSALS_REMEMBERED:
            self._refused = {key}
        log.warning("%s: %s is ahead of the wall clock %s by more than %s s; refused", code, what,
                    now_wall.isoformat(), limit_s)
        if rt is not None:
            rt.events.append({"t": now_wall.isoformat(), "kind": "QUOTE_REFUSED",
                              "detail": f"{what} ahead of the wall clock"})
            rt.counters["quote_refused"] += 1
