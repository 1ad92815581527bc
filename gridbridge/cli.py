"""``gridbridge``: one command for both machines (argparse; each subcommand is a thin shell)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One subcommand: its line in ``gridbridge --help`` and the module whose ``register(subparsers)`` adds
    it. The module is imported only when its command runs, so ``--help`` and the light commands never load
    pandas, the executor or the backtest."""

    help: str
    module: str
    owns_argv: bool = False  # the module's ``main(argv)`` parses the command's arguments itself


COMMANDS: dict[str, Command] = {
    "executor": Command("run the Windows executor (vault + broker)", "gridbridge.commands.executor"),
    "producer": Command("publish shared_quote.json (paper: replay bar files; xtquant: the QMT terminal)",
                        "gridbridge.commands.producer"),
    "signal": Command("append one signal to order_signal.json (manual order)", "gridbridge.commands.manual_signal"),
    "status": Command("print pool, frozen/used, open orders and recent results", "gridbridge.commands.status"),
    "schema": Command("file contract tools", "gridbridge.commands.schema"),
    "node": Command("run the Mac strategy node(s)", "gridbridge.commands.node"),
    "dry-run": Command("producer + executor (paper) + both nodes on generated data", "gridbridge.commands.dry_run"),
    "control": Command("write a signed kill-switch command for the executor", "gridbridge.commands.control"),
    "gate": Command("release gate over an audit log: gridbridge gate --audit FILE --from T --to T", "core.gate_cli",
                    owns_argv=True),
    "deploy": Command("store a config bundle as a version and make it active", "gridbridge.commands.release"),
    "rollback": Command("go back to the previous bundle and hold an observation risk state",
                        "gridbridge.commands.release"),
    "backtest": Command("run the grid over bars (reference or realistic mode)", "backtest.cli"),
    "data": Command("market data tools", "backtest.cli"),
    "dashboard": Command("run the Streamlit dashboard (live shared folder or --replay)", "mac.dashboard.launch"),
    "crypto": Command("the crypto engine: fakex, e2e, carry, pm, hedge, status, close-all (gridbridge crypto -h)",
                      "crypto.cli", owns_argv=True),
    "fetch-bars": Command("download QMT history and append new bars to a CSV (time in epoch ms)", "windows.cli_xt"),
}


def command_named(argv: list[str]) -> str | None:
    """The subcommand ``argv`` runs: its first word that is not an option, unless help is asked for first."""
    for word in argv:
        if word in ("-h", "--help"):
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command listed with its help; only ``selected``'s module adds its arguments."""
    parser = argparse.ArgumentParser(prog="gridbridge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = COMMANDS[selected].module if selected in COMMANDS else None
    for name, command in COMMANDS.items():
        if command.module != chosen:
            sub.add_parser(name, help=command.help)
    if chosen is not None:
        importlib.import_module(chosen).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = command_named(argv)
    command = COMMANDS.get(name) if name is not None else None
    if name is not None and command is not None and command.owns_argv:
        # The command owns its arguments (the gate: core.gate_cli); hand them over untouched, --help included.
        return int(importlib.import_module(command.module).main(argv[argv.index(name) + 1 :]) or 0)
    args = build_parser(name).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        from settings.config import ConfigError  # imported late: most commands never load the config

        if not isinstance(exc, ConfigError):
            raise
        print(f"gridbridge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
