"""``gridbridge crypto close-all --state DIR --venue okx-fake --url URL``: economic full close.

Cancels every working order, then closes every position with reduce-only market orders until flat; a
remainder under the venue minimum cannot be closed and is set aside as dust (``DUST_LOCKED``,
``EXEC_DUST_POSITION_STUCK``) rather than failing. Runs the engine on its state folder (so the journal and
the audit log record the close); refuses while a running engine holds the folder: use
``gridbridge crypto control reduce`` for that one. Exit 0 when flat (dust aside), 1 otherwise, 2 for
bad arguments, credentials or state folder, 3 when another process holds the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from crypto.e2e.runtime import STATE_HELP, add_venue_args, venue_from_args
from crypto.execution.config import ExecConfig
from crypto.execution.engine import AlreadyRunning, CryptoEngine, StateDirError
from crypto.venue.types import VenueError


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbridge crypto close-all", description=__doc__.splitlines()[0])
    p.add_argument("--state", type=Path, required=True, help=STATE_HELP)
    add_venue_args(p)
    p.add_argument("--symbols", default="BTC/USDT:USDT,ETH/USDT:USDT")
    p.add_argument("--max-cycles", type=int, default=20)
    args = p.parse_args(argv)
    try:
        venue = venue_from_args(args)
        # Close-all flattens everything: orders under our prefix that this journal does not know go too.
        engine = CryptoEngine(venue, args.state, ExecConfig(symbols=tuple(args.symbols.split(",")),
                                                            orphan_policy="cancel"))
        engine.start()
    except AlreadyRunning as exc:
        print(f"gridbridge crypto close-all: {exc}; send `gridbridge crypto control reduce --state "
              f"{args.state}` to the running engine instead", file=sys.stderr)
        return 3
    except (StateDirError, ValidationError) as exc:
        print(f"gridbridge crypto close-all: {exc}", file=sys.stderr)
        return 2
    except VenueError as exc:
        print(f"gridbridge crypto close-all: venue: {exc}", file=sys.stderr)
        return 2
    try:
        before = {s: str(q) for s, q in engine.book.positions.items() if q != 0}
        reasons = engine.close_all(args.max_cycles, wait=lambda: time.sleep(0.5))
        after = {s: str(q) for s, q in engine.book.positions.items() if q != 0}
        dust = sorted(engine.risk.dust_locked)
        open_left = [s for s in after if s not in dust]
        print(json.dumps({"before": before, "after": after, "dust_locked": dust, "reasons": reasons,
                          "working_orders": len(engine.book.live())}, indent=2))
        return 0 if not open_left and not engine.book.live() else 1
    except VenueError as exc:
        print(f"gridbridge crypto close-all: venue: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
