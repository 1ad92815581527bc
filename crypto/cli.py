"""``gridbridge crypto ...``: one table of subcommands, each a module with ``main(argv) -> int``.

Modules load only when their subcommand runs, so ``gridbridge crypto --help`` stays light.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Sub:
    help: str
    module: str


SUBCOMMANDS: dict[str, Sub] = {
    "fakex": Sub("the local exchange: fakex serve --port N --seed S --scenario calm|trend|crash|squeeze",
                 "crypto.fakex.cli"),
    "e2e": Sub("the exchange checklist against the fake: e2e --venue okx-fake [--report DIR]", "crypto.e2e.cli"),
    "status": Sub("positions, orders, risk state and last reconciliation of the crypto loop", "crypto.e2e.status_cli"),
    "close-all": Sub("economic full close of every position (dust aside)", "crypto.e2e.close_all_cli"),
    "control": Sub("kill-switch doors (same commands as the ETF side)", "crypto.e2e.control_cli"),
    "carry": Sub("funding-rate cash-and-carry: bootstrap, dry-run, run, close-all, status, backtest",
                 "crypto.carry.cli"),
    "data": Sub("crypto data tools: synth-funding", "crypto.carry.data_cli"),
    "pm": Sub("position manager: serve, replay", "crypto.pm.cli"),
    "hedge": Sub("incremental hedge: run, simulate", "crypto.hedge.cli"),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: gridbridge crypto SUBCOMMAND [args]", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {sub.help}" for name, sub in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    sub = SUBCOMMANDS.get(argv[0])
    if sub is None:
        print(f"gridbridge crypto: unknown subcommand {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return int(importlib.import_module(sub.module).main(argv[1:]) or 0)
