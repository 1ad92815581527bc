"""``gridbridge executor``: the Windows executor (vault + broker) with its control doors."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gridbridge.commands.shell import config_of, stop_on_signals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("executor")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--broker", choices=["paper", "xtquant"], default="paper")
    p.add_argument("--config")
    p.add_argument("--state-dir")
    p.add_argument("--watch", choices=["auto", "events", "poll"], default="auto")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--take-over", action="store_true",
                   help="replace a STALE lease of another executor on this shared folder (audited)")
    p.set_defaults(func=cmd_executor)


EXIT_JOURNAL_DAMAGED = 5  # the write-ahead journal cannot be replayed: repair it, nothing was sent


def cmd_executor(args: argparse.Namespace) -> int:
    from core.journal import JournalCorrupt
    from windows.brokers.factory import make_broker
    from windows.executor import AlreadyRunning, Executor, default_state_dir
    from windows.lease import EXIT_LEASE_HELD, LeaseLost, LeaseRefused

    config = config_of(args)
    shared = Path(args.shared_dir)
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir(shared)
    broker = make_broker(args.broker, config, shared, state_dir)
    executor = Executor(shared, state_dir, config, broker, watch_mode=args.watch)
    try:
        executor.start(take_over=args.take_over)
    except AlreadyRunning as exc:
        print(f"gridbridge executor: {exc}", file=sys.stderr)
        return 3
    except LeaseRefused as exc:
        print(f"gridbridge executor: refusing to start: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    except JournalCorrupt as exc:
        print(f"gridbridge executor: refusing to start: damaged journal: {exc}", file=sys.stderr)
        return EXIT_JOURNAL_DAMAGED
    stop = stop_on_signals()
    http = _start_control_doors(executor, config)
    try:
        executor.run(max_seconds=args.max_seconds, stop_flag=stop)
    except LeaseLost as exc:
        print(f"gridbridge executor: stopped trading: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    finally:
        if http is not None:
            http.stop()
        executor.stop()
    return 0


def _start_control_doors(executor: Any, config: Any) -> Any:
    """SIGUSR1 = Force Halt where the OS has it; the HTTP API when a port and a token are configured."""
    import os

    from core.control.http_door import ControlHttpServer, token_from_env
    from core.control.signal_door import install_sigusr1_halt
    from shared_schema.clock import SystemClock

    clock = SystemClock()
    install_sigusr1_halt(executor.risk.commands, clock.now)
    port = config.executor.control_http_port
    if port is None:
        return None
    token = token_from_env(os.environ)
    if not token:
        logging.getLogger("gridbridge").error("control_http_port is set but GRIDBRIDGE_CONTROL_TOKEN is not: HTTP door stays closed")
        return None
    server = ControlHttpServer(executor.risk.commands, token, clock.now, host=config.executor.control_http_host, port=port)
    host, bound = server.start()
    logging.getLogger("gridbridge").info("control API on http://%s:%d", host, bound)
    return server
