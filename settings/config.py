"""The validated configuration both machines read (JSON file; every field has the design's default)."""

from __future__ import annotations

import json
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.gate import GateConfig
from core.risk.config import RiskConfig
from settings.grid import TUNED_CODES
from settings.grid_section import GridSection
from shared_schema.models import DESIGN_SYMBOLS
from shared_schema.types import Money


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or breaks a rule; the message says which."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultConfig(_Section):
    physical_pool: Money = Decimal("300000")
    nominal_caps: dict[str, Money] = Field(default_factory=lambda: {c: Decimal("200000") for c in DESIGN_SYMBOLS})
    reserve_ratio: Money = Decimal("0.15")

    @model_validator(mode="after")
    def _sane(self) -> VaultConfig:
        if self.physical_pool <= 0:
            raise ValueError("vault.physical_pool must be positive")
        if not (Decimal(0) <= self.reserve_ratio < Decimal(1)):
            raise ValueError("vault.reserve_ratio must be in [0, 1)")
        unknown = set(self.nominal_caps) - set(DESIGN_SYMBOLS)
        if unknown:
            raise ValueError(f"vault.nominal_caps has codes outside {DESIGN_SYMBOLS}: {sorted(unknown)}")
        if any(cap <= 0 for cap in self.nominal_caps.values()):
            raise ValueError("vault.nominal_caps must be positive")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c for c in DESIGN_SYMBOLS if c in self.nominal_caps)


SessionPhase = Literal["continuous", "opening_auction", "closing_auction"]


class SessionWindow(_Section):
    """One phase of an exchange's trading day, China time, ``start`` inclusive and ``end`` exclusive."""

    start: time
    end: time
    phase: SessionPhase = "continuous"
    cancel_allowed: bool = Field(default=True, description="false where the exchange refuses cancels")

    @model_validator(mode="after")
    def _ordered(self) -> SessionWindow:
        if not self.start < self.end:
            raise ValueError(f"session window start {self.start} must be before its end {self.end}")
        return self


def _a_share_day(closing_auction: bool) -> list[SessionWindow]:
    """An A-share ETF day: opening call auction 09:15-09:25 (no cancels from 09:20), continuous trading
    09:30-11:30 and 13:00-15:00; Shenzhen ends with a closing call auction 14:57-15:00 (no cancels)."""
    day = [
        SessionWindow(start=time(9, 15), end=time(9, 20), phase="opening_auction"),
        SessionWindow(start=time(9, 20), end=time(9, 25), phase="opening_auction", cancel_allowed=False),
        SessionWindow(start=time(9, 30), end=time(11, 30)),
    ]
    if closing_auction:
        return day + [
            SessionWindow(start=time(13, 0), end=time(14, 57)),
            SessionWindow(start=time(14, 57), end=time(15, 0), phase="closing_auction", cancel_allowed=False),
        ]
    return day + [SessionWindow(start=time(13, 0), end=time(15, 0))]


