"""A dry-run-like folder built from the contract's models (no market data copied): every file the page reads.

``build_run(root)`` writes ``root/shared`` (quote, pool, signal and result files, both node states, an audit
log, a control acknowledgement), ``root/shared_executor_state/executor_journal.jsonl`` with the
``pool_history.jsonl`` the executor published for it, and ``root/bars``. The
numbers are chosen so each section has something to say: 159201's penalty is ON (utilisation went above 90 %
and sits in the 85-90 % band), 512890's went on and off again, the results hold fills, rejections with
reasons, an expiry and an input rejection.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.audit import AuditWriter
from core.events import AuditCode, AuditEvent, Severity
from mac.grid.core import OPEN, initial_state
from mac.grid.indicators import IndicatorState
from mac.state_codec import encode
from settings.grid import default_params
from shared_schema.atomic_io import atomic_write_json, atomic_write_model
from shared_schema.ledger_math import utilization
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    Account,
    Allocation,
    AllocationState,
    Bar,
    InputRejection,
    PoolFile,
    Position,
    Quote,
    QuoteFile,
    Reason,
    Result,
    ResultFile,
    ResultStatus,
    Signal,
    SignalFile,
)
from shared_schema.pool_history import POOL_HISTORY_FILE, PoolHistoryPoint, PoolHistoryWriter, PoolLot
from shared_schema.types import CST, datetime_to_ms

DAY = datetime(2026, 1, 6, tzinfo=CST)  # a Tuesday
MARKET_NOW = DAY.replace(hour=14, minute=30)
BASE = {"159201.SZ": 1.300, "512890.SH": 1.150}
USED = {"159201.SZ": Decimal("123456.78"), "512890.SH": Decimal("140000.10")}
FROZEN = {"159201.SZ": Decimal("1500.00"), "512890.SH": Decimal("0")}
ALPHA = {"159201.SZ": Decimal("812.34"), "512890.SH": Decimal("455.67")}
POOL = Decimal("300000")
UTILIZATION = float((sum(USED.values()) + sum(FROZEN.values())) / POOL)  # 0.88319..., inside the band
ANCHOR = {"159201.SZ": 1.296, "512890.SH": 1.147}
INDICATORS = {
    "159201.SZ": {"atr": 0.0021, "slope": 0.00031, "atr_avg": 0.0019, "close": 1.297},
    "512890.SH": {"atr": 0.0030, "slope": -0.0002, "atr_avg": 0.0012, "close": 1.146},  # breaker: 0.003 > 2*0.0012
}


def session_minutes(day: datetime) -> list[datetime]:
    start = day.replace(hour=9, minute=30)
    noon = day.replace(hour=13, minute=0)
    return [start + timedelta(minutes=i) for i in range(1, 121)] + [noon + timedelta(minutes=i) for i in range(1, 121)]


def make_bars(code: str, minutes: list[datetime]) -> list[Bar]:
    out = []
    base = BASE[code]
    for i, m in enumerate(minutes):
        c = round(base + 0.006 * math.sin(i / 17.0) + (0.001 if code == "512890.SH" else 0) * math.cos(i / 5), 3)
        o = round(c - 0.001 * ((i % 3) - 1), 3)
        out.append(Bar(t=datetime_to_ms(m), o=o, h=round(max(o, c) + 0.001, 3), l=round(min(o, c) - 0.001, 3), c=c,
                       v=1000.0 + i))
    return out


def quote_file(when: datetime, minutes: list[datetime]) -> QuoteFile:
    quotes = {}
    for code in BASE:
        bars = make_bars(code, minutes)[-300:]
        last = bars[-1].c
        quotes[code] = Quote(code=code, last=last, bid1=round(last - 0.001, 3), ask1=last, volume=1e6,
                             quote_time=MARKET_NOW, prev_close=BASE[code], bars=bars)
    positions = {c: Position(code=c, volume=200000, can_use_volume=150000, avg_cost=1.2, market_value=240000.0)
                 for c in BASE}
    return QuoteFile(seq=42, updated_at=when, quotes=quotes, positions=positions,
                     account=Account(cash=Decimal("800000"), total_asset=Decimal("1280000")))


def pool_file(when: datetime, **overrides: Any) -> PoolFile:
    allocs = {
        "159201.SZ": [
            Allocation(client_order_id="G9201BA0", amount=Decimal("61728.39"), frozen=Decimal(0),
                       used=Decimal("61728.39"), state=AllocationState.USED, layer_index=0, filled_shares=47500),
            Allocation(client_order_id="G9201BA1", amount=Decimal("61728.39"), frozen=Decimal(0),
                       used=Decimal("61728.39"), state=AllocationState.USED, layer_index=1, filled_shares=47600),
            Allocation(client_order_id="G9201BA2", amount=Decimal("1500.00"), frozen=Decimal("1500.00"),
                       used=Decimal(0), state=AllocationState.FROZEN, layer_index=2),
        ],
        "512890.SH": [
            Allocation(client_order_id="G2890BA0", amount=Decimal("140000.10"), frozen=Decimal(0),
                       used=Decimal("140000.10"), state=AllocationState.USED, layer_index=0, filled_shares=121700),
        ],
    }
    values: dict[str, Any] = dict(
        seq=17, updated_at=when, physical_pool=POOL, reserve_ratio=Decimal("0.15"),
        nominal_cap_159201=Decimal(200000), nominal_cap_512890=Decimal(200000),
        used_159201=USED["159201.SZ"], used_512890=USED["512890.SH"],
        frozen_159201=FROZEN["159201.SZ"], frozen_512890=FROZEN["512890.SH"],
        acc_alpha_159201=ALPHA["159201.SZ"], acc_alpha_512890=ALPHA["512890.SH"],
        utilization=UTILIZATION, allocations_159201=allocs["159201.SZ"], allocations_512890=allocs["512890.SH"],
        risk_state="DEGRADED", halted=False, market_time=MARKET_NOW,
    )
    values.update(overrides)
    return PoolFile(**values)


def signal_file(when: datetime) -> SignalFile:
    pending = Signal(signal_id="G2890BPEND1", code="512890.SH", direction="BUY", price=Decimal("1.142"), shares=1000,
                     layer_index=1, created_at=MARKET_NOW, expires_at=MARKET_NOW + timedelta(minutes=5),
                     source="node:GRID_BUY")
    return SignalFile(seq=9, updated_at=when, signals=[pending])


def result_file(when: datetime) -> ResultFile:
    t0 = DAY.replace(hour=10)

    def res(sid: str, code: str, side: str, status: ResultStatus, minute: int, reason: Reason | None = None,
            detail: str = "", filled: int = 0, avg: float = 0.0) -> Result:
        t = t0 + timedelta(minutes=minute)
        return Result(signal_id=sid, client_order_id=sid, code=code, direction=side, status=status, reason=reason,
                      detail=detail, requested_shares=max(filled, 1000), filled_shares=filled, avg_price=avg,
                      signal_created_at=t, received_at=t, updated_at=t + timedelta(seconds=20))

    results = [
        res("G9201BA0", "159201.SZ", "BUY", ResultStatus.FILLED, 1, filled=47500, avg=1.2996),
        res("G9201BA1", "159201.SZ", "BUY", ResultStatus.FILLED, 20, filled=47600, avg=1.2968),
        res("G9201BA2", "159201.SZ", "BUY", ResultStatus.SENT, 260),
        res("G2890BA0", "512890.SH", "BUY", ResultStatus.FILLED, 5, filled=121700, avg=1.1504),
        res("G2890BRJ1", "512890.SH", "BUY", ResultStatus.REJECTED, 30, Reason.POOL_RESERVE_15),
        res("G2890BRJ2", "512890.SH", "BUY", ResultStatus.REJECTED, 31, Reason.INVALID_SIGNAL, "LOT_SIZE"),
        res("G9201SEX1", "159201.SZ", "SELL", ResultStatus.EXPIRED, 40, Reason.ORDER_EXPIRED, "SIGNAL_EXPIRED"),
        res("G9201SNT1", "159201.SZ", "SELL", ResultStatus.REJECTED, 41, Reason.NOT_SELLABLE_T1, "ABOVE_CAN_USE_VOLUME"),
    ]
    rejection = InputRejection(key="G2890BDUP", signal_id="G2890BDUP", reason=Reason.DUPLICATE_ID_CONFLICT,
                               detail="SIGNAL_ID_REUSED", at=t0 + timedelta(minutes=50))
    return ResultFile(seq=33, updated_at=when, results={r.signal_id: r for r in results},
                      input_rejections=[rejection], open_orders=1, alerts=[])


def history(code: str, minutes: list[datetime]) -> list[list[Any]]:
    """Utilisation per bar. 159201: above 90 % at bar 100, then down into the band (stays ON).
    512890: above 90 % at bar 60, below 85 % at bar 90 (ON then OFF), then into the band (stays OFF)."""
    out = []
    on = False
    for i, m in enumerate(minutes):
        if code == "159201.SZ":
            u = 0.5 + 0.0045 * i if i < 100 else (0.93 if i < 130 else UTILIZATION)
        else:
            u = 0.6 if i < 60 else (0.92 if i < 90 else (0.80 if i < 150 else UTILIZATION))
        if u > 0.90:
            on = True
        elif u < 0.85:
            on = False
        out.append([datetime_to_ms(m), round(u, 6), on])
    return out


def node_state(code: str, when: datetime, minutes: list[datetime], mismatch: str = "") -> dict[str, Any]:
    params = default_params(code)
    hist = history(code, minutes)
    lots = []
    if code == "159201.SZ":
        lots = [
            {"client_order_id": "G9201BA0", "shares": 47500, "cost": "61728.39", "buy_price": 1.2996, "status": OPEN,
             "layer_index": 0, "take_profit_price": 1.3087},
            {"client_order_id": "G9201BA1", "shares": 47600, "cost": "61728.39", "buy_price": 1.2968, "status": OPEN,
             "layer_index": 1, "take_profit_price": 1.3059},
            {"client_order_id": "G9201BA2", "shares": 0, "cost": "0", "buy_price": 1.296, "status": "PENDING_BUY",
             "layer_index": 2, "take_profit_price": 1.3051},
        ]
    else:
        lots = [{"client_order_id": "G2890BA0", "shares": 121700, "cost": "140000.10", "buy_price": 1.1504,
                 "status": OPEN, "layer_index": 0, "take_profit_price": 1.155}]
    grid = replace(initial_state(params), anchor=ANCHOR[code], penalty_on=hist[-1][2], last_flat_index=100,
                   indicators=IndicatorState(usable=400, gains=(0.001,) * 14, losses=(0.0005,) * 14))
    return {
        "state_version": 1, "code": code, "updated_at": when.isoformat(), "last_bar_t": hist[-1][0],
        "penalty_on": hist[-1][2], "anchor": ANCHOR[code], "lots": lots, "pending": ["G9201BA2"] if lots else [],
        "mismatch": mismatch, "indicators": INDICATORS[code],
        "counters": {"signal_BUY": 3, "event_PENALTY_ON": 1},
        "events": [{"t": MARKET_NOW.isoformat(), "kind": "PENALTY_ON", "detail": "0.9300"},
                   {"t": MARKET_NOW.isoformat(), "kind": "BREAKER_PAUSE", "detail": ""}],
        "history": hist, "outbox": {}, "grid": encode(grid),
    }


def journal_records() -> list[dict[str, Any]]:
    """An executor journal: a 159201 buy that fills, then a sell that releases it at a profit."""
    t1, t2 = DAY.replace(hour=10, minute=1).isoformat(), DAY.replace(hour=13, minute=40).isoformat()
    buy = {"signal_id": "JB1", "client_order_id": "JB1", "code": "159201.SZ", "direction": "BUY", "price": 1.3,
           "shares": 10000, "amount": 13000.0, "layer_index": 0, "release_client_order_ids": [],
           "created_at": t1, "expires_at": None, "source": "node:GRID_BUY"}
    sell = {"signal_id": "JS1", "client_order_id": "JS1", "code": "159201.SZ", "direction": "SELL", "price": 1.31,
            "shares": 10000, "amount": 13100.0, "layer_index": 0, "release_client_order_ids": ["JB1"],
            "created_at": t2, "expires_at": None, "source": "node:TAKE_PROFIT"}
    return [
        {"k": "signal", "id": "JB1", "h": "x", "sig": buy, "t": t1},
        {"k": "alloc", "sym": "159201.SZ", "amt": 1300000, "layer": 0, "coid": "JB1", "shares": 10000,
         "decision": "APPROVED", "t": t1},
        {"k": "intent", "id": "JB1", "coid": "JB1", "code": "159201.SZ", "side": "BUY", "shares": 10000, "price": "1.3",
         "release": [], "t": t1},
        {"k": "sent", "coid": "JB1", "status": "SENT", "boid": "P1", "msg": "", "t": t1},
        {"k": "update", "coid": "JB1", "state": "ACK", "filled": 0, "value": 0, "fees": 0, "boid": "P1", "msg": "", "t": t1},
        {"k": "update", "coid": "JB1", "state": "FILLED", "filled": 10000, "value": 1300000, "fees": 130, "boid": "P1",
         "msg": "", "t": t1},
        {"k": "signal", "id": "JS1", "h": "y", "sig": sell, "t": t2},
        {"k": "intent", "id": "JS1", "coid": "JS1", "code": "159201.SZ", "side": "SELL", "shares": 10000,
         "price": "1.31", "release": ["JB1"], "t": t2},
        {"k": "sent", "coid": "JS1", "status": "SENT", "boid": "P2", "msg": "", "t": t2},
        {"k": "update", "coid": "JS1", "state": "ACK", "filled": 0, "value": 0, "fees": 0, "boid": "P2", "msg": "", "t": t2},
        {"k": "update", "coid": "JS1", "state": "FILLED", "filled": 10000, "value": 1310000, "fees": 131, "boid": "P2",
         "msg": "", "t": t2},
    ]


JOURNAL_ALPHA_159201 = Decimal("13100.00") - Decimal("13000.00") - Decimal("1.30") - Decimal("1.31")


def pool_history_points() -> list[PoolHistoryPoint]:
    """The pool the executor published for ``journal_records``: the buy granted (frozen), filled a turn later
    (used = 13,000 + 1.30 commission), then released by the sell with its alpha."""
    zero = {c: Decimal(0) for c in BASE}

    def point(t: datetime, used: str, frozen: str, alpha: str, lot_status: str | None) -> PoolHistoryPoint:
        u, f = {**zero, "159201.SZ": Decimal(used)}, {**zero, "159201.SZ": Decimal(frozen)}
        committed = sum(u.values(), Decimal(0)) + sum(f.values(), Decimal(0))
        lots = [] if lot_status is None else [PoolLot(client_order_id="JB1", layer_index=0, shares=10000,
                                                      avg_price=1.3, status=lot_status)]
        return PoolHistoryPoint(t=t, physical_pool=POOL, used=u, frozen=f,
                                acc_alpha={**zero, "159201.SZ": Decimal(alpha)}, committed=committed,
                                utilization=utilization(committed, POOL), lots={"159201.SZ": lots, "512890.SH": []})

    return [
        point(DAY.replace(hour=10, minute=1), "0", "13000.00", "0", "PENDING_BUY"),
        point(DAY.replace(hour=10, minute=2), "13001.30", "0", "0", "OPEN"),
        point(DAY.replace(hour=13, minute=40), "0", "0", str(JOURNAL_ALPHA_159201), None),
    ]


def build_run(root: Path, now: datetime | None = None, journal: bool = True, audit: bool = True,
              mismatch: str = "") -> Path:
    """Write the whole folder; returns the shared dir. ``now`` is the files' wall-clock ``updated_at``."""
    now = now or datetime.now(CST)
    shared = root / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    minutes = session_minutes(DAY)
    minutes = [m for m in minutes if m <= MARKET_NOW]
    atomic_write_model(shared / QUOTE_FILE, quote_file(now, minutes))
    atomic_write_model(shared / POOL_FILE, pool_file(now))
    atomic_write_model(shared / SIGNAL_FILE, signal_file(now))
    atomic_write_model(shared / RESULT_FILE, result_file(now))
    for code in BASE:
        atomic_write_json(shared / f"dashboard_state_{code[:6]}.json",
                          node_state(code, now, minutes, mismatch if code == "512890.SH" else ""))
    if audit:
        writer = AuditWriter(shared / "audit.jsonl", fsync=False)
        writer.append(AuditEvent(MARKET_NOW - timedelta(hours=2), AuditCode.RISK_STATE_CHANGE, Severity.WARN,
                                 "drawdown >= 8%", data={"from": "NORMAL", "to": "DEGRADED"}))
        writer.append(AuditEvent(MARKET_NOW - timedelta(hours=1), AuditCode.EQUITY_SNAPSHOT, Severity.INFO,
                                 "periodic", data={"equity": "460000", "peak_equity": "500000"}))
        writer.close() if hasattr(writer, "close") else None
    ack = shared / "control_ack"
    ack.mkdir(exist_ok=True)
    (ack / "20260106T100000-old.json").write_text(json.dumps(
        {"command_id": "20260106T100000-old", "accepted": False, "reason": "CONTROL_EXPIRED", "ts": now.isoformat()}))
    if journal:
        state = root / "shared_executor_state"
        state.mkdir(exist_ok=True)
        (state / "executor_journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in journal_records()))
        writer = PoolHistoryWriter(state / POOL_HISTORY_FILE, fsync=False)
        for p in pool_history_points():
            writer.append(p)
    bars = root / "bars"
    bars.mkdir(exist_ok=True)
    for code in BASE:
        rows = ["time,open,high,low,close,volume"] + [f"{b.t},{b.o},{b.h},{b.l},{b.c},{b.v}" for b in make_bars(code, minutes)]
        (bars / f"{code[:6]}.csv").write_text("\n".join(rows) + "\n")
    return shared


def build_backtest(folder: Path) -> Path:
    """A backtest output folder: trades.csv + metrics.json (a buy and a take-profit sell per symbol)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = [datetime_to_ms(DAY.replace(hour=10, minute=m)) for m in (1, 5, 40, 50)]
    rows = ["time,code,side,price,shares,reason",
            f"{t[0]},159201.SZ,BUY,1.300,10000,GRID_BUY",
            f"{t[1]},512890.SH,BUY,1.150,20000,GRID_BUY",
            f"{datetime_to_ms((DAY + timedelta(days=1)).replace(hour=10, minute=40))},159201.SZ,SELL,1.310,10000,TAKE_PROFIT",
            f"{datetime_to_ms((DAY + timedelta(days=1)).replace(hour=10, minute=50))},512890.SH,SELL,1.160,20000,TAKE_PROFIT"]
    (folder / "trades.csv").write_text("\n".join(rows) + "\n")
    metrics = {"mode": "realistic", "total": {"trades": 4, "alpha": 297.0, "realised_alpha": "297.0",
                                              "max_drawdown": 120.0, "max_drawdown_pct": 0.0004},
               "symbols": {}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder
