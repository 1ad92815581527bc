"""Token-bucket rate limiter, exponential backoff, and the guard that backs off and degrades after repeated
venue rate-limit refusals (``RateLimitGuard``); time and randomness are passed in, nothing sleeps."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.events import AuditCode, AuditEvent, Severity


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


# --- The guard: our bucket plus the venue's refusals --------------------------------------------------------
#
# The bucket keeps us under the documented limit; the venue still refuses sometimes (shared limits, other
# clients, a stricter tier). A few refusals inside ``refusal_window`` mean our pace is wrong: back off
# exponentially (jitter from an injected RNG, so two engines do not retry in step) and report DEGRADED
# (``RiskInputs.exec_degraded``, and a slower HealthVerdict) until a quiet period without refusals.


class Rng(Protocol):
    """Anything with ``random() -> float in [0, 1)`` (``random.Random`` in the shell, a fixed one in tests)."""

    def random(self) -> float: ...


class RateLimitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity: Decimal = Field(default=Decimal(10), gt=0)
    refill_per_second: Decimal = Field(default=Decimal(5), gt=0)
    refusals_to_backoff: int = Field(default=3, ge=1)
    refusal_window: timedelta = timedelta(seconds=60)
    backoff_base: timedelta = timedelta(seconds=1)
    backoff_cap: timedelta = timedelta(minutes=2)
    jitter: float = Field(default=0.5, ge=0, le=1)  # up to jitter/2 of a delay is taken off at random
    quiet_period: timedelta = timedelta(minutes=5)
    degraded_interval_factor: Decimal = Field(default=Decimal(2), ge=1)

    @model_validator(mode="after")
    def _positive_times(self) -> RateLimitConfig:
        zero = timedelta(0)
        if min(self.refusal_window, self.backoff_base, self.quiet_period) <= zero or self.backoff_cap < self.backoff_base:
            raise ValueError("rate-limit windows must be positive and backoff_cap >= backoff_base")
        return self


@dataclass(frozen=True)
class RateLimitGuard:
    bucket: TokenBucket
    refusals: tuple[datetime, ...] = ()  # venue rate-limit refusals inside the window
    attempt: int = 0  # backoffs since the last recovery (the exponent)
    backoff_until: datetime | None = None
    degraded: bool = False
    last_refusal: datetime | None = None

    @classmethod
    def start(cls, cfg: RateLimitConfig) -> RateLimitGuard:
        return cls(TokenBucket(cfg.capacity, cfg.refill_per_second))

    def interval_factor(self, cfg: RateLimitConfig) -> Decimal:
        """Multiply the minimum interval between orders by this (slower while degraded)."""
        return cfg.degraded_interval_factor if self.degraded else Decimal(1)


@dataclass(frozen=True)
class Slot:
    guard: RateLimitGuard
    granted: bool
    retry_after: timedelta
    reason: str | None = None  # BACKOFF (the venue told us to slow down) or BUCKET (our own budget)


@dataclass(frozen=True)
class GuardStep:
    guard: RateLimitGuard
    events: tuple[AuditEvent, ...] = ()
    backoff: timedelta | None = None


def request_slot(guard: RateLimitGuard, now: datetime, cost: Decimal = Decimal(1)) -> Slot:
    """May one request go now? Never during a backoff; otherwise the token bucket decides."""
    if guard.backoff_until is not None and now < guard.backoff_until:
        return Slot(guard, False, guard.backoff_until - now, "BACKOFF")
    got = acquire(guard.bucket, now, cost)
    return Slot(replace(guard, bucket=got.bucket), got.granted, got.retry_after, None if got.granted else "BUCKET")


def on_rate_limited(
    guard: RateLimitGuard, now: datetime, cfg: RateLimitConfig, rng: Rng, symbol: str | None = None
) -> GuardStep:
    """Fold one venue rate-limit refusal in: audit it, empty the bucket (the venue says we are over), and
    after ``refusals_to_backoff`` inside the window back off ``base x 2**attempt`` (capped, jittered) and
    degrade."""
    recent = tuple(t for t in guard.refusals if t > now - cfg.refusal_window) + (now,)
    bucket = replace(guard.bucket.refilled(now), tokens=Decimal(0))
    g = replace(guard, refusals=recent, bucket=bucket, last_refusal=now)
    events = [AuditEvent(now, AuditCode.EXEC_RATE_LIMITED, Severity.WARN, "venue rate limit", symbol,
                         {"refusals_in_window": len(recent)})]
    if len(recent) < cfg.refusals_to_backoff:
        return GuardStep(g, tuple(events))
    jitter = min(max(rng.random(), 0.0), 0.999999) * cfg.jitter
    delay = backoff_delay(g.attempt, cfg.backoff_base, cfg.backoff_cap, jitter)
    g = replace(g, refusals=(), attempt=g.attempt + 1, backoff_until=now + delay, degraded=True)
    events.append(AuditEvent(
        now, AuditCode.EXEC_RATE_LIMIT_BACKOFF, Severity.ERROR,
        f"{len(recent)} rate-limit refusals in {cfg.refusal_window}: back off {delay}, degraded", symbol,
        {"attempt": g.attempt, "delay_ms": delay // timedelta(milliseconds=1), "refusals": len(recent)},
    ))
    return GuardStep(g, tuple(events), delay)


def tick_guard(guard: RateLimitGuard, now: datetime, cfg: RateLimitConfig) -> GuardStep:
    """Recover after ``quiet_period`` without a refusal (and past any backoff): normal pace, attempt 0."""
    if not guard.degraded or guard.last_refusal is None:
        return GuardStep(guard)
    if now - guard.last_refusal < cfg.quiet_period or (guard.backoff_until is not None and now < guard.backoff_until):
        return GuardStep(guard)
    g = replace(guard, degraded=False, attempt=0, backoff_until=None, refusals=())
    ev = AuditEvent(now, AuditCode.EXEC_RATE_LIMIT_RECOVERED, Severity.INFO,
                    f"no rate-limit refusal for {cfg.quiet_period}: normal pace")
    return GuardStep(g, (ev,))
