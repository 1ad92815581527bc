"""``gridbridge crypto hedge run``: one hedge end to end through ccxt.

``--venue binance-pm-fake`` without ``--url`` starts the local exchange's Binance portfolio-margin dialect
in-process (manual clock, moved one price step per poll); with ``--url`` it talks to a running
``gridbridge crypto fakex serve`` (its default credentials unless ``BINANCE_*`` are set). ``--venue
binance-pm`` is the real venue (credentials from ``BINANCE_API_KEY``/``BINANCE_SECRET``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from crypto.hedge.session import HedgeSession, RunConfig, RunResult

EXIT_OK, EXIT_USAGE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_VENUE, EXIT_ALREADY_RUNNING = 0, 2, 3, 4, 5, 6
EXIT_STATE_INVALID = 7  # the journal in --state-dir cannot be read: never guess what was sent, stop
LOCK_FILE = ".hedge.lock"


class StateDirRefused(RuntimeError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def state_dir_lock(state_dir: Path) -> int:
    """Take the state folder for this run: refuse a symlink or a file where the folder should be (nothing is
    written through a link), then ``flock`` its lock file exclusively (dropped by the kernel when the process
    dies). A second run on the same folder, through any path to it, gets ``ALREADY_RUNNING``: two runs
    would journal one book from two processes and both hedge the same fill."""
    import fcntl
    import os

    if state_dir.is_symlink():
        raise StateDirRefused("STATE_DIR_SYMLINK", f"{state_dir} is a symlink; give the real folder")
    if state_dir.exists() and not state_dir.is_dir():
        raise StateDirRefused("STATE_DIR_NOT_A_FOLDER", f"{state_dir} is not a folder")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateDirRefused("STATE_DIR_NOT_WRITABLE", f"{state_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirRefused("ALREADY_RUNNING", f"another hedge run holds {state_dir}") from None
    return fd


def add_run_parser(sub: Any, decimal: Callable[[str], Decimal]) -> None:
    r = sub.add_parser("run", help="the hedge end to end through ccxt against a venue")
    r.add_argument("--mode", choices=("open", "close"), required=True)
    r.add_argument("--exec", dest="exec_mode", choices=("MT", "MM"), required=True,
                   help="MT: UM market hedges; MM: GTX post-only limits, re-priced, then market")
    r.add_argument("--venue", choices=("binance-pm-fake", "binance-pm"), required=True)
    r.add_argument("--url", help="a running local exchange (binance-pm-fake); default: start one in-process")
    r.add_argument("--symbol", default="BTC/USDT", help="the spot symbol of the margin leg (UM: <symbol>:USDT)")
    r.add_argument("--qty", type=decimal, help="open: margin order size (base); close: at most this much spot")
    r.add_argument("--side", choices=("buy", "sell"), default="buy", help="open: the margin order's side")
    r.add_argument("--strategy-id", default="hedge1")
    r.add_argument("--state-dir", type=Path, help="journal (snapshot) and audit log; a rerun resumes from it")
    r.add_argument("--max-reprices", type=int, default=3)
    r.add_argument("--cross-first", type=int, default=0, help="price the first N GTX attempts across the book")
    r.add_argument("--channel-down", action="store_true", help="the signal channel is down: direct sends")
    r.add_argument("--max-steps", type=int, default=400)
    r.add_argument("--seed", type=int, default=7, help="in-process fake: the price path seed")
    r.add_argument("--scenario", default="calm", help="in-process fake: calm|trend|crash|squeeze")
    r.add_argument("--json", action="store_true")


# The in-process exchange starts flat in the base assets: what the margin account holds is what the hedge did.
FAKE_BALANCES = {"trading": {"USDT": Decimal(200_000)}, "funding": {"USDT": Decimal(0)}}


def run(args: argparse.Namespace) -> int:

    um_symbol = f"{args.symbol}:{args.symbol.split('/')[1]}" if "/" in args.symbol else ""
    if not um_symbol:
        print(json.dumps({"error": "BAD_SYMBOL", "message": "--symbol is BASE/QUOTE"}), file=sys.stderr)
        return EXIT_USAGE
    config = RunConfig(mode=args.mode, exec_mode=args.exec_mode, spot_symbol=args.symbol, um_symbol=um_symbol,
                       qty=args.qty, side=args.side, strategy_id=args.strategy_id, max_reprices=args.max_reprices,
                       cross_first=args.cross_first, channel_down=args.channel_down, max_steps=args.max_steps)
    lock_fd: int | None = None
    if args.state_dir is not None:
        try:
            lock_fd = state_dir_lock(args.state_dir)
        except StateDirRefused as exc:
            print(json.dumps({"error": exc.code, "message": str(exc)}), file=sys.stderr)
            return EXIT_ALREADY_RUNNING if exc.code == "ALREADY_RUNNING" else EXIT_USAGE
    try:
        return _run_locked(args, config)
    finally:
        if lock_fd is not None:
            import os

            os.close(lock_fd)


def _run_locked(args: argparse.Namespace, config: RunConfig) -> int:
    from crypto.hedge.snapshot import SnapshotError
    from crypto.venue.factory import VenueCredentials, make_venue
    from crypto.venue.types import VenueError

    fx = None
    try:
        if args.venue == "binance-pm-fake" and args.url is None:
            from crypto.fakex.engine.paths import STEP_MS
            from crypto.fakex.server import FakeExchange

            # With --state-dir the in-process exchange keeps its state there too: a close run after an open
            # run on the same folder finds the positions the open left.
            state_file = None if args.state_dir is None else args.state_dir / "fakex-state.json"
            fx = FakeExchange.start(seed=args.seed, scenario=args.scenario, dialects=("binance",),
                                    balances=FAKE_BALANCES, state_file=state_file)
            creds = VenueCredentials.model_validate({"api_key": fx.credentials.api_key,
                                                     "secret": fx.credentials.secret})
            venue = make_venue("binance-pm-fake", fx.url, creds)
            handle = fx

            def advance() -> None:
                handle.advance(STEP_MS)
        else:
            if args.venue == "binance-pm-fake":
                from crypto.fakex.server import Credentials

                default = Credentials()
                creds = VenueCredentials.model_validate({"api_key": default.api_key, "secret": default.secret})
            else:
                creds = VenueCredentials.from_env("BINANCE")
            venue = make_venue(args.venue, args.url, creds)

            def advance() -> None:
                time.sleep(1.0)
        audit_writer = None
        if args.state_dir is not None:
            from core.audit import AuditWriter

            audit_writer = AuditWriter(args.state_dir / "audit.jsonl")
        session = HedgeSession(venue, config, advance, args.state_dir,
                               audit=None if audit_writer is None else audit_writer.append)
        result = session.run()
    except VenueError as exc:
        print(json.dumps({"error": exc.reason.value, "venue_code": exc.venue_code, "message": exc.message}),
              file=sys.stderr)
        return EXIT_VENUE
    except SnapshotError as exc:
        print(json.dumps({"error": exc.code, "message": str(exc)}), file=sys.stderr)
        return EXIT_STATE_INVALID
    finally:
        if fx is not None:
            fx.stop()
    _print(result, args.json)
    if result.outcome.startswith("refused"):
        return EXIT_REFUSED
    return EXIT_OK if result.outcome == "done" else EXIT_TIMEOUT


def _print(result: RunResult, as_json: bool) -> None:
    doc = result.to_dict()
    if as_json:
        print(json.dumps(doc, indent=2, default=str))
        return
    print(f"hedge {doc['mode']} {doc['exec_mode']}: {doc['outcome']} after {doc['steps']} steps")
    print(f"  margin filled {doc['filled']}  hedged {doc['hedged']}  residual {doc['residual']} "
          f"(always below {doc['residual_bound']})")
    print(f"  venue UM position {doc['um_position']} (from hedge orders {doc['um_from_orders']}), spot {doc['spot']}")
    for o in result.hedge_orders:
        print(f"  hedge {o['client_order_id']}: {o['kind']} {o['qty']} filled {o['filled']} {o['state']}"
              f"{' attempt ' + o['attempt'] if o['attempt'] != '0' else ''}{' ' + o['reason'] if o['reason'] else ''}")
    print("  audit: " + ", ".join(f"{k} {v}" for k, v in sorted(result.audit.items())))
