"""The engine against the local exchange through real ccxt: protective orders as OKX algo stops, cancelled
with the position; a lost response adopted by client id."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.audit import read_log_events
from core.events import AuditCode
from core.execution.protective import BracketState
from core.oms.reasons import VenueReason
from crypto.e2e.checklist import fake_venue
from crypto.e2e.runtime import MsClock
from crypto.execution.config import ExecConfig
from crypto.execution.engine import AUDIT_FILE, CryptoEngine
from crypto.trend.strategy import TargetPosition
from crypto.venue.types import VenueError

BTC = "BTC/USDT:USDT"


@pytest.fixture()
def fx():
    from crypto.fakex.server import FakeExchange

    handle = FakeExchange.start(seed=7, scenario="calm", balances={"trading": {"USDT": Decimal(100_000)}})
    yield handle
    handle.stop()


def calm(fn: Any, *args: Any) -> Any:
    """A direct read, retried while the local exchange answers "rate limit" (its windows are 2 s of wall time)."""
    for _ in range(80):
        try:
            return fn(*args)
        except VenueError as exc:
            if exc.reason is not VenueReason.RATE_LIMIT:
                raise
            time.sleep(0.25)
    return fn(*args)


def engine_on(fx, state: Path, **cfg: object) -> CryptoEngine:
    base: dict[str, object] = {"limit_offset_bps": Decimal("-5"), "min_interval_ms": 0}
    base.update(cfg)
    return CryptoEngine(fake_venue(fx.url), state, ExecConfig(**base), clock=MsClock(fx.now_ms))


def test_bracket_on_the_venue_and_gone_with_the_position(fx, tmp_path: Path) -> None:
    eng = engine_on(fx, tmp_path, protective=True)
    eng.start()
    eng.cycle({BTC: TargetPosition(BTC, Decimal("0.2"))})
    assert eng.brackets.brackets[BTC].state is BracketState.ARMED
    live = {o.type: o for o in eng.venue.open_orders(BTC)}
    assert set(live) == {"stop_market", "limit"} and all(o.reduce_only for o in live.values())
    assert live["stop_market"].trigger_price is not None and live["stop_market"].trigger_price < eng.marks[BTC]
    eng.cycle({BTC: TargetPosition(BTC, Decimal("0"))})
    fx.advance(1_000)
    eng.cycle()
    assert eng.book.position(BTC) == 0 and eng.venue.open_orders(BTC) == []
    codes = [e.code for e in read_log_events(tmp_path / AUDIT_FILE)]
    assert codes.count(AuditCode.EXEC_PROTECTIVE_ATTACHED) == 2
    eng.close()


def test_lost_response_is_adopted_by_client_id(fx, tmp_path: Path) -> None:
    eng = engine_on(fx, tmp_path)
    eng.start()
    fx.inject("lose_response", path="/api/v5/trade/order", method="POST", count=1)
    eng.cycle({BTC: TargetPosition(BTC, Decimal("0.05"))})
    (coid,) = eng.book.orders
    assert sum(1 for o in fx.exchange.orders() if o.cl_ord_id == coid) == 1
    assert eng.book.position(BTC) == Decimal("0.05") and eng.stats.unknown == 1
    assert eng.reconcile().clean
    eng.close()


def test_ledger_ties_to_the_venue_fills_and_funding_bills_through_ccxt(fx, tmp_path: Path) -> None:
    eng = engine_on(fx, tmp_path)
    eng.start()
    eng.cycle({BTC: TargetPosition(BTC, Decimal("0.05"))})
    fx.advance(8 * 3600 * 1000 + 60_000)  # past a funding settlement (OKX: 00/08/16 UTC)
    eng.cycle({BTC: TargetPosition(BTC, Decimal("0.02"))})
    fx.advance(120_000)
    calm(eng.reconcile)
    calm(eng.sync_ledger, True, True)  # the reconciliation's reads may have met the venue's rate limit
    led = eng.book.ledger.position(BTC)
    fills = calm(eng.venue.fills, BTC)
    bills = calm(eng.venue.funding_payments, BTC)
    (pos,) = calm(eng.venue.positions, [BTC])
    assert led.qty == pos.qty == sum((f.qty if f.side == "buy" else -f.qty for f in fills), Decimal(0))
    assert led.fees == sum((f.fee for f in fills), Decimal(0))
    assert bills and led.funding == sum((b.amount for b in bills), Decimal(0))
    assert abs(led.entry - pos.entry_price) <= Decimal("0.1")  # the venue states its average to the tick
    eng.close()


@pytest.mark.slow
def test_kill_9_with_a_protected_position_then_restart_adopts_the_same_stop(fx, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    hold = tmp_path / "held.txt"
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "crypto.e2e.engine_proc", "--url", fx.url, "--state", str(state),
                             "--hold", str(hold), "--protect", "0.05"], env=env)
    try:
        for _ in range(600):  # progress, not a deadline: the child writes the ids once its bracket is ARMED
            if hold.exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert hold.exists(), f"engine exited {proc.poll()} without a protected position"
        sl_id, tp_id = hold.read_text().split()
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    algos = [a for a in fx.exchange.algos() if a.algo_cl_ord_id]
    assert [a.algo_cl_ord_id for a in algos] == [sl_id]  # one stop, live at the venue through the kill
    eng = CryptoEngine(fake_venue(fx.url), state, ExecConfig(symbols=(BTC,), protective=True,
                                                             limit_offset_bps=Decimal("-5"), min_interval_ms=0))
    calm(eng.start)
    b = eng.brackets.brackets[BTC]
    assert b.state is BracketState.ARMED and (b.sl_client_id, b.tp_client_id) == (sl_id, tp_id)
    calm(eng.cycle, {BTC: TargetPosition(BTC, Decimal("0.05"))})
    algos = [a for a in fx.exchange.algos() if a.algo_cl_ord_id]
    assert [a.algo_cl_ord_id for a in algos] == [sl_id]  # never cancelled, never re-placed
    assert calm(eng.venue.fetch_order, BTC, sl_id).status == "open"
    codes = [e.code for e in read_log_events(state / AUDIT_FILE)]
    assert AuditCode.EXEC_PROTECTIVE_ORDER_MISSING not in codes
    eng.close()
