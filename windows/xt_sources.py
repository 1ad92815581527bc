"""The producer's sources on the QMT machine: quotes from ``xtdata``, the account from ``xttrader``.

``XtDataQuoteSource`` implements ``windows.producer.QuoteSource``: it subscribes each code's 1-minute
quotes once, then each snapshot is ``get_full_tick`` (last, bid1/ask1, day volume, previous close) plus the
recent completed 1-minute bars from ``get_market_data_ex`` (the bar still forming is left out, so the nodes
see the same bars the backtest sees). ``XtTraderAccountSource`` implements ``AccountSource`` with its own
trader session (not the executor's), and reconnects with a new session id when MiniQMT drops it.

Every call into MiniQMT is bounded (``call_timeout_s``, as in the executor's adapter): a frozen terminal
makes a read unknown (the last quotes with their old times; no account), never a frozen producer.
"""

from __future__ import annotations

import logging
import queue
from decimal import Decimal
from typing import Any

from shared_schema.clock import Clock, SystemClock
from shared_schema.models import Account, Bar, Position, Quote
from shared_schema.types import ms_to_datetime
from windows.brokers.xt_session import (
    BoundedCaller,
    TerminalUnavailable,
    XtConnection,
    XtModules,
    session_ids,
)
from windows.brokers.xtquant_broker import XtBrokerSettings

log = logging.getLogger("gridbridge.xtsources")

BAR_FIELDS = ["time", "open", "high", "low", "close", "volume"]
PRODUCER_SESSION_OFFSET = 50  # the producer's session ids never meet the executor's


class XtDataQuoteSource:
    """Live quotes and recent bars from MiniQMT's market data (``xtdata``)."""

    def __init__(self, xtdata: Any, codes: list[str], bars_count: int = 300, call_timeout_s: float = 5.0) -> None:
        self.xtdata = xtdata
        self.codes = list(codes)
        self.bars_count = bars_count
        self._subscribed = False
        self._last: dict[str, Quote] = {}
        self._call = BoundedCaller(call_timeout_s)

    def subscribe(self) -> None:
        for code in self.codes:
            self._call("subscribe_quote", lambda c=code: self.xtdata.subscribe_quote(c, period="1m", count=self.bars_count))
        self._subscribed = True

    def next_quotes(self) -> dict[str, Quote] | None:
        """The current snapshot; a live source is never exhausted. On a failed read the last good quotes
        are returned with their old quote_time, so readers judge their age themselves."""
        try:
            if not self._subscribed:
                self.subscribe()
            ticks = self._call("get_full_tick", self.xtdata.get_full_tick, self.codes) or {}
            frames = self._call("get_market_data_ex", lambda: self.xtdata.get_market_data_ex(
                BAR_FIELDS, self.codes, period="1m", count=self.bars_count)) or {}
        except Exception as exc:  # MiniQMT restarting or frozen, a broken pipe: keep publishing what we had
            log.warning("xtdata read failed: %s", exc)
            return dict(self._last)
        for code in self.codes:
            tick = ticks.get(code)
            if not tick or not tick.get("lastPrice"):
                continue
            quote = self._quote(code, tick, frames.get(code))
            if quote is not None:
                self._last[code] = quote
        return dict(self._last)

    def _quote(self, code: str, tick: dict[str, Any], frame: Any) -> Quote | None:
        t_ms = int(tick["time"])
        bars: list[Bar] = []
        if frame is not None and len(frame):
            for row in frame.itertuples(index=False):
                bar_t = int(row.time)
                if bar_t > t_ms:
                    continue  # still forming
                bars.append(Bar(t=bar_t, o=float(row.open), h=float(row.high), l=float(row.low), c=float(row.close),
                                v=float(row.volume)))
        asks, bids = tick.get("askPrice") or [0.0], tick.get("bidPrice") or [0.0]
        last = float(tick["lastPrice"])
        prev_close = float(tick.get("lastClose") or 0.0) or last
        try:
            return Quote(code=code, last=last, bid1=float(bids[0] or 0.0), ask1=float(asks[0] or 0.0),
                         volume=float(tick.get("volume") or 0.0), quote_time=ms_to_datetime(t_ms),
                         prev_close=prev_close, bars=bars[-self.bars_count:])
        except ValueError as exc:  # a malformed tick is skipped, not published
            log.warning("skipping a malformed tick for %s: %s", code, exc)
            return None


class XtTraderAccountSource:
    """Positions and cash from the terminal, through the producer's own trader session."""

    def __init__(self, modules: XtModules, settings: XtBrokerSettings, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        base = modules.xttrader.XtQuantTraderCallback
        sink = self._events

        class _Callback(base):  # type: ignore[misc, valid-type]
            def __init__(self, generation: int) -> None:
                super().__init__()
                self.generation = generation

            def on_disconnected(self) -> None:
                sink.put(self.generation)  # only a note; the reader reconnects on its own thread

        self.conn = XtConnection(
            modules, settings.userdata_path, settings.account_id,
            session_ids(settings.session_id_base, settings.role_offset or PRODUCER_SESSION_OFFSET, self.clock),
            settings.reconnect_backoff_s, self.clock, _Callback, call_timeout_s=settings.call_timeout_s,
        )

    def start(self) -> None:
        self.conn.open()

    def stop(self) -> None:
        self.conn.close()

    def read_account(self) -> tuple[dict[str, Position], Account | None, bool]:
        while True:
            try:
                self.conn.lost(self._events.get_nowait())
            except queue.Empty:
                break
        if self.conn.is_retry_due():
            self.conn.open()
        if not self.conn.connected:
            return {}, None, False
        acc = self.conn.account
        try:
            rows = self.conn.call("query_stock_positions", acc)
            asset = self.conn.call("query_stock_asset", acc)
        except TerminalUnavailable as exc:  # a frozen terminal: the session was dropped, reconnect later
            log.warning("account read: %s", exc)
            return {}, None, False
        if rows is None or asset is None:
            return {}, None, False
        positions = {
            p.stock_code: Position(
                code=p.stock_code, volume=int(p.volume), can_use_volume=int(p.can_use_volume),
                avg_cost=float(getattr(p, "avg_price", 0) or getattr(p, "open_price", 0) or 0.0),
                market_value=float(p.market_value or 0.0),
            )
            for p in rows
        }
        account = Account(cash=_yuan(asset.cash), total_asset=_yuan(asset.total_asset),
                          frozen_cash=_yuan(asset.frozen_cash))
        return positions, account, True


def _yuan(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))
