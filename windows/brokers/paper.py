"""PaperBroker: a simulated QMT terminal that fills limit orders against the latest quote.

It behaves like the venue, not like the executor: it keeps its own cash and T+1 positions, survives an
executor crash (its state is a file, like the terminal's own books), fills a BUY when ask1 <= limit and a
SELL when bid1 >= limit at the touch, can fill partially, reject and lag, charges a commission model, and
cancels open orders at the day's end as the exchange does. Randomness is a hash of (seed, order, quote
time), so a run is deterministic given a seed and stays so across restarts.

Every ``place_limit_order`` call is appended (fsync) to ``paper_orders.jsonl`` before it is acted on, so a
test can prove no client_order_id reached the venue twice. The log is bounded: at each day's roll the books
are written and the log is rewritten (atomically) to the lines of the orders the books still hold (open
ones, the new day's and the two days before), so it spans a few days, not the life of the account. On load,
a logged placement missing from the books is live (it reached the venue just before a crash) only if it is
of the books' trading day or later; an older one was dropped with its day and stays dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from core.journal import Journal, read_records
from core.oms.order_fsm import OrderState
from settings.config import PaperConfig
from shared_schema.atomic_io import WriteFailed, atomic_write_bytes, atomic_write_json
from shared_schema.failpoints import failpoint
from shared_schema.ledger_math import commission_fen
from shared_schema.models import QuoteFile
from shared_schema.types import fen_to_yuan, to_fen
from windows.brokers.protocol import (
    BrokerAsset,
    BrokerEvent,
    BrokerPosition,
    OrderRequest,
    OrderUpdate,
    PlaceOutcome,
    PlaceStatus,
)

log = logging.getLogger("gridbridge.paper")

STATE_FILE = "paper_broker_state.json"
ORDER_LOG = "paper_orders.jsonl"
ACCOUNT_VIEW_FILE = "paper_account.json"


_OPEN_STATES = frozenset({OrderState.SENT.value, OrderState.ACK.value, OrderState.PARTIAL.value})


@dataclass
class PaperOrder:
    client_order_id: str
    broker_order_id: str
    code: str
    side: str
    shares: int
    price_milli: int
    trading_day: str
    state: str = OrderState.SENT.value
    filled_shares: int = 0
    filled_value_fen: int = 0
    fees_fen: int = 0
    message: str = ""
    quotes_seen: int = 0
    last_quote_ms: int = -1
    cancel_requested: bool = False

    @property
    def remaining(self) -> int:
        return self.shares - self.filled_shares

    @property
    def is_open(self) -> bool:
        return self.state in _OPEN_STATES

    def update(self) -> OrderUpdate:
        return OrderUpdate(
            client_order_id=self.client_order_id,
            state=OrderState(self.state),
            filled_shares=self.filled_shares,
            filled_value_fen=self.filled_value_fen,
            fees_fen=self.fees_fen,
            broker_order_id=self.broker_order_id,
            message=self.message,
            code=self.code,
            side=self.side,
            shares=self.shares,
        )


@dataclass
class PaperPosition:
    volume: int = 0
    can_use: int = 0  # sellable today before open sells are subtracted
    cost_fen: int = 0  # total cost basis including buy fees


@dataclass
class PaperBook:
    cash_fen: int
    positions: dict[str, PaperPosition]
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    trading_day: str = ""
    next_order_no: int = 1
    last_price: dict[str, float] = field(default_factory=dict)
    touch: dict[str, list[float]] = field(default_factory=dict)  # code -> [bid1, ask1, quote epoch ms]


class PaperBroker:
    name = "paper"

    def __init__(self, state_dir: Path, config: PaperConfig, account_view_path: Path | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.account_view_path = account_view_path
        self._lock = threading.Lock()
        self._events: list[BrokerEvent] = []
        self._log = Journal(self.state_dir / ORDER_LOG)
        self._dirty = False
        self._order_json: dict[str, tuple[tuple, str]] = {}
        self.book = self._load()

    # ------------------------------------------------------------------------------------ persistence

    def _load(self) -> PaperBook:
        path = self.state_dir / STATE_FILE
        if path.exists():
            raw = json.loads(path.read_text(encoding="utf-8"))
            book = PaperBook(
                cash_fen=raw["cash_fen"],
                positions={c: PaperPosition(**p) for c, p in raw["positions"].items()},
                orders={k: PaperOrder(**o) for k, o in raw["orders"].items()},
                trading_day=raw["trading_day"],
                next_order_no=raw["next_order_no"],
                last_price=raw.get("last_price", {}),
                touch=raw.get("touch", {}),
            )
        else:
            book = PaperBook(
                cash_fen=to_fen(self.config.initial_cash),
                positions={
                    code: PaperPosition(volume=shares, can_use=shares, cost_fen=0)
                    for code, shares in self.config.initial_positions.items()
                },
            )
        # A placement logged but not in the snapshot reached the venue just before a crash: it is live. One
        # of an earlier day than the books' was trimmed with its day (the log is rewritten just after).
        for record in self._log.replay():
            if (record.get("accepted") and record["client_order_id"] not in book.orders
                    and record["order"].get("trading_day", "") >= book.trading_day):
                book.orders[record["client_order_id"]] = PaperOrder(**record["order"])
                book.next_order_no = max(book.next_order_no, int(record["order"]["broker_order_id"][1:]) + 1)
        return book

    def _compact_log(self) -> None:
        """Rewrite the placement log to the lines of the orders the books hold, after the books themselves are
        on disk. A kill before the swap leaves the whole old log (``_load`` skips the dropped days' lines);
        after it, the books hold every order the new log names."""
        self._dirty = True
        if not self._flush():
            return
        path = self.state_dir / ORDER_LOG
        self._log.sync()
        keep = b"".join(
            json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"
            for record, _size in read_records(path)
            if record.get("client_order_id") in self.book.orders
        )
        self._log.close()
        failpoint("paper.compact_log.before_swap")  # the books are written, the old log still whole
        try:
            atomic_write_bytes(path, keep)
        except WriteFailed as exc:
            log.warning("paper order log not compacted (%s); it is tried again at the next day", exc)

    def _persist(self) -> None:
        # Deferred: the books are written once before anyone outside can observe them (events, queries).
        self._dirty = True

    def _flush(self) -> bool:
        """Write the books; False when they could not be written (then nothing new may be observed)."""
        if not self._dirty:
            return True
        book = self.book
        state = {
            "cash_fen": book.cash_fen,
            "positions": {c: asdict(p) for c, p in book.positions.items()},
            "orders": {},
            "trading_day": book.trading_day,
            "next_order_no": book.next_order_no,
            "last_price": book.last_price,
            "touch": book.touch,
        }
        # A day's orders are thousands at most but are written on every change: serialise only the
        # orders that changed since the last flush and splice the rest in from the cache.
        cache, fresh, parts = self._order_json, {}, []
        for client_order_id, order in book.orders.items():
            hit = cache.get(client_order_id)
            key = (order.state, order.filled_shares, order.filled_value_fen, order.fees_fen, order.message,
                   order.quotes_seen, order.last_quote_ms, order.cancel_requested)
            if hit is None or hit[0] != key:
                hit = (key, json.dumps(asdict(order), separators=(",", ":")))
            fresh[client_order_id] = hit
            parts.append(json.dumps(client_order_id) + ":" + hit[1])
        self._order_json = fresh
        text = json.dumps(state, separators=(",", ":")).replace('"orders":{}', '"orders":{' + ",".join(parts) + "}", 1)
        try:
            atomic_write_bytes(self.state_dir / STATE_FILE, text.encode("utf-8"))
        except WriteFailed as exc:
            log.error("paper books not written (%s); holding events until they are", exc)
            return False
        self._dirty = False
        if self.account_view_path is not None:
            try:
                atomic_write_json(self.account_view_path, self._account_view())
            except WriteFailed as exc:
                # Only the producer's view is stale; the books themselves are safe.
                log.warning("paper account view not written: %s", exc)
                self._dirty = True
        return True

    def _account_view(self) -> dict:
        asset = self._asset()
        return {
            "trading_day": self.book.trading_day,
            "cash": float(asset.cash),
            "frozen_cash": float(asset.frozen_cash),
            "total_asset": float(asset.total_asset),
            "positions": [
                {
                    "code": p.code,
                    "volume": p.volume,
                    "can_use_volume": p.can_use_volume,
                    "avg_cost": float(p.avg_cost),
                    "market_value": float(p.market_value),
                }
                for p in self._positions()
            ],
        }

    # ------------------------------------------------------------------------------------- broker API

    def start(self) -> None:
        with self._lock:
            self._dirty = True
            self._flush()

    def stop(self) -> None:
        with self._lock:
            self._flush()
        self._log.close()

    def place_limit_order(self, request: OrderRequest) -> PlaceOutcome:
        with self._lock:
            book = self.book
            duplicate = request.client_order_id in book.orders
            order = PaperOrder(
                client_order_id=request.client_order_id,
                broker_order_id=f"P{book.next_order_no}",
                code=request.code,
                side=request.side,
                shares=request.shares,
                price_milli=int(request.price * 1000),
                trading_day=book.trading_day,
            )
            self._log.append({"client_order_id": request.client_order_id, "accepted": not duplicate, "order": asdict(order)})
            if duplicate:
                return PlaceOutcome(PlaceStatus.REJECTED, message="duplicate client_order_id")
            book.next_order_no += 1
            reason = self._placement_problem(order)
            book.orders[order.client_order_id] = order
            if reason is not None:
                order.state = OrderState.REJECTED.value
                order.message = reason
            elif self._rand(f"reject:{order.client_order_id}") < self.config.reject_ratio:
                order.state = OrderState.REJECTED.value
                order.message = "simulated venue rejection"
            self._persist()
            # The venue answers asynchronously, as QMT does: acknowledgement or junk comes as an event.
            if order.state == OrderState.REJECTED.value:
                self._events.append(order.update())
            else:
                self._events.append(
                    OrderUpdate(order.client_order_id, OrderState.ACK, broker_order_id=order.broker_order_id,
                                code=order.code, side=order.side, shares=order.shares)
                )
                order.state = OrderState.ACK.value
                # A marketable limit order trades at once against the book the venue already has.
                self._match(order.code)
                self._persist()
            return PlaceOutcome(PlaceStatus.SENT, broker_order_id=order.broker_order_id)

    def _placement_problem(self, order: PaperOrder) -> str | None:
        if order.side == "BUY":
            need = self._buy_reserve_fen(order.price_milli, order.shares)
            if need > self._available_cash_fen():
                return "insufficient funds"
        else:
            if order.shares > self._sellable(order.code):
                return "insufficient sellable volume (T+1)"
        return None

    def cancel_order(self, client_order_id: str) -> None:
        with self._lock:
            order = self.book.orders.get(client_order_id)
            if order is None or not order.is_open:
                return
            order.cancel_requested = True
            order.state = OrderState.CANCELLED.value
            order.message = "cancelled on request"
            self._persist()
            self._events.append(order.update())

    def query_asset(self) -> BrokerAsset | None:
        with self._lock:
            return self._asset()

    def query_positions(self) -> list[BrokerPosition] | None:
        with self._lock:
            return self._positions()

    def query_orders(self) -> list[OrderUpdate] | None:
        with self._lock:
            if not self._flush():
                return None
            return [o.update() for o in self.book.orders.values()]

    def drain_events(self) -> list[BrokerEvent]:
        with self._lock:
            if not self._flush():
                return []
            events, self._events = self._events, []
            return events

    # ---------------------------------------------------------------------------------------- matching

    def on_market(self, quotes: QuoteFile) -> None:
        with self._lock:
            changed = False
            days = {q.quote_time.date() for q in quotes.quotes.values()}
            if days and self._roll_day(max(days)):
                changed = True
                self._compact_log()
            for code, quote in quotes.quotes.items():
                if self.book.last_price.get(code) != quote.last:
                    self.book.last_price[code] = quote.last
                    changed = True
                quote_ms = int(quote.quote_time.timestamp() * 1000)
                previous = self.book.touch.get(code)
                if previous is None or previous[2] < quote_ms:
                    self.book.touch[code] = [quote.bid1, quote.ask1, quote_ms]
                    changed = True
                changed |= self._match(code)
            if changed:
                self._persist()

    def _match(self, code: str) -> bool:
        """Let every open order of ``code`` meet the current quote once (after its latency)."""
        touch = self.book.touch.get(code)
        if touch is None:
            return False
        bid, ask, quote_ms = touch[0], touch[1], int(touch[2])
        changed = False
        for order in list(self.book.orders.values()):
            if order.code != code or not order.is_open or order.last_quote_ms >= quote_ms:
                continue
            order.last_quote_ms = quote_ms
            order.quotes_seen += 1
            changed = True
            if order.quotes_seen <= self.config.latency_quotes:
                continue
            self._try_fill(order, bid, ask, quote_ms)
        return changed

    def _roll_day(self, day: date) -> bool:
        key = day.isoformat()
        if self.book.trading_day == key:
            return False
        if self.book.trading_day:
            for order in self.book.orders.values():
                if order.is_open:
                    order.state = OrderState.CANCELLED.value
                    order.message = "expired at the day's end"
                    self._events.append(order.update())
            self._trim_orders(key)
        for position in self.book.positions.values():
            position.can_use = position.volume
        self.book.trading_day = key
        return True

    def _trim_orders(self, today: str) -> None:
        # The snapshot keeps recent days only; the placement log keeps every order ever sent.
        days = sorted({o.trading_day for o in self.book.orders.values()})
        keep = set(days[-2:]) | {today}
        self.book.orders = {k: o for k, o in self.book.orders.items() if o.is_open or o.trading_day in keep}

    def _try_fill(self, order: PaperOrder, bid: float, ask: float, quote_ms: int) -> None:
        limit = order.price_milli
        if order.side == "BUY":
            touch = round(ask * 1000)
            if ask <= 0 or touch > limit:
                return
        else:
            touch = round(bid * 1000)
            if bid <= 0 or touch < limit:
                return
        qty = order.remaining
        if qty > 100 and self._rand(f"partial:{order.client_order_id}:{quote_ms}") < self.config.partial_fill_ratio:
            lots = qty // 100
            qty = max(1, lots // 2) * 100
        value_fen = to_fen(Decimal(touch) * qty / 1000)
        fee_fen = self._fee_fen(value_fen)
        position = self.book.positions.setdefault(order.code, PaperPosition())
        if order.side == "BUY":
            self.book.cash_fen -= value_fen + fee_fen
            position.volume += qty
            position.cost_fen += value_fen + fee_fen
        else:
            qty = min(qty, position.volume)
            if qty <= 0:
                return
            avg_cost = position.cost_fen * qty // position.volume if position.volume else 0
            self.book.cash_fen += value_fen - fee_fen
            position.volume -= qty
            position.can_use -= qty
            position.cost_fen -= avg_cost
        order.filled_shares += qty
        order.filled_value_fen += value_fen
        order.fees_fen += fee_fen
        order.state = (OrderState.FILLED if order.remaining == 0 else OrderState.PARTIAL).value
        self._events.append(order.update())

    # ----------------------------------------------------------------------------------------- helpers

    def _fee_fen(self, value_fen: int) -> int:
        return commission_fen(value_fen, self.config.commission_rate, to_fen(self.config.commission_min))

    def _buy_reserve_fen(self, price_milli: int, shares: int) -> int:
        value = to_fen(Decimal(price_milli) * shares / 1000)
        return value + self._fee_fen(value)

    def _frozen_cash_fen(self) -> int:
        return sum(
            self._buy_reserve_fen(o.price_milli, o.remaining)
            for o in self.book.orders.values()
            if o.is_open and o.side == "BUY"
        )

    def _available_cash_fen(self) -> int:
        return self.book.cash_fen - self._frozen_cash_fen()

    def _sellable(self, code: str) -> int:
        position = self.book.positions.get(code)
        if position is None:
            return 0
        reserved = sum(o.remaining for o in self.book.orders.values() if o.is_open and o.side == "SELL" and o.code == code)
        return max(0, position.can_use - reserved)

    def _asset(self) -> BrokerAsset:
        market = sum(
            Decimal(str(self.book.last_price.get(code, 0))) * p.volume for code, p in self.book.positions.items()
        )
        cash = fen_to_yuan(self.book.cash_fen)
        return BrokerAsset(
            cash=fen_to_yuan(self._available_cash_fen()),
            frozen_cash=fen_to_yuan(self._frozen_cash_fen()),
            total_asset=(cash + market).quantize(Decimal("0.01")),
        )

    def _positions(self) -> list[BrokerPosition]:
        out = []
        for code, p in sorted(self.book.positions.items()):
            last = Decimal(str(self.book.last_price.get(code, 0)))
            out.append(
                BrokerPosition(
                    code=code,
                    volume=p.volume,
                    can_use_volume=self._sellable(code),
                    avg_cost=(fen_to_yuan(p.cost_fen) / p.volume).quantize(Decimal("0.0001")) if p.volume else Decimal(0),
                    market_value=(last * p.volume).quantize(Decimal("0.01")),
                )
            )
        return out

    def _rand(self, key: str) -> float:
        digest = hashlib.sha256(f"{self.config.seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64
