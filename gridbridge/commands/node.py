"""``gridbridge node``: the Mac strategy node(s), one grid per symbol."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gridbridge.commands.shell import config_of, stop_on_signals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--symbol", required=True, help="159201.SZ, 512890.SH or all")
    p.add_argument("--config")
    p.add_argument("--watch", choices=["auto", "events", "poll"], default="auto")
    p.add_argument("--max-seconds", type=float, default=None)
    p.set_defaults(func=cmd_node)


def cmd_node(args: argparse.Namespace) -> int:
    from mac.node import StrategyNode, node_settings_from_config
    from settings.resolve import grid_params_by_code

    config = config_of(args)
    codes = list(config.codes) if args.symbol == "all" else [args.symbol]
    unknown = [c for c in codes if c not in config.codes]
    if unknown:
        print(f"gridbridge node: unknown symbol(s) {unknown}; choose from {list(config.codes)} or all", file=sys.stderr)
        return 2
    node = StrategyNode(Path(args.shared_dir), grid_params_by_code(config, codes), node_settings_from_config(config),
                        watch_mode=args.watch, poll_interval=config.node.poll_interval_s)
    stop = stop_on_signals()
    node.start()
    try:
        node.run(max_seconds=args.max_seconds, stop_flag=stop)
    finally:
        node.stop()
    return 0
