"""The local exchange's HTTP shell: one ThreadingHTTPServer on 127.0.0.1, dialect routers mounted by path
prefix (OKX v5 under ``/api/v5/``; Binance portfolio margin under its own hosts' prefixes), the admin door
under ``/fakex/admin/``, fault injection and per-endpoint rate limits around every request.

In-process use (tests, e2e, other commands)::

    with FakeExchange.start(seed=7, scenario="calm") as fx:
        okx = ccxt.okx({**fx.credentials.as_ccxt(), "enableRateLimit": False})
        okx.urls["api"]["rest"] = fx.url
        okx.load_markets()
        fx.advance(8 * 3600 * 1000)     # the model's clock moves only when told to

A dialect is any object with ``name``, ``prefixes`` and ``handle(req, ctx) -> Response``; the ``dialects``
argument names them ("okx", "binance") or passes instances.
"""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from core.http_thread import ServerThread
from crypto.fakex.engine.clock import ManualClock, ScaledClock
from crypto.fakex.engine.exchange import DEFAULT_START_MS, Exchange
from crypto.fakex.engine.instruments import Instrument
from crypto.fakex.faults import FaultPlan, FaultRule
from crypto.fakex.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
DIALECT_CLASSES: dict[str, str] = {
    "okx": "crypto.fakex.okx_routes:OkxDialect",
    "binance": "crypto.fakex.binance_pm:BinancePmDialect",
}


@dataclass(frozen=True)
class Credentials:
    api_key: str = "fakex-api-key"
    secret: str = "fakex-api-secret"
    passphrase: str = "fakex-Passphrase1"

    def as_ccxt(self) -> dict[str, str]:
        return {"apiKey": self.api_key, "secret": self.secret, "password": self.passphrase}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    target: str  # path and query exactly as sent (what OKX signs)
    query: Mapping[str, str]
    body: bytes
    headers: Mapping[str, str]  # lower-case names

    def json(self) -> Any:
        if not self.body:
            return {}
        return json.loads(self.body.decode("utf-8"), parse_float=Decimal)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"

    @classmethod
    def json(cls, status: int, obj: object, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        return cls(status, json.dumps(obj, default=str, separators=(",", ":")).encode("utf-8"), headers)


class ServerContext:
    """What a dialect may use: the current exchange (replaced on restart), limits, faults, credentials, and
    the wall clock of request arrival (signature timestamps and rate limits; never the model's time)."""

    def __init__(self, exchange: Exchange, credentials: Credentials, wall_ms: Callable[[], float]) -> None:
        self.exchange = exchange
        self.credentials = credentials
        self.wall_ms = wall_ms
        self.limiter = RateLimiter()
        self.faults = FaultPlan()
        self.check_timestamp = True


class Dialect(Protocol):
    name: str
    prefixes: tuple[str, ...]

    def handle(self, req: Request, ctx: ServerContext) -> Response: ...


def load_dialect(name: str, credentials: Credentials) -> Dialect:
    spec = DIALECT_CLASSES.get(name)
    if spec is None:
        raise ValueError(f"unknown dialect {name!r}; known: {sorted(DIALECT_CLASSES)}")
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)(credentials)  # type: ignore[no-any-return]


class _Router:
    def __init__(self, dialects: Iterable[Dialect]) -> None:
        self.mounts = sorted(((p, d) for d in dialects for p in d.prefixes), key=lambda m: -len(m[0]))

    def find(self, path: str) -> Dialect | None:
        for prefix, dialect in self.mounts:
            if path.startswith(prefix):
                return dialect
        return None


