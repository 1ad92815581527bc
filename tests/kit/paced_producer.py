"""A paper producer process whose market moves on the executor's progress, not on the wall clock (tests only).

``gridbridge producer`` replays bars at a fixed speed whatever the executor does, so on a slow machine more
market time passes per executor turn (order ages, the close) and per test action (a signal's price drifts
away before it is read). This process runs the same ``Producer``, ``BarReplaySource`` and
``PaperAccountSource`` and publishes the next bar only when

* the executor has caught up: its ``shared_pool.json`` carries a ``market_time`` at or after the newest
  published quote (it read them and finished a turn; the test config sets ``heartbeat_s`` small so every
  turn rewrites the file), and
* there is work: an open order (``order_result.json``'s ``open_orders``) or a signal in
  ``order_signal.json`` without a final result. An idle bridge sees a still market, so a signal written
  from the current quotes meets the next bar, however long the test took to write it.

The first bar is published at once (the executor needs quotes to start). No executor, no new bar.

    python -m tests.kit.paced_producer SHARED CONFIG CODE=CSV [CODE=CSV ...]
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from marketdata.bars import load_bars
from settings.config import load_config
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    PoolFile,
    QuoteFile,
    ResultFile,
)
from windows.brokers.paper import ACCOUNT_VIEW_FILE
from windows.producer import BarReplaySource, PaperAccountSource, Producer, iter_codes

STEP_S = 0.02  # wall seconds between two looks at the executor


def newest_quote(shared: Path) -> datetime | None:
    quotes = QuoteFile.model_validate_json((shared / QUOTE_FILE).read_bytes())
    return max((q.quote_time for q in quotes.quotes.values()), default=None)


def caught_up(shared: Path) -> bool:
    """The executor finished a turn on the newest published quotes."""
    try:
        pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
        newest = newest_quote(shared)
    except (OSError, ValueError):
        return False
    return pool.market_time is not None and newest is not None and pool.market_time >= newest


def has_work(shared: Path) -> bool:
    """An order is open or a signal waits for its final result."""
    try:
        results = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())
    except (OSError, ValueError):
        return False
    if results.open_orders:
        return True
    try:
        signals = json.loads((shared / SIGNAL_FILE).read_bytes()).get("signals", [])
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # being rewritten: look again next time, moving on is harmless
    for entry in signals:
        sid = entry.get("signal_id") if isinstance(entry, dict) else None
        if sid is None:
            continue
        result = results.results.get(sid)
        if result is None or not result.status.is_final:
            return True
    return False


def main(argv: list[str]) -> int:
    shared, config = Path(argv[0]), load_config(Path(argv[1]))
    source = BarReplaySource({code: load_bars(path) for code, path in iter_codes(argv[2:])})
    producer = Producer(shared, source, PaperAccountSource(shared / ACCOUNT_VIEW_FILE, config))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    published = int(producer.publish_once())
    while not stop:
        time.sleep(STEP_S)
        if caught_up(shared) and has_work(shared):
            if not producer.publish_once():
                break
            published += 1
    print(json.dumps({"bars_published": published}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
