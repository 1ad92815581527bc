"""The running service: watch the venue for new and vanished positions, tick the manager, run the queue.

- Entry watch every ``watch_interval_s`` (0.5 s; one positions request, one mark request per open symbol): a swap position on the venue that no open pos_id covers
  is a new position: ``Manager.open_position`` attaches its reduce-only stop at once (the stop is on the
  venue within one watch interval plus one order round trip of the fill: well under the 1 s target). A
  pos_id whose venue position is gone is closed (its stop fired or it was liquidated).
- Management tick every ``manage_interval_s`` (10-30 s), and at once when a mark moved more than
  ``price_move_trigger`` since the last pass (event-driven tick).
- Treasury tick every ``treasury_interval_s`` (5 min).
- The retry queue runs on every loop (what is due).
- Market data down: the feed returns the last mid (stale) and polling goes on at the fixed interval.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import redis

from core.events import AuditCode, Severity
from core.execution.filters import round_down
from crypto.pm.decisions import MarketView
from crypto.pm.feed import VenueFeed
from crypto.pm.instance import InstanceLost
from crypto.pm.manager import LockBusy, Manager
from crypto.pm.spot import OversellError, wac_from_fills
from crypto.pm.status_file import PmStatusPublisher
from crypto.venue.protocol import Venue
from crypto.venue.types import Account, Market, Position, VenueError

log = logging.getLogger(__name__)


def pos_id_for(symbol: str, ts_ms: int) -> str:
    return f"{re.sub(r'[^A-Za-z0-9]', '', symbol)}-{ts_ms}"


class PmService:
    def __init__(self, manager: Manager, venue: Venue, feed: VenueFeed, *, clock_ms: Callable[[], int],
                 watch_interval_s: float = 0.5, symbols: list[str] | None = None,
                 status: PmStatusPublisher | None = None, heartbeat: Callable[[], None] | None = None,
                 spot_account: Account = "trading") -> None:
        self.manager = manager
        # Renews the one-manager lease (crypto.pm.instance) every loop; it raises InstanceLost, which ends
        # ``run``, when another manager took the lease.
        self.heartbeat = heartbeat
        self.venue = venue
        self.feed = feed
        self.clock_ms = clock_ms
        self.watch_interval_s = watch_interval_s
        self.symbols = symbols
        self.last_manage_ms = 0
        self.last_treasury_ms = 0
        self.last_marks: dict[str, Decimal] = {}
        self.errors = 0
        self.refused: dict[str, str] = {}  # symbol -> the invalid venue position last refused (audited once)
        self.spot_refused: dict[str, str] = {}  # spot symbol -> the held amount refused (SPOT_COST_UNKNOWN)
        self.spot_account: Account = spot_account
        self._markets: dict[str, Market] = {}
        self.unknown_symbols: set[str] = set()  # --symbols entries the venue does not know (audited once)
        self.status = status  # the dashboard's pm page reads its file (crypto.pm.status_file); never raises

    def open_by_symbol(self, kinds: tuple[str, ...] = ("swap",)) -> dict[str, str]:
        out: dict[str, str] = {}
        for pos_id in self.manager.state.active_ids():
            pos = self.manager.position(pos_id)  # a corrupt Redis document comes back from the store
            if pos is not None and pos.kind in kinds:
                out[pos.symbol] = pos_id
        return out

    def _market(self, symbol: str) -> Market:
        if symbol not in self._markets:
            self._markets[symbol] = self.venue.market(symbol)
        return self._markets[symbol]

    def _known_symbols(self, kind: str) -> list[str]:
        """The watched symbols of one kind. A symbol the venue does not know (a typo in ``--symbols``) is
        skipped, audited once, instead of failing every step before the others are watched."""
        out = []
        for s in self.symbols or []:
            if s in self.unknown_symbols:
                continue
            try:
                market = self._market(s)
            except VenueError as exc:
                if exc.reason.retryable:
                    raise  # the venue is down, not the symbol wrong: the step fails and is retried
                self.unknown_symbols.add(s)
                self.manager._audit(AuditCode.PM_STATE_INVALID, Severity.ERROR, "SYMBOL_UNKNOWN", s,
                                    {"error": exc.reason.value})
                continue
            if market.kind == kind:
                out.append(s)
        return out

    def _spot_shrunk(self, pos_id: str, held: Decimal, market: Market) -> None:
        """Coins sold or withdrawn elsewhere: the position takes the smaller size (at the same WAC), so its
        guard exit never asks for coins the account no longer has. More coins than ours are not adopted (their
        cost is unknown here)."""
        pos = self.manager.position(pos_id)
        if pos is None or pos.closed or held >= pos.qty:
            return
        qty = round_down(held, market.qty_step)
        got = self.feed.view(pos.symbol)
        view = got[0] if got else MarketView(mark=pos.entry, ts_ms=self.clock_ms())
        try:
            self.manager.reconcile(pos_id, qty, pos.entry, pos.margin * qty / pos.qty, view)
        except LockBusy:
            pass

    def watch_spot(self) -> list[str]:
        """Spot holdings of the spot symbols named in ``symbols`` (a balance has no symbol, so only named
        ones are watched): a new holding is adopted at the cost its fills explain (``wac_from_fills``), with
        a guard stop; one the fills do not explain (a deposit, trades older than the venue's history) is
        refused (``SPOT_COST_UNKNOWN``, audited once per held amount), never adopted at the mark, which
        would invent its cost; a holding gone under the minimum is closed. Returns new pos_ids."""
        spot = self._known_symbols("spot")
        if not spot:
            return []
        known = self.open_by_symbol(("spot",))
        balances = self.venue.balances(self.spot_account)
        opened: list[str] = []
        for symbol in spot:
            market = self._market(symbol)
            bal = balances.get(market.base)
            held = bal.total if bal is not None else Decimal(0)
            if not held.is_finite() or held < max(market.min_qty, market.qty_step):
                self.spot_refused.pop(symbol, None)
                if symbol in known:
                    try:
                        self.manager.position_gone(known[symbol], self.last_marks.get(symbol), "SPOT_SOLD")
                    except LockBusy:
                        pass
                continue
            if symbol in known:
                self._spot_shrunk(known[symbol], held, market)
                continue
            if self.spot_refused.get(symbol) == str(held):
                continue
            try:
                book = wac_from_fills(self.venue.fills(symbol), market.base)
            except OversellError:
                book = None
            if book is None or book.qty <= 0 or abs(book.qty - held) > market.qty_step:
                self.spot_refused[symbol] = str(held)
                self.manager._audit(AuditCode.PM_STATE_INVALID, Severity.WARN, "SPOT_COST_UNKNOWN", symbol,
                                    {"held": str(held), "explained": None if book is None else str(book.qty)})
                continue
            got = self.feed.observe(symbol)
            if got is None:
                continue  # no price yet: the next loop tries again
            qty = round_down(min(held, book.qty), market.qty_step)
            pos_id = pos_id_for(symbol, self.clock_ms())
            self.manager.open_position(pos_id, symbol, "spot", 1, qty, book.wac, qty * book.wac, got[0])
            opened.append(pos_id)
        return opened

    def watch(self, venue_positions: list[Position] | None = None) -> list[str]:
        """New venue positions get a pos_id and their stop; vanished ones are closed. Returns new pos_ids."""
        known = self.open_by_symbol()
        swaps = None if self.symbols is None else self._known_symbols("swap")
        if venue_positions is not None:
            polled = venue_positions
        else:  # spot symbols are watch_spot's (a positions request does not take them)
            polled = [] if swaps == [] else self.venue.positions(swaps)
        usable = [p for p in polled if self._usable(p)]
        self.feed.note_positions(usable)
        live = {p.symbol: p for p in usable if p.qty != 0}
        opened = []
        for symbol, p in live.items():
            if symbol in known:
                got = self.feed.view(symbol)
                view = got[0] if got else MarketView(mark=p.mark_price, ts_ms=self.clock_ms())
                try:
                    self.manager.reconcile(known[symbol], abs(p.qty), p.entry_price, p.margin, view)
                except LockBusy:
                    pass
                continue
            got = self.feed.observe(symbol)
            view = got[0] if got else MarketView(mark=p.mark_price, ts_ms=self.clock_ms())
            pos_id = pos_id_for(symbol, self.clock_ms())
            self.manager.open_position(pos_id, symbol, "swap", 1 if p.qty > 0 else -1, abs(p.qty), p.entry_price,
                                       p.margin, view)
            opened.append(pos_id)
        for symbol, pos_id in known.items():
            if symbol not in live:
                try:
                    self.manager.position_gone(pos_id, self.last_marks.get(symbol))
                except LockBusy:
                    pass
        return opened

    def _usable(self, p: Position) -> bool:
        """A venue position with a non-finite size, or a non-finite or negative entry or margin, is refused
        (audited once per symbol and value) rather than governed: its stop would be nonsense."""
        fields = (p.qty, p.entry_price, p.margin)
        if all(v.is_finite() for v in fields) and p.entry_price >= 0 and p.margin >= 0:
            self.refused.pop(p.symbol, None)
            return True
        seen = f"{p.qty}/{p.entry_price}/{p.margin}"
        if self.refused.get(p.symbol) != seen:
            self.refused[p.symbol] = seen
            self.manager._audit(AuditCode.PM_STATE_INVALID, Severity.ERROR, "VENUE_POSITION_INVALID", p.symbol,
                                {"qty": str(p.qty), "entry": str(p.entry_price), "margin": str(p.margin)})
        return False

    def observe(self) -> bool:
        """Read every open symbol's mark (one request each); True when one moved more than the trigger
        since the last pass (an event tick is due)."""
        trigger = self.manager.cfg.price_move_trigger
        moved = False
        for symbol in self.open_by_symbol(("swap", "spot")):
            got = self.feed.observe(symbol)
            last = self.last_marks.get(symbol)
            if got and not got[1] and last and abs(got[0].mark - last) / last >= trigger:
                moved = True
        return moved

    def step(self) -> None:
        now = self.clock_ms()
        cfg = self.manager.cfg
        # A clock that went back (a venue clock corrected after a jump) must not hold the ticks until it
        # catches up with the last one: a tick stamped in the future is forgotten.
        if self.last_manage_ms > now:
            self.last_manage_ms = 0
        if self.last_treasury_ms > now:
            self.last_treasury_ms = 0
        try:
            if self.heartbeat is not None:
                self.heartbeat()
            # Redis first: after a Redis loss the open positions come back from the store before the watch
            # could mistake them for new ones (a second pos_id, a second stop).
            self.manager.ensure_state()
            self.watch()
            self.watch_spot()
            moved = self.observe()
            if now - self.last_manage_ms >= cfg.manage_interval_s * 1000 or moved:
                for result in self.manager.tick(self.feed.view):
                    got = self.feed.last.get(result.symbol)
                    if got is not None:
                        self.last_marks[result.symbol] = got.mark
                self.last_manage_ms = now
            if now - self.last_treasury_ms >= cfg.treasury_interval_s * 1000:
                self.manager.treasury_tick()
                self.manager.prune_store()
                self.last_treasury_ms = now
            self.manager.runner.run_due(now)
        except (VenueError, redis.RedisError, LockBusy) as exc:
            self.errors += 1
            log.warning("pm step: %s", exc)
        if self.status is not None:
            self.status.publish(self)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.step()
            except InstanceLost:
                raise  # another manager took over: stop governing
            except Exception:  # noqa: BLE001 - one bad step (a bug, a parse error) must not end the service
                self.errors += 1
                log.exception("pm step failed; the loop goes on")
            stop.wait(max(0.0, self.watch_interval_s - (time.monotonic() - started)))