class MarketConfig(_Section):
    lot_size: int = 100
    tick: Money = Decimal("0.001")
    price_limit_ratio: Money = Decimal("0.10")
    sessions: dict[str, list[SessionWindow]] = Field(
        default_factory=lambda: {"SH": _a_share_day(closing_auction=False), "SZ": _a_share_day(closing_auction=True)},
        description="the session table per exchange (the code's suffix: SH, SZ). New orders are taken only in "
        "continuous windows; a window with cancel_allowed false refuses them with NO_CANCEL_PERIOD",
    )

    @field_validator("sessions", mode="before")
    @classmethod
    def _one_table_for_every_exchange(cls, value: Any) -> Any:
        # The earlier format, one list of windows, applies to both exchanges.
        return {"SH": value, "SZ": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _tables_sane(self) -> MarketConfig:
        for exchange, windows in self.sessions.items():
            ordered = sorted(windows, key=lambda w: w.start)
            for before, after in zip(ordered, ordered[1:], strict=False):
                if after.start < before.end:
                    raise ValueError(f"market.sessions.{exchange}: windows {before.start}-{before.end} and "
                                     f"{after.start}-{after.end} overlap")
        return self


class ExecutorConfig(_Section):
    max_order_age_s: float = Field(default=300.0, gt=0)
    clock_skew_tolerance_s: float = Field(default=30.0, ge=0)
    quote_stale_after_s: float = Field(default=180.0, gt=0)
    max_signal_age_s: float = Field(default=120.0, gt=0, description="market seconds a signal without "
                                    "expires_at stays valid after its created_at (older: EXPIRED SIGNAL_TOO_OLD)")
    max_quote_ahead_s: float | None = Field(
        default=300.0, gt=0, description="quote times further ahead of the wall clock are refused and alerted "
        "(the market clock never follows them); null turns the check off for replays of future-dated bars")
    reduction_retry_s: float = Field(
        default=60.0, gt=0, description="market seconds before a forced-reduction sell of a lot is tried again")
    reduction_expiry_s: float = Field(
        default=120.0, gt=0, description="market seconds a forced-reduction sell signal stays valid")
    poll_interval_s: float = Field(default=0.05, gt=0)
    publish_interval_s: float = Field(default=0.05, ge=0, description="least wall time between two publishes")
    heartbeat_s: float = Field(default=10.0, gt=0, description="wall seconds between two publishes of "
                               "shared_pool.json when nothing changes (readers call the executor down after "
                               "2.5 missed heartbeats)")
    max_signal_file_bytes: int = Field(default=16 * 1024 * 1024, ge=1024,
                                       description="order_signal.json larger than this is refused with an alert")
    journal_compact_records: int = Field(default=2000, ge=10, description="journal records after the last "
                                         "snapshot that trigger a compaction (forget + snapshot + atomic swap)")
    result_retention: int = Field(default=2000, ge=10)
    commission_estimate_rate: Money = Decimal("0.0001")
    commission_estimate_min: Money = Decimal("0")
    unknown_outcome_lookup_s: float = Field(default=10.0, gt=0)
    max_orders_per_s: float = Field(default=20.0, gt=0, description="token-bucket refill: orders per wall second")
    order_burst: int = Field(default=20, ge=1, description="token-bucket capacity")
    reconcile_interval_s: float = Field(default=300.0, gt=0, description="market seconds between reconciliations")
    include_base_positions_in_risk: bool = False
    control_http_port: int | None = Field(default=None, description="serve the control API on 127.0.0.1:PORT")
    control_http_host: str = "127.0.0.1"
    control_max_ttl_s: float = Field(default=600.0, gt=0,
                                     description="longest time to live a control command may carry (wall seconds)")
    lease_renew_interval_s: float = Field(default=5.0, gt=0,
                                          description="wall seconds between two renewals of the shared-folder lease")
    lease_stale_after_s: float = Field(default=60.0, gt=0,
                                       description="a lease whose heartbeat is older than this may be taken over")
    lease_settle_s: float = Field(default=1.0, ge=0,
                                  description="wall seconds a new owner waits before confirming its lease")

    @model_validator(mode="after")
    def _lease_sane(self) -> ExecutorConfig:
        if self.lease_stale_after_s < 3 * self.lease_renew_interval_s:
            raise ValueError("executor.lease_stale_after_s must be at least 3 x lease_renew_interval_s")
        return self


class PaperConfig(_Section):
    initial_cash: Money = Decimal("1000000")
    initial_positions: dict[str, int] = Field(default_factory=dict)
    commission_rate: Money = Decimal("0.0001")
    commission_min: Money = Decimal("0")
    partial_fill_ratio: float = Field(default=0.0, ge=0, le=1)
    reject_ratio: float = Field(default=0.0, ge=0, le=1)
    latency_quotes: int = Field(default=0, ge=0, description="quotes an order waits before it can fill")
    seed: int = 7


class XtQuantConfig(_Section):
    """MiniQMT (xtquant) connection, used by ``--broker xtquant`` (executor and producer)."""

    userdata_path: str = Field(default="", description="MiniQMT's userdata_mini folder on the Windows machine")
    account_id: str = Field(default="", description="the stock account (资金账号) to trade")
    session_id_base: int = Field(default=100_000, ge=1, le=1_000_000_000,
                                 description="session ids start here; every connection attempt takes a new one")
    strategy_name: str = Field(default="gridbridge", min_length=1, max_length=24)
    reconnect_backoff_s: list[float] = Field(default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 30.0], min_length=1,
                                             description="waits between reconnect attempts; the last one repeats")
    callback_deadline_s: float = Field(default=10.0, gt=0,
                                       description="an order with no callback this long is looked up")
    call_timeout_s: float = Field(default=5.0, gt=0, le=120,
                                  description="longest wall-time wait for any MiniQMT call; past it the outcome is "
                                              "unknown, the session is dropped and trade health is lost")
    producer_interval_s: float = Field(default=3.0, gt=0, description="producer cadence (wall seconds)")
    bars_count: int = Field(default=300, ge=1, le=2000, description="recent 1-minute bars published per code")

    @model_validator(mode="after")
    def _sane(self) -> XtQuantConfig:
        if any(b < 0 for b in self.reconnect_backoff_s):
            raise ValueError("xtquant.reconnect_backoff_s must not be negative")
        return self


