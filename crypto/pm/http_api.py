"""The position manager's HTTP API on loopback (stdlib ``ThreadingHTTPServer``, like the control door).

- ``GET /health`` (no token): Redis, store and venue reachability, tick lag, retry-queue length, config
  state and the SLIs. 200 when Redis and the store answer, else 503.
- ``GET /metrics`` (token): the SLIs alone.
- ``POST /positions/manage`` (token): one governance pass now. Body ``ManageRequest``; answers 200 with
  ``{pos_id, symbol, ts, degraded, plan: {pnl, roe, liq_buffer, stop, qty, closed, actions, events},
  orders: [...]}``; 409 ``LOCK_BUSY`` when a pass is running on that position, 404 ``POSITION_UNKNOWN``,
  503 ``MARKET_DATA_DOWN`` when no price was ever seen.
- ``POST /auto-transfer/trigger`` (token): a treasury pass now (``transfer_id`` optional, ``approve`` to
  approve a PENDING one). 200 ``{transfer: {...}}`` or ``{result: CODE}``.

Tokens: ``Authorization: Bearer <token>``, compared with ``hmac.compare_digest``; never logged. Every
refusal is ``{"error": CODE, "detail": ...}`` with a stable code.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import redis
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from core.http_thread import ServerThread, bearer_token_matches
from crypto.pm.codec import transfer_doc
from crypto.pm.decisions import MarketView
from crypto.pm.manager import LockBusy, Manager
from crypto.pm.treasury import TransferRecord
from crypto.venue.types import VenueError

log = logging.getLogger(__name__)
MAX_BODY = 8192
TOKEN_ENV = "GRIDBRIDGE_PM_TOKEN"
# A caller's own mark may differ from the feed's by at most this fraction. A manage call with a mark of its
# own decides real orders (a take-profit, an exit): a typo (1000 for 100) or 1e30 must not close a position.
MARK_BAND = Decimal("0.10")
# Prices and ATRs in a body: finite, positive, at most 20 significant digits and 12 decimals, under 1e12
# (far beyond any listed price); the rest is a typo or an attack, refused before any arithmetic.
Price = Annotated[Decimal, Field(gt=0, lt=Decimal("1e12"), max_digits=20, decimal_places=12, allow_inf_nan=False)]


MAX_CONNECTIONS = 32  # connections served at once; the rest get 503 BUSY at once (a thread each otherwise)
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
              b"Content-Length: 45\r\n\r\n" + b'{"error": "BUSY", "detail": "too many conns"}')


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most ``limit`` at once: a flood of stalled connections costs ``limit``
    threads (each bounded by the handler's 10 s timeout), and the management loop, in its own thread, goes on."""

    daemon_threads = True
    request_queue_size = 128  # the listen backlog: a burst of connections is answered (BUSY), not left to SYN retries

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self.refused_busy = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused_busy += 1
            try:
                request.sendall(BUSY_REPLY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ManageRequest(_In):
    """``mark`` etc. override the feed (a caller with its own prices, or a test); ``signal`` is the trend
    signal of the strategy that owns the position (+1 long, -1 short, 0 none) and is what allows an add-on."""

    pos_id: str = Field(min_length=1, max_length=96)
    signal: Annotated[int, Strict()] | None = None  # strict: ``true`` or ``1.0`` is not a signal
    mark: Price | None = None
    atr: Price | None = None
    regime: str | None = Field(default=None, max_length=32)
    liq_price: Price | None = None

    @field_validator("signal")
    @classmethod
    def _signal(cls, v: int | None) -> int | None:
        if v is not None and v not in (-1, 0, 1):
            raise ValueError("signal is -1, 0 or 1")
        return v


class ActionOut(BaseModel):
    type: str
    intent_id: str
    side: str
    qty: str
    stop: str | None
    reduce_only: bool
    reason: str


class PlanOut(BaseModel):
    pnl: str
    roe: str
    liq_buffer: str | None
    stop: str | None
    qty: str
    closed: bool
    actions: list[ActionOut]
    events: list[dict[str, str]]


class OrderOut(BaseModel):
    intent_id: str
    client_order_id: str
    kind: str
    symbol: str
    side: str
    qty: str
    type: str
    trigger_price: str | None
    reduce_only: bool
    cancel_client_order_ids: list[str]
    status: str
    venue_order_id: str | None
    reason: str


class ManageResponse(BaseModel):
    pos_id: str
    symbol: str
    ts: int
    degraded: list[str]
    plan: PlanOut
    orders: list[OrderOut]


class TransferRequest(_In):
    transfer_id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    approve: Annotated[bool, Strict()] = False  # strict: "yes", 1 or "on" never approve moving money


ViewFn = Callable[[str], tuple[MarketView, bool] | None]


class PmHttpServer:
    def __init__(self, manager: Manager, token: str | None, views: ViewFn, host: str = "127.0.0.1",
                 port: int = 0, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max_connections
        if not token:
            raise ValueError(f"refusing to start the position-manager API without {TOKEN_ENV}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the position-manager API binds loopback only")
        self._token = token.encode("utf-8")
        self.manager = manager
        self.views = views
        self.host, self.port = host, port
        self._serving = ServerThread("pm-http")

    def start(self) -> tuple[str, int]:
        return self._serving.start(_BoundedServer((self.host, self.port), _handler(self), self.max_connections))

    def stop(self) -> None:
        self._serving.stop()

    def is_authorised(self, header: str | None) -> bool:
        return bearer_token_matches(header, self._token)

    # The routes, as plain functions of the parsed body (tests call them through HTTP).
    def health(self) -> tuple[int, dict[str, Any]]:
        h = self.manager.health()
        return (200 if h["redis"] and h["store"] else 503), h

    def manage(self, req: ManageRequest) -> tuple[int, dict[str, Any]]:
        pos = self.manager.position(req.pos_id)
        if pos is None:
            return 404, {"error": "POSITION_UNKNOWN", "detail": req.pos_id}
        got = self.views(pos.symbol)
        refused = self._out_of_band(req, pos.direction, got[0].mark if got else None)
        if refused is not None:
            return 400, {"error": "OUT_OF_BAND", "detail": refused}
        stale = False
        if req.mark is not None:
            base = got[0] if got else MarketView(mark=req.mark, ts_ms=0)
            view = MarketView(mark=req.mark, ts_ms=base.ts_ms, atr=req.atr if req.atr is not None else base.atr,
                              regime=req.regime, liq_price=req.liq_price or base.liq_price, signal=req.signal,
                              tick=base.tick, qty_step=base.qty_step, min_qty=base.min_qty)
        elif got is None:
            return 503, {"error": "MARKET_DATA_DOWN", "detail": pos.symbol}
        else:
            base, stale = got
            view = MarketView(mark=base.mark, ts_ms=base.ts_ms, atr=req.atr if req.atr is not None else base.atr,
                              regime=req.regime, liq_price=base.liq_price,
                              signal=req.signal if req.signal is not None else base.signal,
                              tick=base.tick, qty_step=base.qty_step, min_qty=base.min_qty)
        try:
            result = self.manager.manage(req.pos_id, view, stale_market=stale)
        except LockBusy:
            return 409, {"error": "LOCK_BUSY", "detail": f"lock:pos:{req.pos_id}"}
        self.manager.save_slis()
        return 200, ManageResponse.model_validate(result.to_doc()).model_dump()

    def _out_of_band(self, req: ManageRequest, direction: int, feed_mark: Decimal | None) -> str | None:
        """Why a well-formed body still cannot be used, or None. Checked before the lock and any order."""
        if req.regime is not None and req.regime not in self.manager.cfg.atr_k:
            return f"regime: not one of {sorted(self.manager.cfg.atr_k)}"
        mark = req.mark if req.mark is not None else feed_mark
        if req.mark is not None and feed_mark is not None and abs(req.mark - feed_mark) > MARK_BAND * feed_mark:
            return f"mark: more than {MARK_BAND} away from the feed's {feed_mark}"
        if mark is not None and req.atr is not None and req.atr >= mark:
            return "atr: not below the mark"
        if mark is not None and req.liq_price is not None and (req.liq_price - mark) * direction >= 0:
            return "liq_price: on the wrong side of the mark (the position would be liquidated already)"
        return None

    def trigger_transfer(self, req: TransferRequest) -> tuple[int, dict[str, Any]]:
        try:
            got = self.manager.treasury_tick(req.transfer_id, approve=req.approve)
        except LockBusy:
            return 409, {"error": "LOCK_BUSY", "detail": "treasury"}
        if isinstance(got, TransferRecord):
            return 200, {"transfer": transfer_doc(got)}
        return 200, {"result": got}


def _handler(api: PmHttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "gridbridge-pm"
        sys_version = ""
        timeout = 10

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.info("pm http %s %s", self.command, self.path.split("?")[0])

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(data)

        def _safe(self, fn: Callable[[], tuple[int, dict[str, Any]]]) -> None:
            try:
                status, body = fn()
            except redis.RedisError as exc:
                status, body = 503, {"error": "REDIS_DOWN", "detail": type(exc).__name__}
            except VenueError as exc:
                status, body = 503, {"error": "VENUE_UNAVAILABLE", "detail": exc.reason.value}
            except Exception as exc:  # noqa: BLE001 - the API answers, the service lives on
                log.exception("pm http handler failed")
                status, body = 500, {"error": "INTERNAL", "detail": type(exc).__name__}
            self._reply(status, body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?")[0]
            if path == "/health":
                self._safe(api.health)
            elif path == "/metrics":
                if not api.is_authorised(self.headers.get("Authorization")):
                    self._reply(401, {"error": "UNAUTHORISED", "detail": "bearer token"})
                    return
                self._safe(lambda: (200, api.manager.slis.snapshot()))
            else:
                self._reply(404, {"error": "NOT_FOUND", "detail": path})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?")[0]
            routes: dict[str, tuple[type[_In], Callable[[Any], tuple[int, dict[str, Any]]]]] = {
                "/positions/manage": (ManageRequest, api.manage),
                "/auto-transfer/trigger": (TransferRequest, api.trigger_transfer),
            }
            if path not in routes:
                self._reply(404, {"error": "NOT_FOUND", "detail": path})
                return
            if not api.is_authorised(self.headers.get("Authorization")):
                self._reply(401, {"error": "UNAUTHORISED", "detail": "bearer token"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not (0 <= length <= MAX_BODY):
                self._reply(400, {"error": "BODY_SIZE", "detail": f"at most {MAX_BODY} bytes"})
                return
            model, fn = routes[path]
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = model.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                self._reply(400, {"error": "BODY_INVALID", "detail": f"{where}: {first.get('type')}"})
                return
            self._safe(lambda: fn(body))

    return Handler
