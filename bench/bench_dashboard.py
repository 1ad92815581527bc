"""Dashboard benchmark: time to first render with one year of history.

Generates a shared folder holding a year of 1-minute history (242 days x 240 bars per node, penalty
episodes included), a year of results (one signal every ~25 minutes), the executor's journal and published
pool history (``pool_history.jsonl``) for them and an audit log, then times

* ``load_live``: parsing and joining everything (cold, then warm: the second run hits the parse cache),
* the first full page render under ``streamlit.testing`` (script run, figures built and serialised).

    python bench/bench_dashboard.py [--days 242] [--out bench_dashboard.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mac.dashboard.live import Memory, load_live  # noqa: E402
from mac.dashboard.sources import Sources  # noqa: E402
from shared_schema.atomic_io import atomic_write_json, atomic_write_model  # noqa: E402
from shared_schema.ledger_math import utilization  # noqa: E402
from shared_schema.models import (  # noqa: E402
    Bar,
    PoolFile,
    Quote,
    QuoteFile,
    Result,
    ResultFile,
    ResultStatus,
)
from shared_schema.pool_history import (  # noqa: E402
    POOL_HISTORY_FILE,
    PoolHistoryPoint,
    PoolHistoryWriter,
    PoolLot,
)
from shared_schema.types import CST, datetime_to_ms  # noqa: E402

START = datetime(2025, 1, 6, tzinfo=CST)


def minutes(days: int) -> list[int]:
    out = []
    day = START
    while len(out) < days * 240:
        if day.weekday() < 5:
            for base, n in ((day.replace(hour=9, minute=30), 120), (day.replace(hour=13), 120)):
                out.extend(datetime_to_ms(base + timedelta(minutes=i)) for i in range(1, n + 1))
        day += timedelta(days=1)
    return out[: days * 240]


def generate(shared: Path, state: Path, days: int, seed: int = 3) -> dict[str, int]:
    rng = random.Random(seed)
    ts = minutes(days)
    now = datetime.now(CST)
    market = datetime.fromtimestamp(ts[-1] / 1000, CST)
    # utilisation: a slow wave with noise that crosses 90 % now and then (penalty episodes)
    util = [min(0.99, max(0.0, 0.6 + 0.3 * math.sin(i / 3000) + rng.gauss(0, 0.01))) for i in range(len(ts))]
    for code, close in (("159201.SZ", 1.3), ("512890.SH", 1.15)):
        on, hist = False, []
        for t, u in zip(ts, util, strict=True):
            on = (u >= 0.85) if on else (u > 0.90)
            hist.append([t, round(u, 6), on])
        atomic_write_json(shared / f"dashboard_state_{code[:6]}.json", {
            "state_version": 1, "code": code, "updated_at": now.isoformat(), "last_bar_t": ts[-1],
            "penalty_on": hist[-1][2], "anchor": close, "lots": [], "pending": [], "mismatch": "",
            "indicators": {"atr": 0.002, "slope": 0.0001, "atr_avg": 0.002, "close": close}, "counters": {},
            "events": [], "history": hist, "outbox": {}})
    bars = {}
    for code, close in (("159201.SZ", 1.3), ("512890.SH", 1.15)):
        out = []
        for i, t in enumerate(ts[-300:]):
            c = round(close + 0.005 * math.sin(i / 20), 3)
            out.append(Bar(t=t, o=c, h=round(c + 0.001, 3), l=round(c - 0.001, 3), c=c))
        bars[code] = Quote(code=code, last=out[-1].c, bid1=out[-1].c, ask1=out[-1].c, quote_time=market,
                           prev_close=close, bars=out)
    atomic_write_model(shared / "shared_quote.json", QuoteFile(seq=1, updated_at=now, quotes=bars))
    # a year of signals: buy, fill, sell with release; journal + results
    results, lines, points = {}, [], []
    alpha = {"159201.SZ": 0, "512890.SH": 0}
    zero = {c: Decimal(0) for c in alpha}

    def point(t: str, used: dict[str, Decimal], lots: dict[str, list[PoolLot]]) -> PoolHistoryPoint:
        committed = sum(used.values(), Decimal(0))
        return PoolHistoryPoint(t=datetime.fromisoformat(t), physical_pool=Decimal(300000), used=used, frozen=zero,
                                acc_alpha={c: Decimal(a) / 100 for c, a in alpha.items()}, committed=committed,
                                utilization=utilization(committed, Decimal(300000)), lots=lots)
    n_signals = 0
    for k in range(0, len(ts) - 30, 50):
        code = "159201.SZ" if (k // 50) % 2 else "512890.SH"
        t_buy = datetime.fromtimestamp(ts[k] / 1000, CST).isoformat()
        t_sell = datetime.fromtimestamp(ts[k + 25] / 1000, CST).isoformat()
        b, s = f"B{k}", f"S{k}"
        price, shares = 1.2, 10000
        buy = {"signal_id": b, "client_order_id": b, "code": code, "direction": "BUY", "price": price,
               "shares": shares, "amount": 12000.0, "layer_index": 1, "release_client_order_ids": [],
               "created_at": t_buy, "expires_at": None, "source": "bench"}
        sell = dict(buy, signal_id=s, client_order_id=s, direction="SELL", price=1.205, amount=12050.0,
                    release_client_order_ids=[b], created_at=t_sell)
        lines += [
            {"k": "signal", "id": b, "h": "h", "sig": buy, "t": t_buy},
            {"k": "alloc", "sym": code, "amt": 1200000, "layer": 1, "coid": b, "shares": shares, "decision": "APPROVED",
             "t": t_buy},
            {"k": "intent", "id": b, "coid": b, "code": code, "side": "BUY", "shares": shares, "price": "1.2",
             "release": [], "t": t_buy},
            {"k": "sent", "coid": b, "status": "SENT", "boid": b, "msg": "", "t": t_buy},
            {"k": "update", "coid": b, "state": "FILLED", "filled": shares, "value": 1200000, "fees": 120, "boid": b,
             "msg": "", "t": t_buy},
            {"k": "signal", "id": s, "h": "h", "sig": sell, "t": t_sell},
            {"k": "intent", "id": s, "coid": s, "code": code, "side": "SELL", "shares": shares, "price": "1.205",
             "release": [b], "t": t_sell},
            {"k": "sent", "coid": s, "status": "SENT", "boid": s, "msg": "", "t": t_sell},
            {"k": "update", "coid": s, "state": "FILLED", "filled": shares, "value": 1205000, "fees": 121, "boid": s,
             "msg": "", "t": t_sell},
        ]
        lot = PoolLot(client_order_id=b, layer_index=1, shares=shares, avg_price=price, status="OPEN")
        points.append(point(t_buy, {**zero, code: Decimal("12001.20")}, {code: [lot]}))
        alpha[code] += 5000 - 120 - 121
        points.append(point(t_sell, zero, {}))
        for sid, side, t in ((b, "BUY", t_buy), (s, "SELL", t_sell)):
            results[sid] = Result(signal_id=sid, client_order_id=sid, code=code, direction=side,
                                  status=ResultStatus.FILLED, requested_shares=shares, filled_shares=shares,
                                  avg_price=1.2, signal_created_at=t, received_at=t, updated_at=t)
        n_signals += 2
    atomic_write_model(shared / "order_result.json", ResultFile(seq=1, updated_at=now, results=results))
    (state / "executor_journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    writer = PoolHistoryWriter(state / POOL_HISTORY_FILE, fsync=False)
    for p in points:
        writer.append(p)
    atomic_write_model(shared / "shared_pool.json", PoolFile(
        seq=1, updated_at=now, physical_pool=Decimal(300000), reserve_ratio=Decimal("0.15"),
        nominal_cap_159201=Decimal(200000), nominal_cap_512890=Decimal(200000), used_159201=Decimal(0),
        used_512890=Decimal(0), frozen_159201=Decimal(0), frozen_512890=Decimal(0),
        acc_alpha_159201=Decimal(alpha["159201.SZ"]) / 100, acc_alpha_512890=Decimal(alpha["512890.SH"]) / 100,
        utilization=0.0, market_time=market))
    return {"history_points_per_node": len(ts), "signals": n_signals, "journal_records": len(lines),
            "pool_history_points": len(points)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=242)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="gridbridge-bench-dash-"))
    shared, state = root / "shared", root / "shared_executor_state"
    shared.mkdir()
    state.mkdir()
    t0 = time.perf_counter()
    sizes = generate(shared, state, args.days)
    gen_s = time.perf_counter() - t0

    sources = Sources.resolve(shared)
    t0 = time.perf_counter()
    load_live(sources, datetime.now(CST), Memory())
    load_cold = time.perf_counter() - t0

    from streamlit.testing.v1 import AppTest

    os.environ.update({"GRIDBRIDGE_DASHBOARD_SHARED_DIR": str(shared), "GRIDBRIDGE_DASHBOARD_REFRESH_S": "0"})
    at = AppTest.from_file(str(ROOT / "mac" / "dashboard" / "app.py"), default_timeout=120)
    t0 = time.perf_counter()
    at.run()
    first_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    at.run()
    warm_render = time.perf_counter() - t0
    ok = not at.exception
    result = {
        "days": args.days, **sizes, "generate_s": round(gen_s, 3), "load_live_cold_s": round(load_cold, 3),
        "first_render_s": round(first_render, 3), "warm_rerender_s": round(warm_render, 3), "render_ok": ok,
        "files_bytes": {p.name: p.stat().st_size for p in [*shared.iterdir(), *state.iterdir()] if p.is_file()},
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