def _make_handler(owner: FakeExchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "fakex"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = 30
        # Headers and body leave in two writes; with Nagle on, a keep-alive client waits a delayed ACK
        # (~40 ms) for the second one on every request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("fakex %s %s", self.command, self.path.split("?")[0])

        def do_GET(self) -> None:  # noqa: N802 - stdlib names
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve()

        def do_PUT(self) -> None:  # noqa: N802
            self._serve()

        def _drop(self) -> None:
            # Close without a byte of answer: the client sees the connection reset / remote end closed.
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

        def _serve(self) -> None:
            ctx = owner.ctx
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._write(Response.json(413, {"code": "50000", "msg": "body too large", "data": []}))
                return
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            req = Request(method=self.command, path=parts.path, target=self.path,
                          query=dict(parse_qsl(parts.query, keep_blank_values=True)), body=body,
                          headers={k.lower(): v for k, v in self.headers.items()})
            wall = ctx.wall_ms()
            is_admin = req.path.startswith(ADMIN_PREFIX)
            if not is_admin:
                if ctx.faults.take(("disconnect",), req.method, req.path, wall) is not None:
                    self._drop()
                    return
                delay = ctx.faults.take(("latency",), req.method, req.path, wall)
                if delay is not None:
                    time.sleep(delay.ms / 1000)
            dialect = owner.admin if is_admin else owner.router.find(req.path)
            if dialect is None:
                response = Response.json(404, {"code": "404", "msg": "Not Found", "data": []})
            else:
                try:
                    response = dialect.handle(req, ctx)
                except Exception:  # a bug in the fake must answer like a venue outage, not kill the thread
                    log.exception("fakex: %s %s failed", req.method, req.path)
                    response = Response.json(500, {"code": "50000", "msg": "Internal Server Error", "data": []})
            if not is_admin:
                lost = ctx.faults.take(("lose_response", "timeout"), req.method, req.path, ctx.wall_ms())
                if lost is not None:
                    if lost.kind == "timeout":
                        time.sleep(lost.ms / 1000)
                    self._drop()
                    return
            self._write(response)

        def _write(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)

    return Handler


ADMIN_PREFIX = "/fakex/admin/"


class FakeExchange:
    """A running local exchange: ``url``, ``credentials``, ``exchange`` (the engine), ``clock``."""

    def __init__(self, exchange: Exchange, credentials: Credentials, dialects: Iterable[str | Dialect],
                 host: str = "127.0.0.1", port: int = 0, state_file: Path | None = None,
                 instruments: Mapping[str, Instrument] | None = None, speed: float | None = None,
                 wall_ms: Callable[[], float] = lambda: time.time() * 1000, tick_s: float = 0.25,
                 autosave_s: float = 1.0) -> None:
        from crypto.fakex.admin import AdminRoutes  # the admin door needs the handle type: import here

        self.credentials = credentials
        self.ctx = ServerContext(exchange, credentials, wall_ms)
        self.router = _Router(d if not isinstance(d, str) else load_dialect(d, credentials) for d in dialects)
        self.admin = AdminRoutes(self)
        self.host = host
        self.port = port
        self.state_file = state_file
        self.instruments = instruments
        self.speed = speed
        self.tick_s = tick_s
        self.autosave_s = autosave_s
        self._serving = ServerThread("fakex-http")
        self._ticker: threading.Thread | None = None
        self._stop_ticker = threading.Event()
        self._restart_lock = threading.Lock()
        self._stopped = False
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None

    # ----------------------------------------------------------------- construction
    @classmethod
    def start(cls, seed: int = 1, scenario: str = "calm", port: int = 0, state_file: Path | str | None = None,
              speed: float | None = None, start_ms: int = DEFAULT_START_MS,
              balances: Mapping[str, Mapping[str, Decimal]] | None = None,
              instruments: Mapping[str, Instrument] | None = None, credentials: Credentials | None = None,
              dialects: Iterable[str | Dialect] = ("okx",), check_timestamp: bool = True) -> FakeExchange:
        """Start on 127.0.0.1:``port`` (0 = a free port). ``speed`` None = a manual clock (tests advance it);
        a number = wall time x speed. An existing ``state_file`` is reloaded (a restart keeps the state)."""
        path = Path(state_file) if state_file is not None else None
        if path is not None and path.exists():
            exchange = Exchange.load(path, instruments)
            now = exchange.state.now_ms
        else:
            exchange = Exchange.create(seed=seed, scenario=scenario, start_ms=start_ms, balances=balances,
                                       instruments=instruments)
            now = start_ms
        exchange.clock = ScaledClock(now, speed) if speed is not None else ManualClock(now)
        handle = cls(exchange, credentials or Credentials(), dialects, port=port, state_file=path,
                     instruments=instruments, speed=speed)
        handle.ctx.check_timestamp = check_timestamp
        handle._listen()
        if speed is not None or path is not None:
            handle._start_ticker()
        return handle

    def _listen(self) -> None:
        self.port = self._serving.start(ThreadingHTTPServer((self.host, self.port), _make_handler(self)))[1]

    def _close_listener(self) -> None:
        self._serving.stop()

    def _start_ticker(self) -> None:
        # Serve mode: resting orders fill and funding settles as wall time passes, without requests; the
        # state file is rewritten every second (autosave_s) so a kill -9 loses at most that much.
        def run() -> None:
            last_save = time.monotonic()
            while not self._stop_ticker.wait(self.tick_s):
                try:
                    self.exchange.sync()
                    if self.state_file is not None and time.monotonic() - last_save >= self.autosave_s:
                        self.exchange.save(self.state_file)
                        last_save = time.monotonic()
                except Exception:
                    log.exception("fakex ticker failed")

        self._stop_ticker.clear()
        self._ticker = threading.Thread(target=run, name="fakex-ticker", daemon=True)
        self._ticker.start()

    # ----------------------------------------------------------------- use
    @property
    def exchange(self) -> Exchange:
        return self.ctx.exchange

    @property
    def clock(self) -> ManualClock | ScaledClock:
        clock = self.exchange.clock
        assert isinstance(clock, (ManualClock, ScaledClock))
        return clock

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now_ms(self) -> int:
        return self.exchange.now_ms()

    def advance(self, ms: int) -> int:
        """Move the model's clock forward and process everything due (fills, stops, funding, liquidation)."""
        self.clock.advance(ms)
        return self.exchange.sync()

    def inject(self, kind: str, path: str = "", method: str = "", count: int = 1, ms: int = 0,
               duration_ms: int = 0) -> None:
        rule = FaultRule(kind=kind, path=path, method=method, count=count, ms=ms,  # type: ignore[arg-type]
                         duration_ms=duration_ms)
        self.ctx.faults.inject(rule, self.ctx.wall_ms())

    def clear_faults(self) -> None:
        self.ctx.faults.clear()

    def set_rate_limit(self, endpoint: str, limit: int, window_ms: int) -> None:
        self.ctx.limiter.override(endpoint, limit, window_ms)

    def save(self) -> Path:
        """Write the state file (a temporary one, removed on stop, when the handle was started without)."""
        if self.state_file is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="fakex-")
            self.state_file = Path(self._own_dir.name) / "state.json"
        self.exchange.save(self.state_file)
        return self.state_file

    def restart(self) -> None:
        """Stop listening, write the state, rebuild the engine from the file, listen again on the same port:
        what a process restart with ``--state`` does, in-process. Requests in between are refused."""
        with self._restart_lock:
            if self._stopped:
                return
            self._stop_ticker.set()
            if self._ticker is not None:
                self._ticker.join(timeout=5)
            self._close_listener()
            path = self.save()
            old_clock = self.exchange.clock
            exchange = Exchange.load(path, self.instruments)
            now = exchange.state.now_ms
            exchange.clock = (ScaledClock(now, self.speed) if isinstance(old_clock, ScaledClock) and self.speed
                              else ManualClock(now))
            self.ctx.exchange = exchange
            self._listen()
            if self.speed is not None or self.state_file is not None:
                self._start_ticker()

    def stop(self) -> None:
        # Under the restart lock: a restart in flight (admin door) finishes first, and none starts after.
        with self._restart_lock:
            self._stopped = True
            self._stop_ticker.set()
            if self._ticker is not None:
                self._ticker.join(timeout=5)
                self._ticker = None
            self._close_listener()
            if self._own_dir is not None:
                self._own_dir.cleanup()
                self._own_dir = None
                self.state_file = None
            elif self.state_file is not None:
                self.exchange.save(self.state_file)

    def __enter__(self) -> FakeExchange:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0, every_s: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes (for tests and callers waiting on the server)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return predicate()


__all__ = ["ADMIN_PREFIX", "Credentials", "Dialect", "FakeExchange", "Request", "Response", "ServerContext",
           "wait_until"]
