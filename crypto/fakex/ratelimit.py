"""Per-endpoint request limits over a sliding window of request-arrival time (wall time, injected).

Each dialect names its endpoints and their venue limits (OKX: "60 requests per 2 seconds"); the admin
door can override a limit so a test hits it deterministically (e.g. 3 per 60 s, then a 4th call).
"""

from __future__ import annotations

import threading
from collections import deque


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._overrides: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def override(self, endpoint: str, limit: int, window_ms: int) -> None:
        with self._lock:
            self._overrides[endpoint] = (limit, window_ms)
            self._hits.pop(endpoint, None)

    def clear_overrides(self) -> None:
        with self._lock:
            self._overrides.clear()

    def allow(self, endpoint: str, limit: int, window_ms: int, now_ms: float) -> bool:
        """Count one request; False when the window already holds ``limit`` requests (the request is not
        counted then, as venues do not count refused requests against the next window)."""
        with self._lock:
            limit, window_ms = self._overrides.get(endpoint, (limit, window_ms))
            hits = self._hits.setdefault(endpoint, deque())
            while hits and hits[0] <= now_ms - window_ms:
                hits.popleft()
            if len(hits) >= limit:
                return False
            hits.append(now_ms)
            return True
