"""Signed control commands: model, canonical body, HMAC-SHA256 signing and verification.

A command file holds ``{"body": <ControlCommand>, "signature": "<hex>"}``. The signature is
HMAC-SHA256 over the canonical body (the validated model dumped as JSON with sorted keys, no spaces,
ASCII) with the secret from ``GRIDBRIDGE_CONTROL_SECRET``. Verification refuses, with a reason code:
no secret configured, malformed, unsigned, wrongly signed, expired, from the future (beyond a clock-skew
tolerance), a time to live over the cap (``max_ttl``, default 10 minutes) and a replayed nonce, in
that order, so a forged file can never burn a genuine nonce. Raw input is bounded before it is parsed:
at most ``MAX_COMMAND_BYTES`` bytes and ``MAX_COMMAND_DEPTH`` levels of JSON nesting (a file of 100,000
``[`` would otherwise exhaust the parser's recursion), and nothing the parser raises escapes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SECRET_ENV = "GRIDBRIDGE_CONTROL_SECRET"
DEFAULT_FUTURE_TOLERANCE = timedelta(seconds=30)
DEFAULT_MAX_TTL = timedelta(minutes=10)
MAX_COMMAND_BYTES = 64 * 1024  # a real command is about 400 bytes
MAX_COMMAND_DEPTH = 8  # a real command nests 2 levels


class ControlAction(str, Enum):
    FORCE_HALT = "FORCE_HALT"  # stop new orders, cancel open orders
    FORCE_REDUCE = "FORCE_REDUCE"  # REDUCE_ONLY with forced reduction
    RESET_FUSE = "RESET_FUSE"  # leave FUSE (after its cooldown) into staged recovery
    FORCE_UNLOCK_SYMBOL = "FORCE_UNLOCK_SYMBOL"  # DUST_LOCKED / FREEZE -> NORMAL for one symbol
    RESUME = "RESUME"  # lift a halt and the manual reduce-only causes


class ControlReason(str, Enum):
    CONTROL_NO_SECRET = "CONTROL_NO_SECRET"
    CONTROL_MALFORMED = "CONTROL_MALFORMED"
    CONTROL_UNSIGNED = "CONTROL_UNSIGNED"
    CONTROL_BAD_SIGNATURE = "CONTROL_BAD_SIGNATURE"
    CONTROL_EXPIRED = "CONTROL_EXPIRED"
    CONTROL_FROM_FUTURE = "CONTROL_FROM_FUTURE"
    CONTROL_REPLAYED_NONCE = "CONTROL_REPLAYED_NONCE"
    CONTROL_DUPLICATE = "CONTROL_DUPLICATE"
    CONTROL_TTL_TOO_LONG = "CONTROL_TTL_TOO_LONG"
    CONTROL_FAILED = "CONTROL_FAILED"  # the handler raised; the command is refused, the loop goes on


class ControlCommand(BaseModel):
    """One operator command; time fields must carry a timezone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    action: ControlAction
    symbol: str | None = Field(default=None, max_length=32)
    issued_at: datetime
    expires_at: datetime
    nonce: str = Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    issuer: str = Field(min_length=1, max_length=64)

    @field_validator("issued_at", "expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a timezone")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ControlCommand:
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        if self.action is ControlAction.FORCE_UNLOCK_SYMBOL and not self.symbol:
            raise ValueError("FORCE_UNLOCK_SYMBOL needs a symbol")
        return self


class SignedCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    body: ControlCommand
    signature: str | None = None


def canonical_body(command: ControlCommand) -> bytes:
    """The exact bytes that are signed: sorted keys, compact, ASCII."""
    return json.dumps(
        command.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def _mac(secret: bytes, command: ControlCommand) -> str:
    return hmac.new(secret, canonical_body(command), hashlib.sha256).hexdigest()


def new_command(
    action: ControlAction,
    issuer: str,
    now: datetime,
    ttl: timedelta = timedelta(minutes=10),
    symbol: str | None = None,
    command_id: str | None = None,
) -> ControlCommand:
    """A fresh command with a random nonce (and id unless given); time is passed in."""
    return ControlCommand(
        command_id=command_id or f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}",
        action=action,
        symbol=symbol,
        issued_at=now,
        expires_at=now + ttl,
        nonce=secrets.token_urlsafe(16),
        issuer=issuer,
    )


