"""The QMT machine's subcommands: ``producer --broker xtquant`` and ``fetch-bars``.

``register(subparsers)`` adds ``fetch-bars``; ``gridbridge producer --broker xtquant`` runs
``cmd_producer_xt`` (the producer command is ``gridbridge.commands.producer``). xtquant and pandas are
imported lazily; ``$GRIDBRIDGE_XTQUANT_MODULE`` selects the fake terminal in tests (see docs/windows.md).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import signal as os_signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("gridbridge.cli_xt")

CSV_COLUMNS = ["time", "open", "high", "low", "close", "volume"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch-bars")
    p.add_argument("--code", required=True)
    p.add_argument("--period", default="1m")
    p.add_argument("--start", required=True, help="YYYYMMDD")
    p.add_argument("--end", required=True, help="YYYYMMDD")
    p.add_argument("--out", required=True, help="CSV to create or extend")
    p.set_defaults(func=cmd_fetch_bars)


# ------------------------------------------------------------------------------------------- producer


def cmd_producer_xt(args: argparse.Namespace) -> int:
    from settings.config import load_config
    from windows.brokers.xt_session import XtQuantUnavailable, load_xt_modules
    from windows.brokers.xtquant_broker import settings_from_config
    from windows.producer import Producer
    from windows.xt_sources import PRODUCER_SESSION_OFFSET, XtDataQuoteSource, XtTraderAccountSource

    config = load_config(Path(args.config) if args.config else None)
    x = config.xtquant
    if not x.userdata_path or not x.account_id:
        print("gridbridge producer: --broker xtquant needs xtquant.userdata_path and xtquant.account_id in the "
              "config (see docs/windows.md)", file=sys.stderr)
        return 2
    try:
        modules = load_xt_modules(with_data=True)
    except XtQuantUnavailable as exc:
        print(f"gridbridge producer: {exc}", file=sys.stderr)
        return 2
    quotes = XtDataQuoteSource(modules.xtdata, list(config.codes), x.bars_count, call_timeout_s=x.call_timeout_s)
    account = XtTraderAccountSource(modules, settings_from_config(config, role_offset=PRODUCER_SESSION_OFFSET))
    account.start()
    producer = Producer(Path(args.shared_dir), quotes, account, source="xtquant")
    interval = args.interval if args.interval is not None else x.producer_interval_s
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(os_signal, name):
            os_signal.signal(getattr(os_signal, name), lambda *_: stop.set())
    published = 0
    started = time.monotonic()  # shell timing only: cadence and --max-seconds
    try:
        while not stop.is_set():
            producer.publish_once()
            published += 1
            if args.max_seconds is not None and time.monotonic() - started >= args.max_seconds:
                break
            stop.wait(interval)
    finally:
        account.stop()
    print(json.dumps({"snapshots_published": published, "write_failures": producer.write_failures}))
    return 0


# ----------------------------------------------------------------------------------------- fetch-bars


def cmd_fetch_bars(args: argparse.Namespace) -> int:
    from windows.brokers.xt_session import XtQuantUnavailable, load_xt_modules

    try:
        xtdata = load_xt_modules(with_data=True).xtdata
    except XtQuantUnavailable as exc:
        print(f"gridbridge fetch-bars: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    appended, last = fetch_bars(xtdata, args.code, args.period, args.start, args.end, out)
    print(json.dumps({"code": args.code, "period": args.period, "appended": appended, "last_time": last,
                      "out": str(out)}))
    return 0


def fetch_bars(xtdata: Any, code: str, period: str, start: str, end: str, out: Path) -> tuple[int, int | None]:
    """Download history from QMT and append the bars after the CSV's last one (the CSV is rewritten
    atomically, so an interrupted run leaves the previous file). Returns (bars appended, last time)."""
    import pandas as pd

    from shared_schema.atomic_io import atomic_write_bytes
    from shared_schema.types import ms_to_datetime

    existing = pd.read_csv(out) if out.exists() and out.stat().st_size else None
    last = int(existing["time"].max()) if existing is not None and len(existing) else None
    if last is not None:
        # Only what is missing: from the day of the last bar we already hold.
        start = max(start, ms_to_datetime(last).strftime("%Y%m%d"))
    xtdata.download_history_data(code, period, start_time=start, end_time=end)
    frames = xtdata.get_market_data_ex(CSV_COLUMNS, [code], period=period, start_time=start, end_time=end, count=-1)
    frame = frames.get(code)
    if frame is None or not len(frame):
        return 0, last
    new = frame[CSV_COLUMNS].copy()
    new["time"] = new["time"].astype("int64")
    if last is not None:
        new = new[new["time"] > last]
    if not len(new):
        return 0, last
    combined = new if existing is None else pd.concat([existing[CSV_COLUMNS], new], ignore_index=True)
    buf = io.StringIO()
    combined.to_csv(buf, index=False, float_format="%.4f")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue().encode())
    return len(new), int(combined["time"].max())

