"""Writing ``order_signal.json``: the new signals, the ones to re-offer, and pruning those whose results are final."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from mac.node.state import SymbolRuntime
from shared_schema.clock import Clock
from shared_schema.models import SIGNAL_FILE, ResultFile, Signal
from shared_schema.signal_io import SignalFileCorrupt, entry_signal_id, read_raw_entries, update_signal_file

log = logging.getLogger("gridbridge.node")


class SignalWriter:
    """Appends the node's signals under the writers' lock; a failure is alerted once per condition."""

    def __init__(self, shared_dir: Path, wall_clock: Clock) -> None:
        self.shared_dir = shared_dir
        self.wall_clock = wall_clock
        self.problem = ""  # the last failure to write order_signal.json, alerted once

    def write(self, outgoing: list[Signal], runtimes: Iterable[SymbolRuntime], results: ResultFile | None) -> str:
        """Write ``outgoing`` plus what must be re-offered; returns the problem when the file was not written
        (the signals stay in the outbox and are re-offered next turn), else ""."""
        final = {sid for sid, r in results.results.items() if r.status.is_final} if results else set()
        # Re-offer what we sent but the executor has not answered and the file no longer holds (a crash
        # between our state save and the write): same id and payload, so the executor dedupes it.
        present = self._signal_ids_in_file()
        resend = [Signal.model_validate(p) for rt in runtimes for client_order_id, p in rt.outbox.items()
                  if client_order_id not in present and client_order_id not in final
                  and (results is None or client_order_id not in results.results)
                  and client_order_id not in {s.signal_id for s in outgoing}]
        if not outgoing and not resend and not (present & final):
            return ""
        try:
            update_signal_file(self.shared_dir, self.wall_clock.now(), add=outgoing + resend,
                               keep=lambda e: entry_signal_id(e) not in final)
        except (SignalFileCorrupt, OSError) as exc:  # SignalWriteRefused, WriteFailed, the lock's Timeout
            # Alert (once per condition, and on the dashboard through data_problems) and carry on.
            problem = f"{SIGNAL_FILE} not written: {exc}; the signals stay in the outbox and are re-offered"
            if problem != self.problem:
                log.error(problem)
            self.problem = problem
            return problem
        if self.problem:
            log.info("%s written again", SIGNAL_FILE)
            self.problem = ""
        return ""

    def _signal_ids_in_file(self) -> set[str]:
        try:
            entries, _seq = read_raw_entries((self.shared_dir / SIGNAL_FILE).read_bytes())
        except (OSError, ValueError):
            return set()
        return {sid for sid in (entry_signal_id(e) for e in entries) if sid}
