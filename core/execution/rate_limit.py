"""Token-bucket rate limiter and exponential backoff; time is passed in, nothing sleeps."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal


@dataclass(frozen=True)
class TokenBucket:
    """``capacity`` tokens, refilled at ``refill_per_second``; starts full at its first use."""

    capacity: Decimal
    refill_per_second: Decimal
    tokens: Decimal | None = None
    last: datetime | None = None

    def refilled(self, now: datetime) -> TokenBucket:
        if self.tokens is None or self.last is None:
            return replace(self, tokens=self.capacity, last=now)
        elapsed = Decimal(str(max((now - self.last).total_seconds(), 0.0)))  # a clock step back adds nothing
        tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_second)
        return replace(self, tokens=tokens, last=max(now, self.last))


@dataclass(frozen=True)
class Acquire:
    bucket: TokenBucket
    granted: bool
    retry_after: timedelta


def acquire(bucket: TokenBucket, now: datetime, cost: Decimal = Decimal(1)) -> Acquire:
    """Take ``cost`` tokens if available; otherwise say how long until they will be."""
    b = bucket.refilled(now)
    assert b.tokens is not None
    if b.tokens >= cost:
        return Acquire(replace(b, tokens=b.tokens - cost), True, timedelta(0))
    missing = cost - b.tokens
    wait = float(missing / b.refill_per_second) if b.refill_per_second > 0 else float("inf")
    return Acquire(b, False, timedelta(seconds=wait) if wait != float("inf") else timedelta.max)


def backoff_delay(
    attempt: int,
    base: timedelta = timedelta(seconds=1),
    cap: timedelta = timedelta(minutes=2),
    jitter_fraction: float = 0.0,
) -> timedelta:
    """base * 2**attempt, capped; ``jitter_fraction`` in [0, 1) comes from the caller (no randomness here)."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    delay: timedelta = min(base * (2 ** min(attempt, 30)), cap)
    return delay * (1 - jitter_fraction / 2)
