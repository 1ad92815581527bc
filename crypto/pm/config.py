"""The position manager's configuration: one pydantic model, refused as a whole when any rule breaks.

Every refusal carries a stable code (``ConfigError.code``) so an operator tool or the HTTP API can tell
*which* rule broke without parsing prose. The rules that matter most for money:

- ``ADD_ON_GATE_NOT_POSITIVE``: an add-on gate <= 0 would add to a losing position (averaging down);
- ``ADD_ON_GAMMA_RANGE``: Q_add(j) = Q0 x gamma^j must shrink, so 0 < gamma < 1;
- ``LADDER_NOT_INCREASING`` / ``LOCKS_NOT_INCREASING``: rungs and lock levels fire in ROE order;
- ``LOCK_ABOVE_TRIGGER``: a lock level may not lock more ROE than the ROE that triggers it (the stop would
  sit beyond the mark and fire at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A refused configuration: ``code`` is machine-readable, the message says what to change."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockLevel(_Model):
    """When ROE reaches ``trigger_roe`` the stop moves to the price that locks ``lock_roe`` of the margin."""

    trigger_roe: Decimal = Field(gt=0)
    lock_roe: Decimal = Field(ge=0)


class Rung(_Model):
    """Ladder rung: at ROE >= ``roe`` close ``fraction`` of the quantity still open (each rung once)."""

    roe: Decimal = Field(gt=0)
    fraction: Decimal = Field(gt=0, le=1)


class AddOnConfig(_Model):
    gate_roe: Decimal  # > 0, checked in the model validator with its own code
    gamma: Decimal = Decimal("0.5")
    eta: Decimal = Field(default=Decimal("1"), gt=0)
    cap: int = Field(default=3, ge=0)


class RetryConfig(_Model):
    attempts: int = Field(default=3, ge=1, le=10)
    backoff_ms: int = Field(default=1_000, ge=0)  # OKX counts its limits in 2 s windows
    jitter_ms: int = Field(default=250, ge=0)
    queue_delay_ms: int = Field(default=5_000, ge=0)  # first due time of an action left unfinished
    queue_max_delay_ms: int = Field(default=300_000, ge=0)


class TreasuryConfig(_Model):
    asset: str = "USDT"
    from_account: Literal["trading", "funding", "margin", "um"] = "funding"
    to_account: Literal["trading", "funding", "margin", "um"] = "trading"
    min_free_fut: Decimal = Field(default=Decimal("500"), ge=0)
    spot_buffer: Decimal = Field(default=Decimal("100"), ge=0)
    mode: Literal["auto", "approval"] = "auto"


class PmConfig(_Model):
    version: str = "1"
    atr_k: dict[str, Decimal] = Field(
        default_factory=lambda: {"trend": Decimal("1.5"), "range": Decimal("1.0"), "volatile": Decimal("2.0")}
    )
    default_regime: str = "trend"
    locks: tuple[LockLevel, ...] = (
        LockLevel(trigger_roe=Decimal("0.3"), lock_roe=Decimal("0.1")),
        LockLevel(trigger_roe=Decimal("0.6"), lock_roe=Decimal("0.3")),
        LockLevel(trigger_roe=Decimal("1.0"), lock_roe=Decimal("0.6")),
    )
    ladder: tuple[Rung, ...] = (
        Rung(roe=Decimal("0.5"), fraction=Decimal("0.3")),
        Rung(roe=Decimal("1.0"), fraction=Decimal("0.5")),
    )
    add_on: AddOnConfig = AddOnConfig(gate_roe=Decimal("0.2"))
    liq_buffer_min: Decimal = Field(default=Decimal("0.08"), ge=0, lt=1)
    downgrade_fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    stagnation_ms: int = Field(default=4 * 3_600_000, gt=0)
    stagnation_min_progress: Decimal = Field(default=Decimal("0.05"), ge=0)
    stagnation_exit: bool = False
    retry: RetryConfig = RetryConfig()
    treasury: TreasuryConfig = TreasuryConfig()
    manage_interval_s: int = Field(default=15, ge=10, le=30)
    treasury_interval_s: int = Field(default=300, ge=1)
    price_move_trigger: Decimal = Field(default=Decimal("0.005"), gt=0)  # event tick on a 0.5 % move
    stop_attach_timeout_ms: int = Field(default=1_000, gt=0)
    lock_ttl_ms: int = Field(default=30_000, gt=0)
    # A closed position's snapshots and finished intents stay replayable this long, then are pruned.
    closed_retention_days: int = Field(default=30, ge=1, le=3650)
    prune_batch: int = Field(default=100, ge=1, le=10_000)

    @model_validator(mode="after")
    def _rules(self) -> PmConfig:
        for code, message in _violations(self):
            raise ValueError(f"{code}: {message}")
        return self


def _violations(cfg: PmConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if cfg.add_on.gate_roe <= 0:
        out.append(("ADD_ON_GATE_NOT_POSITIVE", "add_on.gate_roe must be > 0 (a gate <= 0 averages down)"))
    if not (Decimal(0) < cfg.add_on.gamma < Decimal(1)):
        out.append(("ADD_ON_GAMMA_RANGE", "add_on.gamma must satisfy 0 < gamma < 1"))
    if any(k <= 0 for k in cfg.atr_k.values()):
        out.append(("ATR_K_NOT_POSITIVE", "every atr_k multiplier must be > 0"))
    if cfg.default_regime not in cfg.atr_k:
        out.append(("REGIME_UNKNOWN", f"default_regime {cfg.default_regime!r} has no atr_k entry"))
    if any(b.roe <= a.roe for a, b in zip(cfg.ladder, cfg.ladder[1:], strict=False)):
        out.append(("LADDER_NOT_INCREASING", "ladder rungs must have strictly increasing roe"))
    if any(b.trigger_roe <= a.trigger_roe or b.lock_roe < a.lock_roe
           for a, b in zip(cfg.locks, cfg.locks[1:], strict=False)):
        out.append(("LOCKS_NOT_INCREASING", "lock levels must have increasing trigger_roe and lock_roe"))
    if any(lv.lock_roe > lv.trigger_roe for lv in cfg.locks):
        out.append(("LOCK_ABOVE_TRIGGER", "a lock level's lock_roe may not exceed its trigger_roe"))
    return out


def load_config(raw: Mapping[str, Any]) -> PmConfig:
    """Validate a config mapping; any refusal becomes one ``ConfigError`` with a stable code."""
    try:
        return PmConfig.model_validate(dict(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = str(first.get("msg", ""))
        # Our own rules carry "CODE: message" (pydantic prefixes "Value error, ").
        text = msg.removeprefix("Value error, ")
        code, sep, rest = text.partition(": ")
        if sep and code.isupper():
            raise ConfigError(code, rest) from None
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ConfigError("CONFIG_INVALID", f"{where}: {msg}") from None
