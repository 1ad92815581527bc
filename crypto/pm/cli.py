"""``gridbridge crypto pm serve|replay``.

``serve --redis URL --db FILE --venue okx-fake --venue-url URL``: the position manager against a venue
(credentials from ``--credentials FILE`` or ``GRIDBRIDGE_OKX_*``), HTTP API on loopback with the token
from ``GRIDBRIDGE_PM_TOKEN``; prints ``pm http://127.0.0.1:PORT`` once listening, runs until SIGINT/SIGTERM
(or ``--run-seconds``).

``replay --pos-id ID --db FILE``: one position's life from the snapshot store, one line per snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

from crypto.pm.config import ConfigError, PmConfig, load_config
from crypto.pm.store import SqliteSnapshotStore

MAX_CONFIG_BYTES = 1024 * 1024


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"HTTP_PORT_INVALID {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"HTTP_PORT_INVALID {port}: 0..65535")
    return port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbridge crypto pm", description="position manager")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the position manager")
    s.add_argument("--redis", required=True, help="redis://127.0.0.1:6379/0")
    s.add_argument("--db", required=True, type=Path, help="SQLite snapshot store")
    s.add_argument("--venue", required=True, help="okx, okx-fake, binance-pm, binance-pm-fake")
    s.add_argument("--venue-url", default=None, help="the local exchange's URL (for *-fake)")
    s.add_argument("--credentials", type=Path, default=None, help="JSON {api_key, secret, passphrase}")
    s.add_argument("--config", type=Path, default=None, help="JSON position-manager config (re-read each tick)")
    s.add_argument("--http-port", type=_port, default=0, help="0: a free port (printed)")
    s.add_argument("--symbols", default=None, help="comma-separated swap symbols to watch (default: all)")
    s.add_argument("--run-seconds", type=float, default=None)
    r = sub.add_parser("replay", help="print one position's life from the store")
    r.add_argument("--pos-id", required=True)
    r.add_argument("--db", required=True, type=Path)
    r.add_argument("--json", action="store_true", help="one JSON document per line")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "replay":
        return replay(args.db, args.pos_id, as_json=args.json)
    return serve(args)


def describe(entry: dict[str, Any]) -> str:
    doc = entry["doc"]
    phase = entry["phase"]
    if phase == "order":
        trig = f" trigger {doc['trigger_price']}" if doc.get("trigger_price") else ""
        return (f"{entry['ts']} order   {doc['kind']:<14} {doc['side']} {doc['qty']}{trig} -> {doc['status']}"
                f" ({doc['client_order_id']})")
    acts = ",".join(a["type"] for a in doc.get("actions", [])) if phase == "decided" else ""
    state = "closed" if doc.get("closed") else "open"
    held = (f" (unchanged through {entry['confirmed_ts']}, {entry['confirmations']} more passes)"
            if entry.get("confirmations") else "")
    return (f"{entry['ts']} {phase:<7} qty {doc.get('qty')} entry {doc.get('entry')} stop {doc.get('stop')} "
            f"rungs {doc.get('ladder_fired')} adds {doc.get('add_count')} realised {doc.get('realised_pnl')} "
            f"{state}{' [' + acts + ']' if acts else ''}{held}")


def replay(db: Path, pos_id: str, *, as_json: bool = False) -> int:
    if not db.exists():
        print(f"pm replay: no store at {db}", file=sys.stderr)
        return 2
    if not db.is_file():
        print(f"pm replay: STORE_PATH_NOT_A_FILE {db}", file=sys.stderr)
        return 2
    try:
        store = SqliteSnapshotStore(db, read_only=True)
        try:
            history = store.history(pos_id)
        finally:
            store.close()
    except (sqlite3.Error, ValueError) as exc:  # not a store, a corrupt file, an undecodable document
        print(f"pm replay: STORE_UNREADABLE {db}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
        return 2
    if not history:
        print(f"pm replay: POSITION_UNKNOWN {pos_id} (never stored, or closed and pruned after "
              "closed_retention_days)", file=sys.stderr)
        return 1
    for entry in history:
        print(json.dumps(entry, sort_keys=True) if as_json else describe(entry))
    return 0


def _read_config(path: Path | None) -> PmConfig:
    if path is None:
        return PmConfig()
    # Re-read every tick: bounded, so a 100 MB file (or 200,000 nested brackets) is a refusal, not a stall
    # or a RecursionError in the loop.
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError("CONFIG_FETCH_FAILED", f"{path}: {type(exc).__name__}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("CONFIG_TOO_LARGE", f"{path}: over {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError("CONFIG_FETCH_FAILED", f"{path}: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise ConfigError("CONFIG_INVALID", "the config file must hold a JSON object")
    return load_config(raw)


def serve(args: argparse.Namespace) -> int:
    """Exit codes: 0 stopped, 2 token/config/Redis/venue refused, 3 store path refused, 4 another manager
    holds this store or this Redis (or took it over while running)."""
    from crypto.pm.http_api import TOKEN_ENV
    from crypto.pm.instance import (
        EXIT_ALREADY_RUNNING,
        EXIT_STORE_PATH,
        AlreadyRunning,
        InstanceLost,
        RedisInstance,
        StorePathRefused,
        open_store_lock,
    )
    from crypto.pm.state import RedisState

    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        print(f"pm serve: TOKEN_MISSING: set {TOKEN_ENV} (the HTTP API needs a token)", file=sys.stderr)
        return 2
    if token != token.strip() or len(token) < 8:
        print(f"pm serve: TOKEN_WEAK: {TOKEN_ENV} needs 8 characters or more, no surrounding blanks",
              file=sys.stderr)
        return 2
    try:
        cfg = _read_config(args.config)
    except ConfigError as exc:
        print(f"pm serve: {exc}", file=sys.stderr)
        return 2
    try:
        state = RedisState.from_url(args.redis)
    except ValueError as exc:
        print(f"pm serve: REDIS_URL_INVALID: {exc}", file=sys.stderr)
        return 2
    if not state.ping():
        print(f"pm serve: REDIS_DOWN {args.redis}", file=sys.stderr)
        return 2
    # One manager per store and per Redis (crypto.pm.instance), checked before any state is read.
    try:
        store_fd = open_store_lock(args.db)
    except StorePathRefused as exc:
        print(f"pm serve: {exc}", file=sys.stderr)
        return EXIT_STORE_PATH
    except AlreadyRunning as exc:
        print(f"pm serve: ALREADY_RUNNING {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    instance = RedisInstance(state.r, args.db)
    try:
        instance.acquire()
    except AlreadyRunning as exc:
        os.close(store_fd)
        print(f"pm serve: ALREADY_RUNNING {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    try:
        return _serve_locked(args, token, cfg, state, instance, InstanceLost)
    finally:
        instance.release()
        os.close(store_fd)  # after the store is closed: SQLite's own locks on the file are gone by then


def _serve_locked(args: argparse.Namespace, token: str, cfg: PmConfig, state: Any, instance: Any,
                  instance_lost: type[Exception]) -> int:  # pragma: no cover - the CLI tests run it
    from core.audit import AuditWriter
    from crypto.pm.feed import VenueClock, VenueFeed, VenueTreasury
    from crypto.pm.http_api import PmHttpServer
    from crypto.pm.manager import ConfigHolder, Manager, wall_ms
    from crypto.pm.port import VenuePort
    from crypto.pm.runner import ActionRunner
    from crypto.pm.service import PmService
    from crypto.pm.status_file import PM_STATUS_FILE, PmStatusPublisher
    from crypto.venue.factory import VenueCredentials, make_venue
    from crypto.venue.types import VenueError

    try:
        creds = (VenueCredentials.from_file(args.credentials) if args.credentials
                 else VenueCredentials.from_env("GRIDBRIDGE_OKX"))
        venue = make_venue(args.venue, args.venue_url, creds)
    except (VenueError, ValueError) as exc:
        print(f"pm serve: venue: {exc}", file=sys.stderr)
        return 2
    for symbol in args.symbols.split(",") if args.symbols else []:
        try:
            venue.market(symbol)
        except VenueError as exc:
            if exc.reason.retryable:
                print(f"pm serve: venue: {exc}", file=sys.stderr)
            else:
                print(f"pm serve: SYMBOL_UNKNOWN {symbol!r} ({exc.reason.value})", file=sys.stderr)
            return 2
    store = SqliteSnapshotStore(args.db)
    audit = AuditWriter(args.db.with_suffix(".audit.jsonl"))
    clock = VenueClock(venue) if args.venue.endswith("-fake") else wall_ms  # the fake may run its own clock
    runner = ActionRunner(VenuePort(venue), store, state, cfg.retry, clock_ms=clock, rng=random.Random(),
                          audit=audit.append)
    holder = ConfigHolder(cfg, (lambda: _read_config(args.config)) if args.config else None)
    manager = Manager(state, store, runner, holder, clock_ms=clock, audit=audit.append,
                      treasury_port=VenueTreasury(venue))
    manager.cold_start()
    feed = VenueFeed(venue, clock_ms=clock)
    symbols = args.symbols.split(",") if args.symbols else None
    # The dashboard's pm page reads pm_status.json beside the store (``gridbridge dashboard --pm-dir``).
    status = PmStatusPublisher(args.db.parent / PM_STATUS_FILE)
    service = PmService(manager, venue, feed, clock_ms=clock, symbols=symbols, status=status,
                        heartbeat=instance.renew)
    api = PmHttpServer(manager, token, feed.view, port=args.http_port)
    try:
        host, port = api.start()
    except OSError as exc:
        store.close()
        print(f"pm serve: HTTP_PORT_UNAVAILABLE 127.0.0.1:{args.http_port}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"pm http://{host}:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.run_seconds is not None:
        threading.Timer(args.run_seconds, stop.set).start()
    try:
        service.run(stop)
    except instance_lost as exc:
        print(f"pm serve: INSTANCE_LOST another manager took {exc}; stopping", file=sys.stderr)
        return 4
    finally:
        status.publish(service, force=True, running=False)
        api.stop()
        store.close()
    return 0
