"""``gridbridge crypto fakex serve --port N --seed S --scenario calm|trend|crash|squeeze [--state FILE]
[--speed X] [--dialect okx ...]``: run the local exchange until interrupted.

The model's clock maps wall time x ``--speed`` onto the scenario start (or onto the saved model time when
``--state`` names an existing file: a restart keeps the state). The credentials and URL are printed on
start as one JSON line so a script can read them.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from crypto.fakex.engine.paths import SCENARIOS
from crypto.fakex.server import Credentials, FakeExchange


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridbridge crypto fakex", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the local exchange on 127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="TCP port (0 = a free one, printed on start)")
    serve.add_argument("--seed", type=int, default=1)
    serve.add_argument("--scenario", choices=SCENARIOS, default="calm")
    serve.add_argument("--state", type=Path, default=None, help="state file: reloaded if present, saved atomically")
    serve.add_argument("--speed", type=float, default=1.0, help="model seconds per wall second")
    serve.add_argument("--dialect", action="append", choices=("okx", "binance"), default=None,
                       help="venue dialects to serve (default: okx)")
    serve.add_argument("--api-key", default=Credentials.api_key)
    serve.add_argument("--secret", default=Credentials.secret)
    serve.add_argument("--passphrase", default=Credentials.passphrase)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.speed <= 0:
        print("gridbridge crypto fakex: --speed must be positive", file=sys.stderr)
        return 2
    creds = Credentials(args.api_key, args.secret, args.passphrase)
    try:
        handle = FakeExchange.start(seed=args.seed, scenario=args.scenario, port=args.port, state_file=args.state,
                                    speed=args.speed, credentials=creds, dialects=tuple(args.dialect or ["okx"]))
    except OSError as exc:
        print(f"gridbridge crypto fakex: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    state = handle.exchange.state  # a reloaded state file keeps its own seed and scenario
    print(json.dumps({"url": handle.url, "port": handle.port, **creds.as_ccxt(), "scenario": state.scenario,
                      "seed": state.seed, "model_ms": state.now_ms, "state": str(args.state) if args.state else None,
                      "admin_header": "X-Fakex-Admin: <secret>"}), flush=True)
    try:
        stop.wait()
    finally:
        handle.stop()
    return 0
