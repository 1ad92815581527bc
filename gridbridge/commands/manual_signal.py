"""``gridbridge signal``: append one manual signal to ``order_signal.json``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gridbridge.commands.shell import config_of
from settings.config import ExecutorConfig

MANUAL_SIGNAL_EXPIRY_S = ExecutorConfig().max_signal_age_s
"""``gridbridge signal`` without ``--expires-in`` (and without ``--config``): the signal expires this many market
seconds after it is made, the executor's default maximum signal age."""
MAX_MANUAL_EXPIRY_S = 86_400.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("signal")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--direction", required=True, type=str.upper, choices=["BUY", "SELL"])
    p.add_argument("--price", required=True)
    p.add_argument("--shares", required=True, type=int)
    p.add_argument("--layer-index", type=int, default=0)
    p.add_argument("--release", action="append", metavar="CLIENT_ORDER_ID")
    p.add_argument("--signal-id")
    p.add_argument("--client-order-id")
    p.add_argument("--expires-in", type=float, default=None,
                   help="market seconds until the signal expires (default: the config's executor.max_signal_age_s, "
                        f"{MANUAL_SIGNAL_EXPIRY_S:.0f} without --config)")
    p.add_argument("--config", help="the executor's config file: its max_signal_age_s is the default expiry")
    p.set_defaults(func=cmd_signal)


def cmd_signal(args: argparse.Namespace) -> int:
    from filelock import Timeout

    from shared_schema.atomic_io import ModelFileReader
    from shared_schema.clock import SystemClock
    from shared_schema.models import QUOTE_FILE, SIGNAL_FILE, QuoteFile, Signal
    from shared_schema.signal_io import SignalFileCorrupt, update_signal_file

    clock = SystemClock()
    shared = Path(args.shared_dir)
    # Stamp with the market clock (the newest quote) when there is one, as a node does.
    quotes = ModelFileReader(shared / QUOTE_FILE, QuoteFile).read().model
    stamp = max((q.quote_time for q in quotes.quotes.values()), default=None) if quotes else None
    now = stamp or clock.now()
    try:
        price = Decimal(args.price)
    except InvalidOperation:
        print(f"gridbridge signal: price {args.price!r} is not a number", file=sys.stderr)
        return 2
    signal_id = args.signal_id or f"M{uuid.uuid4().hex[:15]}"
    payload = {
        "signal_id": signal_id,
        "code": args.code,
        "direction": args.direction.upper(),
        "price": price,
        "shares": args.shares,
        "layer_index": args.layer_index,
        "release_client_order_ids": args.release or [],
        "created_at": now,
        "source": "manual",
    }
    if args.client_order_id:
        payload["client_order_id"] = args.client_order_id
    # A manual signal always carries its own expiry (default: the executor's maximum signal age), so one
    # left in the file while the executor is down is never placed at a later day's prices.
    default_expiry = config_of(args).executor.max_signal_age_s if args.config else MANUAL_SIGNAL_EXPIRY_S
    expires_in = default_expiry if args.expires_in is None else args.expires_in
    if not (0 < expires_in <= MAX_MANUAL_EXPIRY_S):
        print(f"gridbridge signal: --expires-in must be in (0, {MAX_MANUAL_EXPIRY_S:.0f}] seconds", file=sys.stderr)
        return 2
    payload["expires_at"] = now + timedelta(seconds=expires_in)
    try:
        signal = Signal.model_validate(payload)
    except ValueError as exc:
        print(f"gridbridge signal: invalid signal: {exc}", file=sys.stderr)
        return 2
    try:
        update_signal_file(shared, clock.now(), add=[signal])
    except (SignalFileCorrupt, OSError) as exc:  # SignalWriteRefused, WriteFailed: odd files, links, a full disk
        print(f"gridbridge signal: nothing written: {exc}", file=sys.stderr)
        return 2
    except Timeout:
        print(f"gridbridge signal: nothing written: another writer holds {SIGNAL_FILE}'s lock; try again",
              file=sys.stderr)
        return 2
    print(json.dumps({"signal_id": signal.signal_id, "client_order_id": signal.client_order_id}))
    return 0
