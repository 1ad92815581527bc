"""Live progress of a whole-system run (the dry run), read from the files its processes write.

The run is separate processes, so its progress is what the shared folder shows: the market time the
producer has published (``shared_quote.json``), the signals the nodes sent and the executor answered
(``order_signal.json``, ``order_result.json``) and the pool's utilisation (``shared_pool.json``). They are
only read, never written. On a terminal one line updates in place; anywhere else (a log, a pipe) a plain
line is printed every few seconds, and only when something moved.
"""

from __future__ import annotations

import bisect
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from shared_schema.atomic_io import ModelFileReader
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    PoolFile,
    QuoteFile,
    ResultFile,
)
from shared_schema.signal_io import entry_signal_id, read_raw_entries
from shared_schema.types import datetime_to_ms, ms_to_datetime

BAR_WIDTH = 24


@dataclass(frozen=True)
class RunProgress:
    """What the shared folder says about a run at one moment."""

    market_ms: int | None = None  # the newest quote time published
    signals: int = 0  # signals sent (in the signal file or answered in the result file)
    fills: int = 0  # results FILLED
    open_orders: int = 0
    utilization: float | None = None
    risk_state: str = ""


class ProgressSource:
    """Reads a shared folder's progress; keeps each file's last good view across a bad read."""

    def __init__(self, shared: Path) -> None:
        self.shared = Path(shared)
        self._quotes = ModelFileReader(self.shared / QUOTE_FILE, QuoteFile)
        self._results = ModelFileReader(self.shared / RESULT_FILE, ResultFile)
        self._pool = ModelFileReader(self.shared / POOL_FILE, PoolFile)

    def read(self) -> RunProgress:
        quotes = self._quotes.read().model
        results = self._results.read().model
        pool = self._pool.read().model
        market = [datetime_to_ms(q.quote_time) for q in quotes.quotes.values()] if quotes is not None else []
        answered = set(results.results) if results is not None else set()
        return RunProgress(
            market_ms=max(market) if market else None,
            signals=len(answered | self._signal_ids()),
            fills=sum(r.status.value == "FILLED" for r in results.results.values()) if results is not None else 0,
            open_orders=results.open_orders if results is not None else 0,
            utilization=pool.utilization if pool is not None else None,
            risk_state=pool.risk_state if pool is not None else "",
        )

    def _signal_ids(self) -> set[str]:
        try:
            entries, _seq = read_raw_entries((self.shared / SIGNAL_FILE).read_bytes())
        except (OSError, ValueError):
            return set()
        return {sid for sid in (entry_signal_id(e) for e in entries) if sid}


def progress_line(p: RunProgress, bar_times: Sequence[int], wall_s: float, width: int = BAR_WIDTH) -> str:
    """One line: market time replayed (of the run's bars), signals, fills, open orders, utilisation."""
    total = len(bar_times)
    done = bisect.bisect_right(bar_times, p.market_ms) if p.market_ms is not None else 0
    share = done / total if total else 0.0
    filled = round(share * width)
    market = ms_to_datetime(p.market_ms).strftime("%Y-%m-%d %H:%M") if p.market_ms is not None else "waiting"
    pool = f"{p.utilization:.1%}" if p.utilization is not None else "-"
    risk = f" {p.risk_state}" if p.risk_state and p.risk_state != "NORMAL" else ""
    return (f"market {market} [{'#' * filled}{'.' * (width - filled)}] {share:4.0%}  signals {p.signals}  "
            f"fills {p.fills}  open {p.open_orders}  pool {pool}{risk}  {wall_s:.0f} s")


class ProgressPrinter:
    """Shows progress lines on ``stream``: rewritten in place on a terminal; on anything else one plain line
    each ``every_s`` seconds when the progress changed, so a log gets a readable trail."""

    def __init__(self, stream: TextIO, bar_times: Sequence[int], is_tty: bool | None = None, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns) -> None:
        self.stream = stream
        self.bar_times = sorted(bar_times)
        self.is_tty = stream.isatty() if is_tty is None else is_tty
        self.every_s = every_s
        self.clock = clock
        self.columns = columns
        self.started = clock()
        self._last_at: float | None = None
        self._last: RunProgress | None = None
        self._width = 0

    def show(self, p: RunProgress) -> None:
        now = self.clock()
        if self.is_tty:
            self._overwrite(progress_line(p, self.bar_times, now - self.started))
        elif p != self._last and (self._last_at is None or now - self._last_at >= self.every_s):
            self._print(p, now)

    def close(self, p: RunProgress) -> None:
        """The last state, on a line of its own (the terminal's line is ended, a log gets it once more)."""
        now = self.clock()
        if self.is_tty:
            self._overwrite(progress_line(p, self.bar_times, now - self.started))
            self.stream.write("\n")
            self.stream.flush()
        elif p != self._last:
            self._print(p, now)

    def _print(self, p: RunProgress, now: float) -> None:
        self.stream.write(f"dry run: {progress_line(p, self.bar_times, now - self.started)}\n")
        self.stream.flush()
        self._last, self._last_at = p, now

    def _overwrite(self, line: str) -> None:
        # A line wider than the terminal wraps, and "\r" then rewrites only its last row: cut it to fit.
        line = line[: max(1, self.columns() - 1)]
        pad = max(0, self._width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._width = len(line)


class ProgressWatch:
    """A daemon thread that shows a source's progress every ``poll_s`` seconds until stopped."""

    def __init__(self, source: ProgressSource, printer: ProgressPrinter, poll_s: float) -> None:
        self.source = source
        self.printer = printer
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dry-run-progress", daemon=True)

    def __enter__(self) -> ProgressWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.printer.close(self.source.read())

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.printer.show(self.source.read())
