"""Service-level indicators of the position manager, kept in memory, saved in the snapshot store after
every tick and manage call (``to_doc`` / ``restore``, so ``/metrics`` survives a restart, and a Redis
loss), and shown by ``GET /health`` and ``GET /metrics``: end-to-end order latency p95 (intent made -> venue ack), stop-move and take-profit
success rates (done in the pass that decided them, retries included), stagnated count, treasury transfer
count and success rate. SLO: p95 <= 800 ms against the fake, stop-move success >= 99 %."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

LATENCY_SAMPLES = 2_000  # the p95 is over the last this many orders (and what the store keeps of them)


@dataclass
class Slis:
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    stop_moves: int = 0
    stop_moves_ok: int = 0
    take_profits: int = 0
    take_profits_ok: int = 0
    stagnated: int = 0
    transfers: int = 0
    transfers_ok: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def order_latency(self, ms: float) -> None:
        with self._lock:
            self.latencies_ms.append(ms)

    def action(self, kind: str, ok: bool) -> None:
        with self._lock:
            if kind == "STOP_MOVE":
                self.stop_moves += 1
                self.stop_moves_ok += ok
            elif kind == "TP_PARTIAL":
                self.take_profits += 1
                self.take_profits_ok += ok

    def transfer(self, ok: bool) -> None:
        with self._lock:
            self.transfers += 1
            self.transfers_ok += ok

    def stagnation(self) -> None:
        with self._lock:
            self.stagnated += 1

    _COUNTERS = ("stop_moves", "stop_moves_ok", "take_profits", "take_profits_ok", "stagnated", "transfers",
                 "transfers_ok")

    def to_doc(self) -> dict[str, Any]:
        with self._lock:
            return {"latencies_ms": list(self.latencies_ms)} | {k: getattr(self, k) for k in self._COUNTERS}

    def restore(self, doc: dict[str, Any]) -> None:
        """Take the saved counters and samples (a restart); a malformed field is ignored, not fatal."""
        with self._lock:
            for k in self._COUNTERS:
                v = doc.get(k)
                if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                    setattr(self, k, v)
            samples = doc.get("latencies_ms")
            if isinstance(samples, list):
                self.latencies_ms.clear()
                self.latencies_ms.extend(float(x) for x in samples[-LATENCY_SAMPLES:]
                                         if isinstance(x, (int, float)) and not isinstance(x, bool)
                                         and 0 <= x < 1e9)

    def p95_ms(self) -> float | None:
        with self._lock:
            xs = sorted(self.latencies_ms)
        if not xs:
            return None
        return xs[min(len(xs) - 1, int(0.95 * len(xs)))]

    def snapshot(self) -> dict[str, Any]:
        def rate(ok: int, n: int) -> float | None:
            return None if n == 0 else ok / n

        p95 = self.p95_ms()
        with self._lock:
            return {
                "order_p95_ms": p95,
                "orders_measured": len(self.latencies_ms),
                "stop_move_success_rate": rate(self.stop_moves_ok, self.stop_moves),
                "stop_moves": self.stop_moves,
                "take_profit_success_rate": rate(self.take_profits_ok, self.take_profits),
                "take_profits": self.take_profits,
                "stagnated_count": self.stagnated,
                "treasury_transfer_count": self.transfers,
                "treasury_transfer_success_rate": rate(self.transfers_ok, self.transfers),
            }
