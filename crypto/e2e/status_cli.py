"""``gridbridge crypto status --state DIR [--json]``: what the running (or last) crypto loop published.

Reads ``status.json``, which the engine alone writes, atomically, every cycle: risk state, halt, positions
(journal and venue), the ledger (average entry, realised and unrealised PnL, fees, funding: exact decimal
strings from the venue's fills and bills), working orders, leverage, dust-locked symbols and the last
reconciliation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crypto.e2e.runtime import STATE_HELP
from crypto.execution.engine import STATUS_FILE

MAX_STATUS_BYTES = 16 * 1024 * 1024  # the engine's status is a few kB; anything this big is not it


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbridge crypto status", description=__doc__.splitlines()[0])
    p.add_argument("--state", type=Path, required=True, help=STATE_HELP)
    p.add_argument("--json", action="store_true", help="print the published JSON as is")
    args = p.parse_args(argv)
    path = args.state / STATUS_FILE
    try:
        if path.stat().st_size > MAX_STATUS_BYTES:
            print(f"gridbridge crypto status: {path} is over {MAX_STATUS_BYTES} bytes: not the engine's status",
                  file=sys.stderr)
            return 2
        status = json.loads(path.read_bytes())
        if not isinstance(status, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        print(f"gridbridge crypto status: no {STATUS_FILE} in {args.state} (the engine has not run there)",
              file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"gridbridge crypto status: {path} unreadable: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    rec = status.get("last_reconcile") or {}
    lines = [
        f"as of      {status.get('ts')}  venue {status.get('venue')}  cycles {status.get('cycles')}",
        f"risk       {status.get('risk_state')}" + ("  HALTED" if status.get("halted") else "")
        + ("  event window" if status.get("event_window") else "")
        + ("  rate-limit downgrade" if status.get("downgraded") else ""),
        f"equity     {status.get('equity')}",
        f"reconcile  {'clean' if rec.get('clean') else 'NOT clean'} ({rec.get('severity')}), "
        f"orphans {len(rec.get('orphans') or [])}, duplicates {len(rec.get('duplicates') or [])}",
        "positions  " + (", ".join(f"{s} {q} (venue {status.get('venue_positions', {}).get(s, '0')})"
                                   for s, q in (status.get("positions") or {}).items()) or "none"),
        "ledger     " + ("; ".join(
            f"{s} {p.get('qty')} @ {p.get('avg_entry')} realised {p.get('realised_pnl')} unrealised "
            f"{p.get('unrealised_pnl')} fees {p.get('fees')} funding {p.get('funding')}"
            for s, p in (status.get("ledger") or {}).items() if isinstance(p, dict)) or "none")
        + (f"  (NOT tied to the venue: {', '.join(status['ledger_untied'])})"
           if isinstance(status.get("ledger_untied"), list) and status["ledger_untied"] else ""),
        "leverage   " + (", ".join(f"{s} {v}x" for s, v in (status.get("leverage") or {}).items()) or "n/a"),
        "dust       " + (", ".join(status.get("dust_locked") or []) or "none"),
        f"orders     {len(status.get('orders') or [])} working",
    ]
    lines += [f"  {o['client_order_id']} {o['symbol']} {o['side']} {o['qty']} @ {o['price']} {o['state']} "
              f"filled {o['filled']} ({o['purpose']})" for o in status.get("orders") or []]
    print("\n".join(lines))
    return 0
