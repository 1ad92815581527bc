"""The live node and the backtest make identical decisions on the same bar sequence.

The backtest runs first (its own fill model, its own vault). Then the real ``StrategyNode`` is driven bar
by bar through real files: a quote file with the bars so far, a pool file, and a result file in which each
of the backtest's orders gets the outcome the backtest gave it (filled at the backtest's price, or expired)
on the bar the backtest applied it. Every signal the node writes must be the backtest's signal, in order.
The pool is made too large to bind, so the comparison is about the grid itself (indicators computed
incrementally vs vectorised, anchors, lots, T+1, take-profit, cooling, order outcomes); the pool rules
have their own property tests.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from backtest.engine import run_realistic
from backtest.synth import generate
from mac.grid.core import trading_day
from mac.node import NodeSettings, StrategyNode
from settings.grid import default_params
from shared_schema.atomic_io import atomic_write_model
from shared_schema.clock import ManualClock
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    Bar,
    PoolFile,
    Position,
    Quote,
    QuoteFile,
    Result,
    ResultFile,
    ResultStatus,
)
from shared_schema.types import CST, ms_to_datetime
from windows.vault import GlobalVault, VaultLimits

HUGE = Decimal(10**12)
BASE = 50_000


def signal_key(code, side, price_milli, shares, coid, release, layer):
    return (code, side, price_milli, shares, coid, tuple(release), layer)


@pytest.mark.parametrize("code, seed", [("512890.SH", 7), ("159201.SZ", 7)])
def test_node_and_backtest_decide_the_same(tmp_path: Path, code: str, seed: int):
    bars = generate(code, 10, seed)
    params = default_params(code, base_position_shares=BASE, physical_pool=HUGE)
    vault = GlobalVault(VaultLimits.from_yuan(HUGE, {code: HUGE}, Decimal("0.15")))
    result = run_realistic({code: bars}, {code: params}, vault=vault).symbols[code]
    engine_signals = [signal_key(s.code, s.side, s.price_milli, s.shares, s.client_order_id,
                                 s.release_client_order_ids, s.layer_index) for s in result.signals]
    assert len(engine_signals) > 10  # a run that trades, or the comparison proves little

    # When the backtest resolved each order (the bar index before whose step the outcome was known).
    index_of = {int(t): i for i, t in enumerate(bars.t.tolist())}
    outcome_at: dict[int, list[Result]] = {}
    filled = {t.client_order_id: t for t in result.trades}
    ttl = params.order_ttl_bars
    for s in result.signals:
        placed = index_of[s.t]
        trade = filled.get(s.client_order_id)
        if trade is not None:
            at = index_of[int(trade.t)]
            res = Result(signal_id=s.client_order_id, status=ResultStatus.FILLED, filled_shares=trade.shares,
                         avg_price=trade.price_milli / 1000, updated_at=ms_to_datetime(int(trade.t)))
        else:
            at = placed + ttl + 1
            for j in range(placed + 1, min(placed + ttl + 2, len(bars))):
                if trading_day(int(bars.t[j])) != trading_day(s.t):
                    at = j
                    break
            res = Result(signal_id=s.client_order_id, status=ResultStatus.EXPIRED, updated_at=ms_to_datetime(s.t))
        outcome_at.setdefault(at, []).append(res)

    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=CST))
    node = StrategyNode(tmp_path, {code: params}, NodeSettings(signal_ttl_s=10**9), wall_clock=clock, watch_mode="poll")
    pool_fields = {f"{k}_{s}": Decimal(0) for k in ("used", "frozen", "acc_alpha") for s in ("159201", "512890")}
    atomic_write_model(tmp_path / POOL_FILE, PoolFile(
        seq=1, updated_at=clock.now(), physical_pool=HUGE, reserve_ratio=Decimal("0.15"),
        nominal_cap_159201=HUGE, nominal_cap_512890=HUGE, utilization=0.0, **pool_fields))
    known: dict[str, Result] = {}
    node_signals = []
    for i in range(len(bars)):
        for res in outcome_at.get(i, []):
            known[res.signal_id] = res
        atomic_write_model(tmp_path / RESULT_FILE, ResultFile(seq=i + 1, updated_at=clock.now(), results=known))
        recent = [Bar(t=int(bars.t[j]), o=float(bars.o[j]), h=float(bars.h[j]), l=float(bars.l[j]),
                      c=float(bars.c[j]), v=float(bars.v[j])) for j in range(max(0, i - 5), i + 1)]
        held = sum(lot.shares for lot in node.runtimes[code].grid.lots)
        quote = Quote(code=code, last=recent[-1].c, bid1=recent[-1].c, ask1=recent[-1].c,
                      quote_time=ms_to_datetime(recent[-1].t), prev_close=float(bars.o[0]), bars=recent)
        position = Position(code=code, volume=BASE + held, can_use_volume=10**9, avg_cost=1.0, market_value=0.0)
        atomic_write_model(tmp_path / QUOTE_FILE, QuoteFile(seq=i + 1, updated_at=clock.now(), quotes={code: quote},
                                                            positions={code: position}))
        for sig in node.run_once():
            node_signals.append(signal_key(sig.code, sig.direction.value, int(sig.price * 1000), sig.shares,
                                           sig.client_order_id, sig.release_client_order_ids, sig.layer_index))
        if i and i % 240 == 0:
            assert node_signals == engine_signals[: len(node_signals)], f"diverged by bar {i}"
    assert node_signals == engine_signals
