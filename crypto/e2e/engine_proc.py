"""A real engine process for the kill -9 checks: start on a state folder, place one order, and right after
the venue accepted it (before the answer is journaled) write the client id to ``--hold`` and wait to be
killed. ``python -m crypto.e2e.engine_proc --url URL --state DIR --hold FILE``.

With ``--protect QTY`` it runs protective orders instead: cycles toward a position of QTY until the
position's stop and take-profit are confirmed (bracket ARMED), writes their client ids to ``--hold`` and
waits to be killed (the restart must adopt them, never leave the position without its stop)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from core.oms.reasons import VenueReason
from crypto.e2e.runtime import fake_credentials
from crypto.execution.config import ExecConfig
from crypto.execution.decisions import OrderPlan
from crypto.execution.engine import CryptoEngine
from crypto.execution.orders import LiveOrder
from crypto.venue.types import VenueError
from shared_schema.atomic_io import atomic_write_bytes

T = TypeVar("T")

KILL_INTENT = "kill9-probe"
# The probe is a second engine on the checklist's account: its own client-id prefix, so neither engine takes
# the other's orders for its own (or for foreign orders under its prefix).
KILL_PREFIX = "gbk"


def kill_plan(venue: object, symbol: str) -> OrderPlan:
    """A small resting buy far under the market: it stays live across the kill and the restart."""
    market = venue.market(symbol)  # type: ignore[attr-defined]
    book = venue.order_book(symbol, 5)  # type: ignore[attr-defined]
    price = (book.bids[0][0] * Decimal("0.8") / market.tick).to_integral_value() * market.tick
    return OrderPlan(symbol, "buy", market.min_qty * 10, "limit", price, False, "probe", True)


def retrying(fn: Callable[..., T], *args: Any) -> T:
    """Start-up reads retried while the venue answers "rate limit" (it shares its windows with the parent)."""
    for _ in range(40):
        try:
            return fn(*args)
        except VenueError as exc:
            if exc.reason is not VenueReason.RATE_LIMIT:
                raise
            time.sleep(0.25)
    return fn(*args)


def main(argv: list[str] | None = None) -> int:
    from crypto.venue.factory import make_venue

    p = argparse.ArgumentParser(prog="crypto.e2e.engine_proc")
    p.add_argument("--url", required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--hold", type=Path, required=True)
    p.add_argument("--symbol", default="BTC/USDT:USDT")
    p.add_argument("--protect", type=Decimal, help="hold a protected position of this size, then wait")
    args = p.parse_args(argv)
    venue = make_venue("okx-fake", args.url, fake_credentials())  # type: ignore[arg-type]
    if args.protect is not None:
        return hold_protected(venue, args.state, args.hold, args.symbol, args.protect)

    def hold(point: str, order: LiveOrder) -> None:
        if point == "after_send":
            atomic_write_bytes(args.hold, order.client_order_id.encode())
            while True:  # the parent sends SIGKILL now: the venue has the order, the journal only its intent
                time.sleep(1)

    engine = CryptoEngine(venue, args.state, ExecConfig(symbols=(args.symbol,), id_prefix=KILL_PREFIX), hook=hold)
    retrying(engine.start)
    engine.place(retrying(kill_plan, venue, args.symbol), intent_id=KILL_INTENT)
    os._exit(3)  # not reached: the hook holds until the kill


def hold_protected(venue: object, state: Path, hold: Path, symbol: str, qty: Decimal) -> int:
    from core.execution.protective import BracketState
    from crypto.trend.strategy import TargetPosition

    engine = CryptoEngine(venue, state, ExecConfig(symbols=(symbol,), protective=True,  # type: ignore[arg-type]
                                                   limit_offset_bps=Decimal("-5"), min_interval_ms=0))
    retrying(engine.start)
    for _ in range(240):
        engine.cycle({symbol: TargetPosition(symbol, qty)})
        bracket = engine.brackets.brackets.get(symbol)
        if bracket is not None and bracket.state is BracketState.ARMED:
            atomic_write_bytes(hold, f"{bracket.sl_client_id} {bracket.tp_client_id}".encode())
            while True:  # the parent sends SIGKILL now
                time.sleep(1)
        time.sleep(0.25)
    return 4  # never protected: the parent's wait sees the exit code


if __name__ == "__main__":
    raise SystemExit(main())
