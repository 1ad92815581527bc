"""The xtquant session: one ``XtQuantTrader`` at a time, bounded calls into MiniQMT, lazy imports.

``load_xt_modules`` imports ``<package>.xttrader/xttype/xtconstant`` only when asked (off Windows the real
trader does not import; the error says so). ``BoundedCaller`` makes each terminal call on a helper thread
and waits for it at most ``call_timeout_s``: xtquant's sync calls wait on a future with no timeout, so a
frozen MiniQMT would freeze the caller. ``XtConnection`` builds, registers, starts, connects and subscribes
a trader with a new session id on every attempt (QMT does not take a dropped session back) and backs off
after a failure. The executor's adapter (``xtquant_broker``) and the producer's sources (``xt_sources``)
each hold their own session.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

from shared_schema.clock import Clock

log = logging.getLogger("gridbridge.xtquant")

MODULE_ENV = "GRIDBRIDGE_XTQUANT_MODULE"
MAX_HUNG_CALLS = 32  # helper threads left waiting on a frozen terminal before new calls are refused outright


class XtQuantUnavailable(RuntimeError):
    """xtquant's trader cannot be imported here (off Windows, or MiniQMT's package is missing)."""


class TerminalUnavailable(Exception):
    """No call was made: there is no session to make it on (disconnected, or too many calls still hang)."""


class TerminalTimeout(TerminalUnavailable):
    """A call into MiniQMT did not return within its bound: its outcome is unknown."""


class BoundedCaller:
    """Makes one terminal call on a helper thread and waits for it at most ``timeout_s`` (wall time).

    A call past its bound raises ``TerminalTimeout`` while its thread keeps waiting: Python cannot stop it,
    and the call may still complete (a late send reaches the terminal). Such threads are counted; past
    ``max_hung`` no new call is started, so a dead terminal cannot pile up threads without end."""

    def __init__(self, timeout_s: float, max_hung: int = MAX_HUNG_CALLS) -> None:
        self.timeout_s = timeout_s
        self.max_hung = max_hung
        self.hung = 0
        self._lock = threading.Lock()

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            if self.hung >= self.max_hung:
                raise TerminalUnavailable(f"{name} not called: {self.hung} earlier MiniQMT calls still hang")
        done = threading.Event()
        box: dict[str, Any] = {}
        abandoned = [False]

        def run() -> None:
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # handed to the caller's thread, re-raised there
                box["error"] = exc
            finally:
                with self._lock:
                    done.set()
                    if abandoned[0]:
                        self.hung -= 1
                        log.warning("MiniQMT answered %s late (after %ss); that answer is dropped", name, self.timeout_s)

        threading.Thread(target=run, name=f"xt-call-{name}", daemon=True).start()
        if not done.wait(self.timeout_s):
            with self._lock:
                if not done.is_set():
                    abandoned[0] = True
                    self.hung += 1
                    raise TerminalTimeout(f"MiniQMT did not answer {name} within {self.timeout_s:g} s; "
                                          "its outcome is unknown")
        if "error" in box:
            raise box["error"]
        return box.get("value")


@dataclass(frozen=True)
class XtModules:
    """The xtquant module set the adapters use: the real package on Windows, the fake in tests."""

    xttrader: ModuleType
    xttype: ModuleType
    xtconstant: ModuleType
    xtdata: ModuleType | None = None


def load_xt_modules(package: str | None = None, with_data: bool = False) -> XtModules:
    """Import ``<package>.xttrader/xttype/xtconstant`` (and ``xtdata``) lazily.

    ``package`` defaults to ``$GRIDBRIDGE_XTQUANT_MODULE`` or ``xtquant``; tests point it at
    ``tests.kit.fake_xtquant``. Off Windows the real trader module does not import: the error says so."""
    package = package or os.environ.get(MODULE_ENV) or "xtquant"
    names = ["xttrader", "xttype", "xtconstant"] + (["xtdata"] if with_data else [])
    loaded: dict[str, ModuleType] = {}
    for name in names:
        try:
            loaded[name] = importlib.import_module(f"{package}.{name}")
        except Exception as exc:  # the real wheel raises ImportError or OSError off Windows
            raise XtQuantUnavailable(
                f"cannot import {package}.{name} ({type(exc).__name__}: {exc}). The xtquant broker needs "
                f"Windows with MiniQMT and `pip install .[qmt]`; see docs/windows.md. To run against the fake "
                f"terminal set {MODULE_ENV}=tests.kit.fake_xtquant."
            ) from exc
    return XtModules(**loaded)


def session_ids(base: int, role_offset: int, clock: Clock) -> Iterator[int]:
    """Session ids for one process: a new one for every connection attempt, unlikely to meet an id a
    previous process (or the other role) still holds in the terminal."""
    start = base + role_offset + (int(clock.now().timestamp()) % 1_000_000) * 100
    return itertools.count(start)


class XtConnection:
    """One trader session at a time: build, register, start, connect, subscribe; back off on failure.

    The session id changes on every attempt, because QMT does not take a dropped session back."""

    def __init__(
        self,
        modules: XtModules,
        userdata_path: str,
        account_id: str,
        ids: Iterator[int],
        backoff_s: Sequence[float],
        clock: Clock,
        make_callback: Callable[[int], Any],
        call_timeout_s: float = 5.0,
    ) -> None:
        self.modules = modules
        self.userdata_path = userdata_path
        self.account = modules.xttype.StockAccount(account_id)
        self.ids = ids
        self.backoff_s = list(backoff_s) or [1.0]
        self.clock = clock
        self.make_callback = make_callback
        self.trader: Any = None
        self.session_id: int | None = None
        self.generation = 0
        self.connected = False
        self.failures = 0
        self.retry_at: datetime | None = None
        self.last_error = ""
        self.caller = BoundedCaller(call_timeout_s)

    def call(self, name: str, *args: Any) -> Any:
        """``trader.<name>(*args)`` on the current session, bounded. On a timeout the session is dropped
        (it is rebuilt like after ``on_disconnected``) and ``TerminalTimeout`` says the outcome is unknown."""
        trader = self.trader
        if trader is None or not self.connected:
            raise TerminalUnavailable(f"{name} not called: not connected to MiniQMT")
        try:
            return self.caller(name, getattr(trader, name), *args)
        except TerminalTimeout as exc:
            if self.trader is trader:
                self.abandon(str(exc))
            raise

    def open(self) -> bool:
        """One connection attempt with a fresh session id; on failure the next one is scheduled."""
        self.close()
        self.generation += 1
        self.session_id = next(self.ids)
        trader = self.modules.xttrader.XtQuantTrader(self.userdata_path, self.session_id)
        trader.register_callback(self.make_callback(self.generation))
        call = self.caller
        try:
            call("start", trader.start)
            if hasattr(trader, "set_timeout"):  # the library's own bound on its sync calls, in milliseconds
                call("set_timeout", trader.set_timeout, max(1, int(self.caller.timeout_s * 1000)))
            rc = call("connect", trader.connect)
            if rc != 0:
                return self._failed(trader, f"connect() returned {rc} (session {self.session_id})")
            rc = call("subscribe", trader.subscribe, self.account)
            if rc != 0:
                return self._failed(trader, f"subscribe() returned {rc} (session {self.session_id})")
        except Exception as exc:  # the library raises on a missing terminal or a bad path; or a call hung
            return self._failed(trader, f"{type(exc).__name__}: {exc}")
        self.trader = trader
        self.connected = True
        self.failures = 0
        self.retry_at = None
        log.info("connected to MiniQMT as session %s, account %s", self.session_id, self.account.account_id)
        return True

    def _failed(self, trader: Any, why: str) -> bool:
        self.last_error = why
        log.warning("xtquant connection attempt failed: %s", why)
        self._stop_quietly(trader)
        self.schedule_retry()
        return False

    def schedule_retry(self) -> None:
        delay = self.backoff_s[min(self.failures, len(self.backoff_s) - 1)]
        self.failures += 1
        self.retry_at = self.clock.now() + timedelta(seconds=delay)

    def lost(self, generation: int) -> bool:
        """The session of ``generation`` reported ``on_disconnected``; False for an old session's news."""
        if generation != self.generation or not self.connected:
            return False
        self.connected = False
        self.close()
        self.schedule_retry()
        return True

    def abandon(self, why: str) -> None:
        """Connected but not usable (reconcile failed): drop it and try again later."""
        self.last_error = why
        self.connected = False
        self.close()
        self.schedule_retry()

    def is_retry_due(self) -> bool:
        return not self.connected and self.retry_at is not None and self.clock.now() >= self.retry_at

    def close(self) -> None:
        if self.trader is not None:
            trader, self.trader = self.trader, None
            self._stop_quietly(trader)

    def _stop_quietly(self, trader: Any) -> None:
        try:
            self.caller("stop", trader.stop)
        except Exception as exc:  # stopping a half-started or frozen trader may fail; nothing else to do
            log.debug("trader.stop() failed: %s", exc)