class NodeConfig(_Section):
    signal_ttl_s: float = Field(default=300.0, gt=0, description="market seconds a node's signal stays valid")
    stale_after_s: float = Field(default=120.0, gt=0, description="wall seconds before an unchanged file is stale")
    max_quote_ahead_s: float | None = Field(
        default=300.0, gt=0, description="quotes and bars stamped further ahead of the wall clock are refused and "
        "alerted (the node's clock never follows them); null turns the check off")
    poll_interval_s: float = Field(default=0.05, gt=0)
    # What DEGRADED means for the grid, flat here because settings sits below mac.grid:
    # mac.grid.risk_policy.risk_policy_from_config turns these two into its GridRiskPolicy.
    degraded_action: Literal["widen", "block_layer0"] = Field(
        default="widen", description="DEGRADED: widen the buy step, or refuse layer-0 buys (no new cycle)"
    )
    degraded_step_multiplier: float = Field(default=1.5, ge=1.0, description="DEGRADED + widen: buy step x this")


class GridbridgeConfig(_Section):
    vault: VaultConfig = Field(default_factory=VaultConfig)
    market: MarketConfig = Field(default_factory=MarketConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    paper: PaperConfig = Field(default_factory=PaperConfig)
    broker: Literal["paper", "xtquant"] = "paper"
    node: NodeConfig = Field(default_factory=NodeConfig)
    xtquant: XtQuantConfig = Field(default_factory=XtQuantConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    gate: GateConfig = Field(
        # The ETF grid trades in bursts, about 0.2-0.7 fills a trading day over years, with quiet months
        # when the market runs away from the anchor: the floors are half the lowest whole-run rate of
        # realistic 5-year backtests (docs/risk.md, "Gate"); the risk KRIs are the kernel's.
        default_factory=lambda: GateConfig(min_signals_per_day=Decimal("0.10"), min_fills_per_day=Decimal("0.10"))
    )
    grid: GridSection = Field(
        default_factory=GridSection,
        description="grid parameter overrides: top-level keys for every symbol, a code key for one symbol "
        "(settings.grid_section; settings.resolve.grid_params applies them)",
    )

    @property
    def codes(self) -> tuple[str, ...]:
        return self.vault.codes

    @model_validator(mode="after")
    def _every_code_has_a_session_table(self) -> GridbridgeConfig:
        missing = sorted({c.rsplit(".", 1)[-1] for c in self.codes} - set(self.market.sessions))
        if missing:
            raise ValueError(f"market.sessions has no table for exchange(s) {missing} of the configured codes")
        return self

    @model_validator(mode="after")
    def _grid_resolves_for_every_symbol(self) -> GridbridgeConfig:
        # Rules across parameters (weights per layer, hysteresis) hold only for the resolved whole; a lazy
        # import because settings.resolve builds on this module.
        from settings.resolve import grid_params_by_code

        grid_params_by_code(self, TUNED_CODES)
        return self


def load_config(path: Path | None) -> GridbridgeConfig:
    """Load and validate the config file; ``None`` gives the defaults. Raises ``ConfigError``."""
    if path is None:
        return GridbridgeConfig()
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
    try:
        return GridbridgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"config {path} is invalid: {exc}") from exc
