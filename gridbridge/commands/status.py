"""``gridbridge status``: the pool, frozen/used, open orders and recent results, read from the shared folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--last", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from shared_schema.atomic_io import ModelFileReader
    from shared_schema.clock import SystemClock
    from shared_schema.lease import lease_view
    from shared_schema.models import POOL_FILE, RESULT_FILE, PoolFile, ResultFile

    shared = Path(args.shared_dir)
    pool = ModelFileReader(shared / POOL_FILE, PoolFile).read()
    results = ModelFileReader(shared / RESULT_FILE, ResultFile).read()
    status: dict[str, Any] = {"pool": None, "results": None}
    owner = lease_view(shared, SystemClock().now())
    status["executor"] = {"state": owner.state, "owner": owner.owner, "text": owner.text,
                          "heartbeat_age_s": owner.heartbeat_age_s, "disabled_doors": list(owner.disabled_doors)}
    if pool.model is not None:
        p = pool.model
        status["pool"] = {
            "physical_pool": float(p.physical_pool),
            "utilization": p.utilization,
            "used": {"159201.SZ": float(p.used_159201), "512890.SH": float(p.used_512890)},
            "frozen": {"159201.SZ": float(p.frozen_159201), "512890.SH": float(p.frozen_512890)},
            "acc_alpha": {"159201.SZ": float(p.acc_alpha_159201), "512890.SH": float(p.acc_alpha_512890)},
            "risk_state": p.risk_state,
            "halted": p.halted,
            "seq": p.seq,
        }
    else:
        status["pool_problem"] = pool.error or "missing"
    if results.model is not None:
        r = results.model
        last = sorted(r.results.values(), key=lambda x: (x.updated_at is None, x.updated_at))[-args.last :]
        status["open_orders"] = r.open_orders
        status["open"] = [
            {"signal_id": x.signal_id, "client_order_id": x.client_order_id, "code": x.code,
             "direction": x.direction.value if x.direction else None, "status": x.status.value,
             "requested": x.requested_shares, "filled": x.filled_shares, "broker_order_id": x.broker_order_id}
            for x in r.results.values() if not x.status.is_final
        ]
        status["results"] = [
            {"signal_id": x.signal_id, "code": x.code, "direction": x.direction.value if x.direction else None, "status": x.status.value,
             "reason": x.reason.value if x.reason else None, "filled": x.filled_shares, "message": x.message}
            for x in last
        ]
        status["alerts"] = r.alerts[-5:]
    else:
        status["results_problem"] = results.error or "missing"
    if args.json:
        print(json.dumps(status, default=str, indent=1))
    else:
        _print_status(status)
    return 0


def _print_status(status: dict[str, Any]) -> None:
    executor = status.get("executor") or {}
    print(f"{executor.get('text', '')}")
    for door in executor.get("disabled_doors", []):
        print(f"  control door OFF: {door}")
    pool = status.get("pool")
    if pool:
        print(f"pool {pool['physical_pool']:,.2f}  utilisation {pool['utilization']:.2%}  "
              f"risk {pool['risk_state']}{'  HALTED' if pool['halted'] else ''}")
        for code in ("159201.SZ", "512890.SH"):
            print(f"  {code}: used {pool['used'][code]:>12,.2f}  frozen {pool['frozen'][code]:>12,.2f}  "
                  f"alpha {pool['acc_alpha'][code]:>10,.2f}")
    else:
        print(f"pool: {status.get('pool_problem')}")
    if status.get("results") is not None:
        print(f"open orders: {status['open_orders']}")
        for o in status["open"]:
            print(f"  {o['client_order_id']:<20} {o['code']:<10} {str(o['direction'] or ''):<4} {o['status']:<9} "
                  f"filled {o['filled']}/{o['requested']}  broker id {o['broker_order_id'] or '-'}")
        print("last results:")
        for r in status["results"]:
            print(f"  {r['signal_id']:<20} {r['code']:<10} {str(r['direction'] or ''):<4} {r['status']:<9} "
                  f"{r['reason'] or '':<22} filled {r['filled']}")
        for alert in status.get("alerts", []):
            print(f"  alert: {alert}")
    else:
        print(f"results: {status.get('results_problem')}")
