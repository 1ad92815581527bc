"""The executor's view of the market: the quote file, the market clock and the context a signal is judged in.

The market clock is the newest accepted quote time; a quote stamped too far ahead of the wall clock is
refused so one bad stamp never moves it forward for good.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared_schema.atomic_io import ModelFileReader, ReadStatus
from shared_schema.models import QUOTE_FILE, QuoteFile
from windows.pipeline import MarketContext

if TYPE_CHECKING:
    from windows.executor import Executor


class MarketView:
    """Reads ``shared_quote.json`` for the executor ``ex``, keeps the market clock and feeds the venue's matching.

    The turn calls ``refresh``; ``market_now``, ``context``, ``marks`` and ``is_quote_time_ok`` serve the other
    rooms."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.config = ex.config
        self.broker = ex.broker
        self.risk = ex.risk
        self.wall_clock = ex.wall_clock
        self.quotes = ModelFileReader(ex.shared_dir / QUOTE_FILE, QuoteFile)
        self.market_now: datetime | None = None  # the newest accepted quote time; None before any quote

    def refresh(self) -> None:
        """Read the quotes; move the market clock; judge data health on every turn, not only on new files.

        A quote (or the whole file) stamped further ahead of the wall clock than ``max_quote_ahead_s`` is
        refused and alerted: the market clock takes the newest *accepted* quote time, so one bad stamp never
        moves it forward for good. Data health (``data_ok``) is the age of the last good file on the wall
        clock; a change of it re-evaluates the risk state in the same turn.
        """
        alerts = self.ex.alerts
        outcome = self.quotes.read()
        if outcome.is_degraded and outcome.error:
            alerts.post(f"quotes: {outcome.error}")
        model = outcome.model
        if model is None:
            return
        fresh = outcome.status is ReadStatus.FRESH
        wall = self.wall_clock.now()
        file_ok = self.is_quote_time_ok(model.updated_at, wall)
        if not file_ok and fresh:
            alerts.post(f"quotes: file stamped {model.updated_at.isoformat()}, ahead of the wall clock "
                        f"{wall.isoformat()} by more than {self.config.executor.max_quote_ahead_s:.0f} s; refused")
        accepted = {}
        for code, quote in model.quotes.items():
            if self.is_quote_time_ok(quote.quote_time, wall):
                accepted[code] = quote
            elif fresh:
                alerts.post(f"quotes: {code} quote time {quote.quote_time.isoformat()} is ahead of the wall clock "
                            f"{wall.isoformat()} by more than {self.config.executor.max_quote_ahead_s:.0f} s; refused")
        if file_ok and accepted:
            newest = max(q.quote_time for q in accepted.values())
            if self.market_now is None or newest > self.market_now:
                self.market_now = newest
        data_ok = file_ok and not self._is_stale(model)
        if data_ok is not self.risk.data_ok:
            self.risk.data_ok = data_ok
            self.ex.risk_actions.inputs_changed()
        if fresh and file_ok:
            if len(accepted) != len(model.quotes):
                model = model.model_copy(update={"quotes": accepted})
            self.broker.on_market(model)
            self.ex.risk_actions.market_moved()

    def _is_stale(self, model: QuoteFile) -> bool:
        age = (self.wall_clock.now() - model.updated_at).total_seconds()
        return age > self.config.executor.quote_stale_after_s

    def is_quote_time_ok(self, stamp: datetime, wall: datetime) -> bool:
        """False for a time further ahead of the wall clock than ``max_quote_ahead_s`` (None: no limit)."""
        limit = self.config.executor.max_quote_ahead_s
        return limit is None or (stamp - wall).total_seconds() <= limit

    def context(self) -> MarketContext:
        """What a signal is judged against: quotes, the venue's sellable shares and cash, the risk gate."""
        model = self.quotes.last_good
        positions = self.broker.query_positions()
        asset = self.broker.query_asset()
        return MarketContext(
            now=self.ex.now(),
            quotes=dict(model.quotes) if model else {},
            sellable=None if positions is None else {p.code: p.can_use_volume for p in positions},
            available_cash=None if asset is None else asset.cash,
            blocked=self.risk.check,
        )

    def marks(self) -> dict[str, float]:
        """The last price of every quoted code (for the risk account's equity)."""
        model = self.quotes.last_good
        return {code: q.last for code, q in model.quotes.items()} if model else {}
