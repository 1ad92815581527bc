"""``gridbridge producer``: publish ``shared_quote.json`` from bar files (paper) or the QMT terminal (xtquant)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gridbridge.commands.shell import config_of


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("producer")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--broker", choices=["paper", "xtquant"], default="paper")
    p.add_argument("--bars", action="append", metavar="CODE=CSV", help="1-minute bar file to replay (paper)")
    p.add_argument("--speed", type=float, default=60.0, help="replay speed vs real time (0 = as fast as possible)")
    p.add_argument("--max-bars", type=int, default=None)
    p.add_argument("--from-start", action="store_true", help="replay from the first bar even if quotes exist")
    p.add_argument("--config")
    p.add_argument("--interval", type=float, default=None,
                   help="xtquant: seconds between two snapshots (default: xtquant.producer_interval_s)")
    p.add_argument("--max-seconds", type=float, default=None, help="xtquant: stop after this many seconds")
    p.set_defaults(func=cmd_producer)


def cmd_producer(args: argparse.Namespace) -> int:
    if args.broker == "xtquant":
        from windows.cli_xt import cmd_producer_xt

        return cmd_producer_xt(args)
    return cmd_producer_paper(args)


def cmd_producer_paper(args: argparse.Namespace) -> int:
    from marketdata.bars import load_bars
    from windows.brokers.paper import ACCOUNT_VIEW_FILE
    from windows.producer import BarReplaySource, PaperAccountSource, Producer, iter_codes

    config = config_of(args)
    shared = Path(args.shared_dir)
    if not args.bars:
        print("gridbridge producer: --bars CODE=CSV is required in paper mode", file=sys.stderr)
        return 2
    bars = {code: load_bars(path) for code, path in iter_codes(args.bars)}
    source = BarReplaySource(bars)
    resume_at = _last_quote_ms(shared)
    if resume_at is not None and not args.from_start:
        skipped = source.resume_after(resume_at)
        logging.getLogger("gridbridge.producer").info("resuming after %d bars already published", skipped)
    producer = Producer(shared, source, PaperAccountSource(shared / ACCOUNT_VIEW_FILE, config))
    count = producer.run(args.speed, args.max_bars)
    print(json.dumps({"bars_published": count, "write_failures": producer.write_failures}))
    return 0


def _last_quote_ms(shared: Path) -> int | None:
    """The newest quote time already published (a restarted replay continues after it)."""
    from shared_schema.atomic_io import ModelFileReader
    from shared_schema.models import QUOTE_FILE, QuoteFile
    from shared_schema.types import datetime_to_ms

    model = ModelFileReader(shared / QUOTE_FILE, QuoteFile).read().model
    if model is None or not model.quotes:
        return None
    return max(datetime_to_ms(q.quote_time) for q in model.quotes.values())
