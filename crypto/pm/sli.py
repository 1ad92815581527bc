"""Service-level indicators of the position manager, kept in memory and shown by ``GET /health`` and
``GET /metrics``: end-to-end order latency p95 (intent made -> venue ack), stop-move and take-profit
success rates (done in the pass that decided them, retries included), stagnated count, treasury transfer
count and success rate. SLO: p95 <= 800 ms against the fake, stop-move success >= 99 %."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Slis:
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
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
