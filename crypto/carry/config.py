"""The carry engine's configuration: four validated sections, ``account``, ``instruments``, ``strategy`` and
``risk``, read from one JSON file holding the four sections or from a folder of four JSON files
(``account.json``, ``instruments.json``, ``strategy.json``, ``risk.json``).

Every fraction is a Decimal (0.0001 = 0.01 %). Cross-field rules live in named validators and raise one
``CarryConfigError`` whose ``code`` is machine-readable.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

D = Decimal
MAX_LEVERAGE = D(3)  # the red line: never above 3x, whatever a section says


class CarryConfigError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountConfig(_Model):
    venue: Literal["okx", "okx-fake"] = "okx"
    # Keys come from the environment: {prefix}_API_KEY, {prefix}_SECRET, {prefix}_PASSPHRASE (never a file
    # in the config, never a log line).
    credentials_prefix: str = "OKX"
    base_url: str | None = None  # the local exchange's URL (okx-fake); None = the venue's own
    state_dir: str = "state/carry"
    webhook_url: str | None = None  # loopback only (crypto.carry.notify)


class InstrumentConfig(_Model):
    symbol: str  # the perp, ccxt unified: BTC/USDT:USDT
    spot_symbol: str  # BTC/USDT
    venue_id: str = "BTC-USDT-SWAP"
    contract_size: Decimal = D("0.01")  # base units per contract
    qty_step: Decimal = D("0.0001")  # base units both legs can trade (perp lot x contract size)
    min_qty: Decimal = D("0.0001")
    tick: Decimal = D("0.1")
    spot_taker_fee: Decimal = D("0.001")  # OKX regular tier
    perp_taker_fee: Decimal = D("0.0005")
    perp_maker_fee: Decimal = D("0.0002")  # the grid layer's resting orders
    maintenance_margin_rate: Decimal = D("0.004")

    @model_validator(mode="after")
    def _positive(self) -> InstrumentConfig:
        for name in ("contract_size", "qty_step", "min_qty", "tick"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.qty_step % self.contract_size and self.contract_size % self.qty_step:
            raise ValueError("qty_step and contract_size must divide one another")
        return self


class InstrumentsConfig(_Model):
    pairs: tuple[InstrumentConfig, ...] = (
        InstrumentConfig(symbol="BTC/USDT:USDT", spot_symbol="BTC/USDT", venue_id="BTC-USDT-SWAP"),
    )

    @model_validator(mode="after")
    def _unique(self) -> InstrumentsConfig:
        if not self.pairs:
            raise ValueError("at least one pair")
        symbols = [p.symbol for p in self.pairs]
        if len(set(symbols)) != len(symbols):
            raise ValueError("a perp appears twice")
        return self

    def pair(self, symbol: str) -> InstrumentConfig:
        for p in self.pairs:
            if p.symbol == symbol or p.venue_id == symbol:
                return p
        raise CarryConfigError("UNKNOWN_PAIR", symbol)


class GridConfig(_Model):
    """The optional second layer (``crypto.carry.grid``): an ADX-filtered neutral grid on the perp. Off by
    default; backtest only (the live engine refuses it)."""

    enabled: bool = False
    capital_fraction: Decimal = D("0.30")  # at most 30 % of the capital, as margin for the fullest position
    levels: int = Field(default=10, ge=2, le=200)
    range_pct: Decimal = D("0.05")  # levels over +-5 % around the start price; leaving the range = the stop
    adx_max: Decimal = D("25")
    adx_period: int = Field(default=14, ge=2)

    @model_validator(mode="after")
    def _cap(self) -> GridConfig:
        if not (0 < self.capital_fraction <= D("0.30")):
            raise ValueError("grid capital_fraction must be in (0, 0.30]")
        if not (0 < self.range_pct < 1):
            raise ValueError("grid range_pct must be in (0, 1)")
        return self


class StrategyConfig(_Model):
    capital_usdt: Decimal = D("10000")  # per pair: spot cost + perp margin + reserve
    reserve_fraction: Decimal = D("0.25")  # kept in the funding account for top-ups
    leverage: Decimal = D("2")
    min_rate: Decimal = D("0.0001")  # 0.01 % per period: the open window's floor
    max_rate: Decimal = D("0.01")  # 1 % per period: above it the rate is a squeeze, not carry
    horizon_periods: int = Field(default=90, ge=1)  # expected funding = rate x horizon (30 days at 8 h)
    basis_cost_buffer: Decimal = D("0.0005")  # fraction of notional kept for the basis at exit
    slippage: Decimal = D("0.0002")  # per leg per trade, fraction of price
    negative_periods_to_close: int = Field(default=3, ge=1)
    take_profit: Decimal = D("0.05")  # +5 % of capital committed
    stop_loss: Decimal = D("0.02")  # -2 % of capital committed
    rebalance_gap: Decimal = D("0.01")  # 1 % size gap between the legs
    leg_unwind_ms: int = Field(default=5_000, ge=100)  # a lone first leg is unwound within this
    naked_exposure_limit: Decimal = D("0.01")  # 1 % of the pair's notional
    scan_ms: int = Field(default=300_000, ge=1_000)  # 5 min
    risk_ms: int = Field(default=3_600_000, ge=1_000)  # 1 h
    grid: GridConfig = GridConfig()

    @model_validator(mode="after")
    def _rules(self) -> StrategyConfig:
        if self.leverage <= 0 or self.leverage > MAX_LEVERAGE:
            raise ValueError(f"leverage must be in (0, {MAX_LEVERAGE}]")
        if not (0 < self.min_rate < self.max_rate):
            raise ValueError("need 0 < min_rate < max_rate")
        if not (0 <= self.reserve_fraction < 1):
            raise ValueError("reserve_fraction in [0, 1)")
        if self.capital_usdt <= 0 or self.take_profit <= 0 or self.stop_loss <= 0:
            raise ValueError("capital, take_profit and stop_loss must be > 0")
        return self


class RiskConfig(_Model):
    topup_health: Decimal = D("0.80")  # margin health below 80 %: add margin
    topup_target: Decimal = D("1.00")  # ... back to 100 %
    close_health: Decimal = D("0.50")  # below 50 %: close everything
    min_open_health: Decimal = D("0.90")  # an open needs the account's pairs above this
    # The venue-side disaster stop on the short (a reduce-only stop-market at the mark where health would
    # be this low): the red line "no position without a stop", for when the engine itself is down.
    disaster_stop_health: Decimal = D("0.10")
    topups_enabled: bool = True
    # ... and when the short's liquidation distance falls under 25 %, back to 35 % (a 20 % candle in minutes
    # happens; health against the opening margin alone thins the cushion after a long rally).
    topup_liq_distance: Decimal = D("0.25")
    topup_liq_target: Decimal = D("0.35")
    max_consecutive_losses: int = Field(default=3, ge=1)
    max_daily_loss_usdt: Decimal = D("500")
    max_book_slippage: Decimal = D("0.002")  # a leg refused if walking the book costs more
    spike_move: Decimal = D("0.02")  # spike filter: a 2 % move within the spike window freezes opens
    spike_window_ms: int = 300_000
    max_error_rate: Decimal = D("0.2")  # API errors / calls over the window -> REDUCE_ONLY
    error_window: int = Field(default=50, ge=5)
    max_basis: Decimal = D("0.01")  # the perp more than 1 % away from spot: no open (basis cost)

    @model_validator(mode="after")
    def _order(self) -> RiskConfig:
        if not (0 < self.close_health < self.topup_health < self.topup_target):
            raise ValueError("need 0 < close_health < topup_health < topup_target")
        if not (0 < self.disaster_stop_health < self.close_health):
            raise ValueError("need 0 < disaster_stop_health < close_health")
        if not (0 < self.topup_liq_distance < self.topup_liq_target):
            raise ValueError("need 0 < topup_liq_distance < topup_liq_target")
        if self.max_daily_loss_usdt <= 0:
            raise ValueError("max_daily_loss_usdt must be > 0")
        return self


class CarryConfig(_Model):
    account: AccountConfig = AccountConfig()
    instruments: InstrumentsConfig = InstrumentsConfig()
    strategy: StrategyConfig = StrategyConfig()
    risk: RiskConfig = RiskConfig()


SECTIONS = ("account", "instruments", "strategy", "risk")


def load_config(path: Path | str, require_all: bool = False) -> CarryConfig:
    """One JSON file with the four sections, or a folder of ``<section>.json`` files. With ``require_all``
    every section must be present (``bootstrap`` refuses a half-written config)."""
    path = Path(path)
    raw: dict[str, Any] = {}
    try:
        if path.is_dir():
            for name in SECTIONS:
                f = path / f"{name}.json"
                if f.exists():
                    raw[name] = json.loads(f.read_text())
        else:
            raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise CarryConfigError("CONFIG_NOT_FOUND", str(path)) from None
    except ValueError as exc:
        raise CarryConfigError("CONFIG_NOT_JSON", f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise CarryConfigError("CONFIG_SHAPE", "the config is a JSON object of sections")
    missing = [s for s in SECTIONS if s not in raw]
    if require_all and missing:
        raise CarryConfigError("CONFIG_INCOMPLETE", f"missing sections: {missing}")
    try:
        return CarryConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()))
        raise CarryConfigError("CONFIG_INVALID", f"{where}: {first.get('msg')}") from None


def write_config(cfg: CarryConfig, folder: Path | str) -> None:
    """The four section files (used by ``bootstrap --init`` and the tests)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SECTIONS:
        section = getattr(cfg, name)
        (folder / f"{name}.json").write_text(json.dumps(section.model_dump(mode="json"), indent=2) + "\n")