def sign_command(command: ControlCommand, secret: bytes) -> SignedCommand:
    """Attach the HMAC-SHA256 signature of the canonical body."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return SignedCommand(body=command, signature=_mac(secret, command))


def secret_from_env(environ: Mapping[str, str]) -> bytes | None:
    """The control secret from ``GRIDBRIDGE_CONTROL_SECRET`` (None when unset or empty)."""
    value = environ.get(SECRET_ENV, "")
    return value.encode("utf-8") if value else None


class NonceStore(Protocol):
    """Nonces already accepted; the caller persists it (a journal or a small file) across restarts."""

    def seen(self, nonce: str) -> bool: ...

    def remember(self, nonce: str, expires_at: datetime) -> None: ...


class InMemoryNonceStore:
    """Dict-backed store; ``prune`` forgets nonces whose command has expired (they fail on expiry anyway)."""

    def __init__(self, items: Mapping[str, datetime] | None = None) -> None:
        self.items: dict[str, datetime] = dict(items or {})

    def seen(self, nonce: str) -> bool:
        return nonce in self.items

    def remember(self, nonce: str, expires_at: datetime) -> None:
        self.items[nonce] = expires_at

    def prune(self, now: datetime) -> None:
        self.items = {n: exp for n, exp in self.items.items() if exp > now}


def nesting_depth_exceeds(data: bytes | str, limit: int) -> bool:
    """True when the JSON text nests arrays/objects deeper than ``limit`` (brackets inside strings do not
    count). A linear scan with no recursion, run before ``json.loads``."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def bounds_problem(raw: bytes | str) -> str | None:
    """Why raw command text is refused before parsing (size, nesting), or None."""
    size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
    if size > MAX_COMMAND_BYTES:
        return f"{size} bytes, more than {MAX_COMMAND_BYTES}"
    if nesting_depth_exceeds(raw, MAX_COMMAND_DEPTH):
        return f"JSON nests deeper than {MAX_COMMAND_DEPTH} levels"
    return None


@dataclass(frozen=True)
class VerifyResult:
    command: ControlCommand | None
    reason: ControlReason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def verify_command(
    raw: bytes | str | Mapping[str, Any],
    secret: bytes | None,
    nonces: NonceStore,
    now: datetime,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    max_ttl: timedelta = DEFAULT_MAX_TTL,
) -> VerifyResult:
    """Check a signed command and, only if it passes, remember its nonce."""
    if not secret:
        return VerifyResult(None, ControlReason.CONTROL_NO_SECRET, "no control secret configured")
    if isinstance(raw, bytes | str):
        problem = bounds_problem(raw)
        if problem is not None:
            return VerifyResult(None, ControlReason.CONTROL_MALFORMED, problem)
    try:
        data = json.loads(raw) if isinstance(raw, bytes | str) else dict(raw)
        signed = SignedCommand.model_validate(data)
    except (ValueError, TypeError, ValidationError) as exc:
        return VerifyResult(None, ControlReason.CONTROL_MALFORMED, type(exc).__name__)
    except (RecursionError, MemoryError, OverflowError) as exc:  # bounded above; a last barrier
        return VerifyResult(None, ControlReason.CONTROL_MALFORMED, type(exc).__name__)
    cmd = signed.body
    if not signed.signature:
        return VerifyResult(cmd, ControlReason.CONTROL_UNSIGNED)
    # compare_digest: the time taken must not reveal how many leading characters matched.
    if not hmac.compare_digest(
        signed.signature.encode("ascii", "replace"), _mac(secret, cmd).encode("ascii")
    ):
        return VerifyResult(cmd, ControlReason.CONTROL_BAD_SIGNATURE)
    ttl = cmd.expires_at - cmd.issued_at
    if ttl > max_ttl:
        return VerifyResult(cmd, ControlReason.CONTROL_TTL_TOO_LONG, f"time to live {ttl}, cap {max_ttl}")
    if now >= cmd.expires_at:
        return VerifyResult(cmd, ControlReason.CONTROL_EXPIRED, f"expired at {cmd.expires_at.isoformat()}")
    if cmd.issued_at > now + future_tolerance:
        return VerifyResult(cmd, ControlReason.CONTROL_FROM_FUTURE, f"issued at {cmd.issued_at.isoformat()}")
    if nonces.seen(cmd.nonce):
        return VerifyResult(cmd, ControlReason.CONTROL_REPLAYED_NONCE)
    nonces.remember(cmd.nonce, cmd.expires_at)
    return VerifyResult(cmd)
