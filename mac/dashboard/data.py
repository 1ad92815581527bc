"""Everything the dashboard shows, loaded and joined from files: no streamlit here, and nothing raises.

The page asks for one ``Snapshot``: the live shared folder (``load_live``) or a point in a recorded run
(``load_replay(...).snapshot_at(t)``: a dry-run folder or a backtest output folder). Each shared file is
parsed by ``parse_file(kind, path)``, which never raises: a missing, partial or invalid file becomes a
``Parsed`` with status ``MISSING`` / ``INVALID`` and the reason, and ``Memory`` keeps the last good view
so the page can keep showing it under a banner. The app wraps ``parse_file`` in ``st.cache_data`` keyed on
the file's mtime and size, so an unchanged file is never parsed twice.

The penalty state is never re-derived here by hand: ``analyse_penalty`` walks the utilisation history
through ``mac.grid.core.penalty_after``, the one definition of the hysteresis rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mac.grid.core import OPEN, PENDING_BUY, penalty_after
from mac.grid.ladder import NextBuy, cooling_bars_left, next_buy, take_profit_price
from mac.grid.params import CompiledParams, compile_params, default_params
from settings.config import GridbridgeConfig
from shared_schema.heartbeat import executor_down_message, executor_silence_s
from shared_schema.ledger_math import utilization
from shared_schema.models import (
    DESIGN_SYMBOLS,
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    Allocation,
    PoolFile,
    QuoteFile,
    Reason,
    ReductionStatus,
    ResultFile,
    Signal,
    symbol_key,
)
from shared_schema.safe_json import safe_loads
from shared_schema.types import CST

CODES: tuple[str, ...] = DESIGN_SYMBOLS
NAMES = {
    "159201.SZ": "159201.SZ 自由现金流ETF (free-cash-flow)",
    "512890.SH": "512890.SH 红利低波ETF (dividend low-vol)",
}
SHORT_NAMES = {"159201.SZ": "159201 自由现金流", "512890.SH": "512890 红利低波"}
JOURNAL_FILE = "executor_journal.jsonl"
CONTROL_DIR = "control"
ACK_DIR = "control_ack"
DEFAULT_STALE_AFTER_S = 120.0
DEFAULT_ISSUER = "dashboard"

FRESH, MISSING, INVALID, STALE, OK = "FRESH", "MISSING", "INVALID", "STALE", "OK"
DOWN = "DOWN"  # the executor's heartbeat (shared_pool.json rewrites) stopped

# ------------------------------------------------------------------------------------- bilingual labels

REASON_LABELS: dict[str, tuple[str, str]] = {
    Reason.INVALID_SIGNAL.value: ("信号无效", "invalid signal"),
    Reason.DUPLICATE_ID_CONFLICT.value: ("重复编号冲突", "duplicate id with another payload"),
    Reason.INSUFFICIENT_CASH.value: ("资金不足", "broker cash below amount + fee"),
    Reason.NOMINAL_CAP.value: ("超出单品种上限", "symbol's nominal cap (200,000) reached"),
    Reason.POOL_RESERVE_15.value: ("触及15%备用金", "layer-0 buy would break the 15% reserve"),
    Reason.POOL_EXHAUSTED.value: ("资金池用尽", "physical pool (300,000) exhausted"),
    Reason.NOT_SELLABLE_T1.value: ("T+1不可卖", "not sellable today (T+1)"),
    Reason.OUTSIDE_SESSION.value: ("非交易时段", "outside the trading session"),
    Reason.PRICE_LIMIT.value: ("超出涨跌停", "outside the ±10% daily limit"),
    Reason.BROKER_REJECT.value: ("券商拒单", "refused by the broker"),
    Reason.ORDER_EXPIRED.value: ("委托过期", "order expired"),
    Reason.HALTED.value: ("已暂停交易", "kill switch: halted"),
    Reason.NO_QUOTE.value: ("无行情", "no quote for the code"),
    Reason.RISK_STATE.value: ("风控状态禁止", "risk state forbids opening"),
    Reason.RATE_LIMIT.value: ("频率限制", "rate limited"),
}
DETAIL_LABELS: dict[str, tuple[str, str]] = {
    "LOT_SIZE": ("非整百股", "shares not a multiple of 100"),
    "OFF_TICK": ("价格不在最小变动单位", "price off the 0.001 tick"),
    "UNKNOWN_CODE": ("未知代码", "unknown code"),
    "FUTURE_TIMESTAMP": ("时间戳在未来", "timestamp in the future"),
    "AMOUNT_BELOW_NOTIONAL": ("金额低于名义价值", "amount below price x shares"),
    "RELEASE_UNKNOWN": ("释放的买单未知", "released lot unknown"),
    "RELEASE_EMPTY": ("释放的买单已空", "released lot already empty"),
    "RELEASE_BUSY": ("释放的买单正在卖出", "released lot already in a sell"),
    "SIGNAL_ID_REUSED": ("信号编号重复使用", "signal_id reused"),
    "CLIENT_ORDER_ID_REUSED": ("委托编号重复使用", "client_order_id reused"),
    "OUTSIDE_DAILY_LIMIT": ("超出涨跌停", "outside the daily limit"),
    "ABOVE_CAN_USE_VOLUME": ("超过可用数量", "above can_use_volume"),
    "POSITIONS_UNKNOWN": ("持仓未知", "positions unknown"),
    "FORCE_HALT": ("强制暂停", "Force Halt"),
    "BROKER_CASH": ("券商可用资金不足", "broker cash"),
    "CASH_UNKNOWN": ("资金未知", "cash unknown"),
    "SIGNAL_EXPIRED": ("信号过期", "signal expired"),
}
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "PENDING": ("待处理", "waiting for the executor"),
    "ACCEPTED": ("已接受", "accepted"),
    "SENT": ("已报", "sent"),
    "PARTIAL": ("部分成交", "partly filled"),
    "FILLED": ("已成", "filled"),
    "CANCELLED": ("已撤", "cancelled"),
    "REJECTED": ("拒绝", "rejected"),
    "EXPIRED": ("过期", "expired"),
}
RISK_LABELS: dict[str, tuple[str, str]] = {
    "NORMAL": ("正常", "all clear"),
    "DEGRADED": ("降级", "thresholds x1.5, budget 50%"),
    "COOLDOWN": ("冷却", "no opening trades, reduce to 50%"),
    "REDUCE_ONLY": ("只减仓", "no opening trades"),
    "FUSE": ("熔断", "full close, manual Reset FUSE only"),
}


def reason_label(code: str | None) -> str:
    """``中文 / English`` for a reason or detail code ('' for none, the code itself when unknown)."""
    if not code:
        return ""
    zh, en = REASON_LABELS.get(code) or DETAIL_LABELS.get(code) or ("", code)
    return f"{zh} / {en}" if zh else en


# ------------------------------------------------------------------------------------------- time


def ms_to_naive_cst(ms: Any) -> Any:
    """Epoch ms (scalar or array) to naive China-time datetimes for chart axes."""
    return pd.to_datetime(np.asarray(ms, dtype="int64") + 8 * 3_600_000, unit="ms") if np.ndim(ms) else \
        pd.Timestamp(int(ms) + 8 * 3_600_000, unit="ms")


def to_naive_cst(ts: datetime | None) -> pd.Timestamp | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=CST)
    return pd.Timestamp(ts.astimezone(CST).replace(tzinfo=None))


def _parse_ts(text: Any) -> datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=CST)


# --------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Parsed:
    """One file's parse: ``value`` (None unless FRESH), ``status`` FRESH / MISSING / INVALID, ``error``."""

    value: Any
    status: str
    error: str = ""


def file_signature(path: Path | str) -> tuple[int, int]:
    """``(mtime_ns, size)``, or ``(0, -1)`` for a missing file: the cache key of a parse."""
    try:
        st = Path(path).stat()
    except OSError:
        return (0, -1)
    return (st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class NodeView:
    """A node's ``dashboard_state_<code>.json`` (what ``StrategyNode.dashboard_view`` writes)."""

    code: str
    updated_at: datetime | None
    last_bar_t: int
    penalty_on: bool
    anchor: float | None
    lots: tuple[dict[str, Any], ...]
    pending: tuple[str, ...]
    mismatch: str
    indicators: dict[str, float]
    counters: dict[str, int]
    events: tuple[dict[str, Any], ...]
    history: pd.DataFrame  # t (epoch ms), utilization, penalty_on (the node's flag)
    last_flat_index: int | None = None
    usable_index: int | None = None
    rsi: float | None = None


@dataclass(frozen=True)
class SignalsView:
    signals: tuple[Signal, ...]
    invalid_entries: int


def _model(model: type, data: bytes) -> Any:
    return model.model_validate_json(data)


def _node(data: bytes) -> NodeView:
    raw = safe_loads(data)
    if not isinstance(raw, dict) or "code" not in raw:
        raise ValueError("not a node state (no code)")
    hist = raw.get("history") or []
    arr = [(int(p[0]), float(p[1]), bool(p[2])) for p in hist if isinstance(p, list) and len(p) >= 3]
    history = pd.DataFrame(arr, columns=["t", "utilization", "penalty_on"])
    last_flat = usable = None
    rsi = None
    grid = raw.get("grid")
    if isinstance(grid, dict):
        last_flat = grid.get("last_flat_index")
        ind = grid.get("indicators") or {}
        usable = ind.get("usable")
        rsi = _rsi_of(ind)
    lots = tuple(lot for lot in raw.get("lots", []) if isinstance(lot, dict))
    return NodeView(
        code=str(raw["code"]),
        updated_at=_parse_ts(raw.get("updated_at")),
        last_bar_t=int(raw.get("last_bar_t") or 0),
        penalty_on=bool(raw.get("penalty_on")),
        anchor=raw.get("anchor"),
        lots=lots,
        pending=tuple(raw.get("pending", [])),
        mismatch=str(raw.get("mismatch") or ""),
        indicators={k: float(v) for k, v in (raw.get("indicators") or {}).items() if isinstance(v, int | float)},
        counters=dict(raw.get("counters") or {}),
        events=tuple(e for e in raw.get("events", []) if isinstance(e, dict)),
        history=history,
        last_flat_index=last_flat if isinstance(last_flat, int) else None,
        usable_index=usable if isinstance(usable, int) else None,
        rsi=rsi,
    )


def _rsi_of(ind: dict[str, Any]) -> float | None:
    def values(key: str) -> list[float]:
        v = ind.get(key)
        v = v.get("__tuple__") if isinstance(v, dict) else v
        return [float(x) for x in v] if isinstance(v, list) else []

    gains, losses = values("gains"), values("losses")
    if not gains or len(gains) != len(losses):
        return None
    g, lo = sum(gains) / len(gains), sum(losses) / len(losses)
    return 100.0 if lo == 0 else 100.0 - 100.0 / (1.0 + g / lo)


def _signals(data: bytes) -> SignalsView:
    raw = safe_loads(data)
    entries = raw.get("signals") if isinstance(raw, dict) and "signals" in raw else [raw]
    if not isinstance(entries, list):
        raise ValueError("signals is not a list")
    good, bad = [], 0
    for entry in entries:
        try:
            good.append(Signal.model_validate(entry))
        except (ValueError, TypeError):
            bad += 1
    return SignalsView(tuple(good), bad)


def _bars_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    cols = {c.lower().strip(): c for c in df.columns}
    out = pd.DataFrame({k: df[cols[k]] for k in ("time", "open", "high", "low", "close") if k in cols})
    if len(out.columns) != 5:
        raise ValueError(f"bar file {path.name} lacks time/open/high/low/close")
    out.columns = ["t", "o", "h", "l", "c"]
    return out


def _audit(path: Path) -> pd.DataFrame:
    from core.audit import ReadStats, read_log_events

    stats = ReadStats()
    rows = [
        {"ts": to_naive_cst(e.ts), "code": e.code.value if hasattr(e.code, "value") else str(e.code),
         "severity": getattr(e.severity, "value", str(e.severity)), "symbol": e.symbol or "", "cause": e.cause,
         "data": e.data}
        for e in read_log_events(path, stats=stats)  # rotated segments too
    ]
    df = pd.DataFrame(rows, columns=["ts", "code", "severity", "symbol", "cause", "data"])
    df.attrs["malformed"] = stats.malformed
    return df


def parse_file(kind: str, path: Path | str, config: Path | None = None) -> Parsed:
    """Parse one file of ``kind`` (quote, pool, result, signal, node, journal, audit, bars, trades, metrics).

    A journal is replayed under the run's ``config`` file (its vault limits and fee model; the defaults
    without one), as the executor booked it. Never raises: the outcome says FRESH with the value, MISSING,
    or INVALID with the first error.
    """
    path = Path(path)
    try:
        if kind in ("journal",):
            if not path.exists():
                return Parsed(None, MISSING, f"{path.name} is missing")
            try:
                run_config = load_run_config(config)
            except (OSError, ValueError) as exc:  # a guessed fee model would show figures the executor never had
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return Parsed(None, INVALID, f"{path.name} not replayed: {config} unreadable: {first[:200]}")
            return Parsed(replay_journal(path, run_config, load_params(config)), FRESH)
        if kind == "audit":
            if not path.exists():
                return Parsed(None, MISSING, f"{path.name} is missing")
            return Parsed(_audit(path), FRESH)
        if kind == "bars":
            return Parsed(_bars_csv(path), FRESH)
        if kind == "trades":
            return Parsed(pd.read_csv(path), FRESH)
        data = path.read_bytes()
    except FileNotFoundError:
        return Parsed(None, MISSING, f"{path.name} is missing")
    except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError) as exc:
        return Parsed(None, INVALID, f"{path.name} unreadable: {exc}")
    if not data.strip():
        return Parsed(None, INVALID, f"{path.name} is empty (partial write?)")
    try:
        if kind == "quote":
            value: Any = _model(QuoteFile, data)
        elif kind == "pool":
            value = _model(PoolFile, data)
        elif kind == "result":
            value = _model(ResultFile, data)
        elif kind == "signal":
            value = _signals(data)
        elif kind == "node":
            value = _node(data)
        elif kind == "metrics":
            value = safe_loads(data)
            if not isinstance(value, dict):
                raise ValueError("metrics is not an object")
        else:
            raise ValueError(f"unknown kind {kind}")
    except Exception as exc:  # noqa: BLE001 - any parse failure is a banner, never a crash
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Parsed(None, INVALID, f"{path.name} invalid: {first[:200]}")
    return Parsed(value, FRESH)


class ParseFn(Protocol):
    def __call__(self, kind: str, path: Path, config: Path | None = None) -> Parsed: ...


def cached_parse_key(kind: str, path: Path | str, config: Path | None = None) -> tuple[Any, ...]:
    """The cache key the app uses for ``parse_file``: an unchanged file (and config) is parsed once.

    ``(kind, path, mtime_ns, size, config, config mtime_ns, config size)``; ``size`` is -1 for a missing file.
    """
    conf = (str(config), *file_signature(config)) if config is not None else ("", 0, -1)
    return (kind, str(path), *file_signature(path), *conf)


def load_run_config(path: Path | None) -> GridbridgeConfig:
    """The run's config file (the defaults without one), read with the bounded JSON reader. Raises
    ``OSError`` or ``ValueError`` (``JsonRefused``, a validation error) for a file that cannot be used."""
    if path is None:
        return GridbridgeConfig()
    return GridbridgeConfig.model_validate(safe_loads(Path(path).read_bytes()))


# ------------------------------------------------------------------------------------ memory


@dataclass
class PoolPoint:
    t: datetime
    seq: int
    used: dict[str, Decimal]
    frozen: dict[str, Decimal]
    acc_alpha: dict[str, Decimal]
    utilization: float


@dataclass
class Memory:
    """What outlives one page run: the last good view of each file and the pool files seen this session."""

    last_good: dict[str, Any] = field(default_factory=dict)
    last_good_at: dict[str, datetime] = field(default_factory=dict)
    pool_points: list[PoolPoint] = field(default_factory=list)
    max_points: int = 200_000

    def record_pool(self, pool: PoolFile) -> None:
        if self.pool_points and self.pool_points[-1].seq == pool.seq:
            return
        t = pool.market_time or pool.updated_at
        self.pool_points.append(PoolPoint(t, pool.seq, _per_code(pool, "used"), _per_code(pool, "frozen"),
                                          _per_code(pool, "acc_alpha"), pool_utilization(pool)))
        if len(self.pool_points) > self.max_points:
            del self.pool_points[: len(self.pool_points) - self.max_points]


def pool_utilization(pool: PoolFile) -> float:
    """Utilisation from the pool file's exact amounts by the one shared function (the node and the vault
    call it too), never from the published ``utilization`` figure, which an older executor rounded."""
    committed = sum(_per_code(pool, "used").values(), Decimal(0)) + sum(_per_code(pool, "frozen").values(), Decimal(0))
    return utilization(committed, Decimal(pool.physical_pool))


def _per_code(pool: PoolFile, prefix: str) -> dict[str, Decimal]:
    return {c: Decimal(getattr(pool, f"{prefix}_{symbol_key(c)}")) for c in CODES}


# -------------------------------------------------------------------------------------- the views


@dataclass(frozen=True)
class FileHealth:
    name: str
    status: str  # OK / STALE / MISSING / INVALID
    age_s: float | None = None
    error: str = ""
    required: bool = True

    @property
    def is_problem(self) -> bool:
        return self.status != OK and self.required


@dataclass(frozen=True)
class PoolSummary:
    """The pool as the vault published it (or as a replay reconstructs it), exact yuan."""

    physical_pool: Decimal
    reserve_ratio: Decimal
    caps: dict[str, Decimal]
    used: dict[str, Decimal]
    frozen: dict[str, Decimal]
    acc_alpha: dict[str, Decimal]
    utilization: float
    risk_state: str = "NORMAL"
    halted: bool = False
    market_time: datetime | None = None
    seq: int | None = None
    allocations: dict[str, tuple[Allocation, ...]] = field(default_factory=dict)
    reduction: ReductionStatus | None = None  # the executor's forced reduction under way

    @property
    def committed(self) -> Decimal:
        return sum(self.used.values(), Decimal(0)) + sum(self.frozen.values(), Decimal(0))

    @property
    def free(self) -> Decimal:
        return self.physical_pool - self.committed

    @property
    def reserve_line(self) -> Decimal:
        """Committed amount at which a layer-0 buy would eat the reserve (85% of the pool by default)."""
        return self.physical_pool * (1 - self.reserve_ratio)

    @classmethod
    def of(cls, pool: PoolFile) -> PoolSummary:
        return cls(
            physical_pool=Decimal(pool.physical_pool),
            reserve_ratio=Decimal(pool.reserve_ratio),
            caps={c: Decimal(getattr(pool, f"nominal_cap_{symbol_key(c)}")) for c in CODES},
            used=_per_code(pool, "used"),
            frozen=_per_code(pool, "frozen"),
            acc_alpha=_per_code(pool, "acc_alpha"),
            utilization=pool_utilization(pool),
            risk_state=pool.risk_state,
            halted=pool.halted,
            market_time=pool.market_time,
            seq=pool.seq,
            allocations={c: tuple(getattr(pool, f"allocations_{symbol_key(c)}")) for c in CODES},
            reduction=pool.reduction,
        )


def reduction_text(reduction: ReductionStatus) -> str:
    """One line for the forced reduction the executor is carrying out (COOLDOWN or Force Reduce)."""
    goal = (f"selling oldest grid lots down to {reduction.target:,.2f}" if reduction.target is not None
            else "selling every sellable grid lot" if reduction.mode == "FORCE_REDUCE"
            else "waiting for the exposure at the cooldown's start")
    parts = [f"forced reduction 强制减仓 {reduction.mode}: grid exposure {reduction.exposure:,.2f}, {goal}"]
    if reduction.selling:
        parts.append(f"selling 卖出中 {', '.join(reduction.selling)}")
    if reduction.held_back:
        parts.append("held back 暂缓 " + ", ".join(f"{lot} {why}" for lot, why in reduction.held_back.items()))
    return "; ".join(parts) + ". The base position is never sold. 底仓不动"


@dataclass(frozen=True)
class PenaltyAnalysis:
    """The step penalty over the utilisation history, walked through ``penalty_after``."""

    code: str
    series: pd.DataFrame  # t (epoch ms), utilization, penalty (computed)
    switches: tuple[tuple[int, bool, float], ...]  # (t, now_on, utilisation)
    on: bool
    since_t: int | None
    utilization: float | None  # the last point's
    node_flag: bool | None  # what the node persisted
    next_on: bool | None  # penalty_after(on, pool utilisation now): what the next bar does
    pool_utilization: float | None
    trigger: float
    release: float

    @property
    def agrees_with_node(self) -> bool:
        return self.node_flag is None or self.node_flag == self.on

    def rule_text(self) -> str:
        """The state and the rule that holds it, e.g. 'ON since 10:42, utilisation 87.0%: stays on until below 85%'."""
        since = "" if self.since_t is None else f" since {ms_to_naive_cst(self.since_t):%m-%d %H:%M}"
        u = self.utilization if self.pool_utilization is None else self.pool_utilization
        u_text = "n/a" if u is None else f"{u:.1%}"
        if self.on:
            return (f"ON 开启{since}, utilisation {u_text}: stays on until utilisation falls below "
                    f"{self.release:.0%} (惩罚保持至利用率低于{self.release:.0%})")
        return (f"OFF 关闭{since}, utilisation {u_text}: switches on only above {self.trigger:.0%} "
                f"(利用率高于{self.trigger:.0%}才开启)")

    def why_text(self) -> str:
        if not self.switches:
            return "no switch in the recorded history"
        t, on, u = self.switches[-1]
        edge = f"above {self.trigger:.0%}" if on else f"below {self.release:.0%}"
        return f"last switch {'ON' if on else 'OFF'} at {ms_to_naive_cst(t):%m-%d %H:%M}: utilisation {u:.2%} {edge}"


def analyse_penalty(
    code: str,
    history: pd.DataFrame,
    trigger: float,
    release: float,
    node_flag: bool | None = None,
    pool_utilization: float | None = None,
) -> PenaltyAnalysis:
    """Walk ``history`` (t, utilization[, penalty_on]) through ``penalty_after``.

    The grid starts with the penalty off; when the history has a ``penalty_on`` column (a node's history,
    possibly truncated) the state before the window is the node's flag at its first point.
    """
    ts = history["t"].to_numpy(dtype="int64") if len(history) else np.zeros(0, dtype="int64")
    us = history["utilization"].to_numpy(dtype="float64") if len(history) else np.zeros(0)
    on = False
    start = 0
    if len(history) and "penalty_on" in history.columns:
        on = bool(history["penalty_on"].iloc[0])
        start = 1
    states = np.zeros(len(ts), dtype=bool)
    if len(ts):
        states[0] = on
    switches: list[tuple[int, bool, float]] = []
    since: int | None = int(ts[0]) if len(ts) and on else None
    for i in range(start, len(ts)):
        now_on = penalty_after(on, float(us[i]), trigger, release)
        if now_on != on:
            switches.append((int(ts[i]), now_on, float(us[i])))
            since = int(ts[i])
            on = now_on
        states[i] = on
    if since is None and len(ts):
        since = int(ts[0])
    series = pd.DataFrame({"t": ts, "utilization": us, "penalty": states})
    next_on = None if pool_utilization is None else penalty_after(on, pool_utilization, trigger, release)
    return PenaltyAnalysis(code, series, tuple(switches), on, since, float(us[-1]) if len(us) else None,
                           node_flag, next_on, pool_utilization, trigger, release)


@dataclass(frozen=True)
class LotView:
    client_order_id: str
    layer_index: int
    shares: int
    buy_price: float
    take_profit: float
    status: str


@dataclass(frozen=True)
class LadderView:
    """One symbol's grid: open lots with take-profit prices, the next buy, indicators and pauses."""

    code: str
    last_price: float | None
    lots: tuple[LotView, ...]
    next_buy: NextBuy | None
    atr: float | None
    atr_avg: float | None
    slope: float | None
    trend: str
    breaker_on: bool
    cooling_left: int | None
    penalty_on: bool
    mismatch: str
    approximate: bool = False  # replay: reconstructed from the vault, not the node's own state


def build_ladder(
    code: str,
    node: NodeView | None,
    params: CompiledParams,
    last_price: float | None,
    lots_override: Iterable[LotView] | None = None,
    penalty_on: bool | None = None,
) -> LadderView:
    """The ladder from a node's persisted state (or replayed lots), prices by ``mac.grid.ladder``."""
    ind = node.indicators if node else {}
    slope = ind.get("slope")
    pen = node.penalty_on if penalty_on is None and node else bool(penalty_on)
    if lots_override is not None:
        lots = tuple(lots_override)
        raw_lots: list[dict[str, Any]] = [{"status": lot.status} for lot in lots]
    else:
        raw_lots = list(node.lots) if node else []
        lots = tuple(
            LotView(str(lot.get("client_order_id", "")), int(lot.get("layer_index", 0)), int(lot.get("shares", 0)),
                    float(lot.get("buy_price", 0.0)), take_profit_price(float(lot.get("buy_price", 0.0)), slope, params),
                    str(lot.get("status", OPEN)))
            for lot in raw_lots
        )
    nb = next_buy(node.anchor if node else None, ind, raw_lots, params, pen) if node else None
    cooling = None
    if node is not None and node.usable_index is not None and node.last_flat_index is not None:
        cooling = cooling_bars_left(nb.n_lots if nb else len(lots), node.usable_index, node.last_flat_index,
                                    node.rsi if node.rsi is not None else 50.0, params)
    return LadderView(
        code=code,
        last_price=last_price,
        lots=lots,
        next_buy=nb,
        atr=ind.get("atr"),
        atr_avg=ind.get("atr_avg"),
        slope=slope,
        trend=nb.trend if nb else "FLAT",
        breaker_on=nb.breaker_on if nb else False,
        cooling_left=cooling,
        penalty_on=pen,
        mismatch=node.mismatch if node else "",
        approximate=lots_override is not None,
    )


# ------------------------------------------------------------------------------- orders table

ORDER_COLUMNS = [
    "signal_id", "code", "direction", "layer_index", "price", "shares", "amount", "created_at", "status",
    "status_label", "reason", "detail", "reason_label", "message", "filled_shares", "avg_price", "updated_at",
    "source",
]


def join_orders(
    signals: SignalsView | None,
    results: ResultFile | None,
    journal_signals: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per signal_id: the signal's fields joined with its result, plus the input rejections.

    Signals leave ``order_signal.json`` once final, so a result's price and layer come from the executor's
    journal when it is available.
    """
    rows: dict[str, dict[str, Any]] = {}
    journal_signals = journal_signals or {}

    def base(sid: str) -> dict[str, Any]:
        return rows.setdefault(sid, {c: None for c in ORDER_COLUMNS} | {"signal_id": sid})

    for sid, payload in journal_signals.items():
        row = base(sid)
        row.update(code=payload.get("code"), direction=payload.get("direction"),
                   layer_index=payload.get("layer_index"), price=payload.get("price"),
                   shares=payload.get("shares"), amount=payload.get("amount"),
                   created_at=to_naive_cst(_parse_ts(payload.get("created_at"))), source="journal")
    if signals is not None:
        for sig in signals.signals:
            row = base(sig.signal_id)
            row.update(code=sig.code, direction=sig.direction.value, layer_index=sig.layer_index,
                       price=float(sig.price), shares=sig.shares, amount=float(sig.amount),
                       created_at=to_naive_cst(sig.created_at), source="signal")
            row.setdefault("status", None)
    if results is not None:
        for sid, res in results.results.items():
            row = base(sid)
            row.update(status=res.status.value, reason=res.reason.value if res.reason else "", detail=res.detail,
                       message=res.message, filled_shares=res.filled_shares, avg_price=res.avg_price or None,
                       updated_at=to_naive_cst(res.updated_at))
            row["code"] = row["code"] or res.code
            row["direction"] = row["direction"] or (res.direction.value if res.direction else None)
            row["shares"] = row["shares"] or res.requested_shares
            row["created_at"] = row["created_at"] or to_naive_cst(res.signal_created_at or res.received_at)
            row["source"] = row["source"] or "result"
        for i, rej in enumerate(results.input_rejections):
            sid = f"{rej.signal_id or rej.key}#input{i}"
            row = base(sid)
            row.update(status="REJECTED", reason=rej.reason.value, detail=rej.detail, message=rej.message,
                       updated_at=to_naive_cst(rej.at), created_at=to_naive_cst(rej.at), source="input rejection")
    for row in rows.values():
        if not row["status"]:
            row["status"] = "PENDING"
        zh, en = STATUS_LABELS.get(row["status"], ("", row["status"]))
        row["status_label"] = f"{zh} / {en}" if zh else en
        row["reason_label"] = " · ".join(x for x in (reason_label(row["reason"]), reason_label(row["detail"])) if x)
        row["reason"] = row["reason"] or ""
        row["detail"] = row["detail"] or ""
    df = pd.DataFrame(list(rows.values()), columns=ORDER_COLUMNS)
    if len(df):
        df = df.sort_values("created_at", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return df


def filter_orders(df: pd.DataFrame, codes: Iterable[str] = (), statuses: Iterable[str] = (),
                  reasons: Iterable[str] = ()) -> pd.DataFrame:
    """Rows matching every non-empty filter."""
    out = df
    codes, statuses, reasons = list(codes), list(statuses), list(reasons)
    if codes:
        out = out[out["code"].isin(codes)]
    if statuses:
        out = out[out["status"].isin(statuses)]
    if reasons:
        out = out[out["reason"].isin(reasons)]
    return out


# ----------------------------------------------------------------------------- pool history

POOL_HISTORY_COLUMNS = ["t"] + [f"{p}_{symbol_key(c)}" for p in ("used", "frozen", "alpha") for c in CODES] + [
    "utilization"]


@dataclass(frozen=True)
class PoolHistory:
    """The pool over time: one row per change (t naive CST), and the open lots after each row."""

    frame: pd.DataFrame  # POOL_HISTORY_COLUMNS
    lots: tuple[dict[str, tuple[LotView, ...]], ...] = ()
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)  # journaled signal payloads
    physical_pool: Decimal = Decimal(300000)
    source: str = ""

    def at(self, t: pd.Timestamp | None) -> int | None:
        """Index of the last row at or before ``t`` (None when the history starts later)."""
        if not len(self.frame):
            return None
        if t is None:
            return len(self.frame) - 1
        i = int(np.searchsorted(self.frame["t"].to_numpy(), np.datetime64(t), side="right")) - 1
        return i if i >= 0 else None


def _vault_row(t: datetime, vault: Any) -> dict[str, Any]:
    used, frozen = vault.get_used_map(), vault.get_frozen_map()
    row: dict[str, Any] = {"t": to_naive_cst(t)}
    for c in CODES:
        k = symbol_key(c)
        row[f"used_{k}"] = used.get(c, 0) / 100
        row[f"frozen_{k}"] = frozen.get(c, 0) / 100
        row[f"alpha_{k}"] = vault.acc_alpha.get(c, 0) / 100
    row["utilization"] = vault.utilization()
    return row


def _vault_lots(vault: Any, params: dict[str, CompiledParams]) -> dict[str, tuple[LotView, ...]]:
    out: dict[str, list[LotView]] = {c: [] for c in CODES}
    for a in vault.allocations.values():
        if a.symbol not in out or not a.is_open:
            continue
        shares = a.holding_shares if a.filled_shares else (a.requested_shares or 0)
        held = a.filled_shares - a.released_shares
        price = (a.filled_value / a.filled_shares / 100) if a.filled_shares else (
            a.amount / 100 / a.requested_shares if a.requested_shares else 0.0)
        status = PENDING_BUY if a.frozen > 0 and not held else OPEN
        tp = take_profit_price(price, 0.0, params[a.symbol]) if a.symbol in params else 0.0
        out[a.symbol].append(LotView(a.client_order_id, a.layer_index, int(shares), float(price), tp, status))
    return {c: tuple(v) for c, v in out.items()}


def replay_journal(path: Path, config: GridbridgeConfig | None = None,
                   params: dict[str, CompiledParams] | None = None) -> PoolHistory:
    """Replay the executor's journal (read-only) through the executor's own state and vault.

    The vault is the one the executor builds from the run's ``config`` (``build_vault``: its limits and fee
    model; the defaults when None), so approvals are re-judged and fees the broker did not price are
    estimated exactly as the executor did. Gives the pool over time (used/frozen/acc_alpha per symbol after
    every change), the open lots after each change and every journaled signal payload. A torn last line is
    ignored; the file is never written (the executor owns it).
    """
    from core.journal import read_records
    from windows.executor import build_vault
    from windows.executor_state import ExecutorState

    config = config or GridbridgeConfig()
    pool = config.vault.physical_pool
    params = params or {c: compile_params(default_params(c)) for c in CODES}
    state = ExecutorState(build_vault(config))
    rows: list[dict[str, Any]] = []
    lots: list[dict[str, tuple[LotView, ...]]] = []
    signals: dict[str, dict[str, Any]] = {}
    last_key: tuple | None = None
    for record, _size in read_records(path):
        kind = record.get("k")
        if kind == "signal" and isinstance(record.get("sig"), dict):
            signals[record["id"]] = record["sig"]
        try:
            state.apply(record)
        except Exception:  # noqa: BLE001 - a record this build cannot apply: keep what we have
            continue
        if kind not in ("alloc", "update", "cancel_req", "lost", "result", "snapshot"):  # snapshot: a compacted start
            continue
        v = state.vault
        key = (tuple(v.get_used_map().values()), tuple(v.get_frozen_map().values()), tuple(v.acc_alpha.values()))
        if key == last_key:
            continue
        last_key = key
        t = _parse_ts(record.get("t")) or datetime.now(CST)
        rows.append(_vault_row(t, v))
        lots.append(_vault_lots(v, params))
    frame = pd.DataFrame(rows, columns=POOL_HISTORY_COLUMNS)
    return PoolHistory(frame, tuple(lots), signals, pool, "executor journal")


def history_from_trades(trades: pd.DataFrame, params: dict[str, CompiledParams],
                        physical_pool: Decimal = Decimal(300000)) -> PoolHistory:
    """A backtest's ``trades.csv`` as a pool history: lots matched by shares, alpha net of commission.

    A take-profit sells one whole lot, so a sell is matched to the cheapest open lot of the same size
    (several lots sold together by a stop are matched greedily). Fees use the params' commission model.
    """
    open_lots: dict[str, list[LotView]] = {c: [] for c in CODES}
    used = {c: Decimal(0) for c in CODES}
    alpha = {c: Decimal(0) for c in CODES}
    fees_open: dict[str, Decimal] = {}
    rows: list[dict[str, Any]] = []
    lots: list[dict[str, tuple[LotView, ...]]] = []
    for i, tr in enumerate(trades.itertuples(index=False)):
        code = str(tr.code)
        if code not in used:
            continue
        cp = params[code]
        price = Decimal(str(tr.price))
        shares = int(tr.shares)
        value = price * shares
        fee = max(cp.commission_rate * value, cp.commission_min).quantize(Decimal("0.01"))
        if tr.side == "BUY":
            coid = f"T{i}"
            open_lots[code].append(LotView(coid, len(open_lots[code]), shares, float(price),
                                           take_profit_price(float(price), 0.0, cp), OPEN))
            used[code] += value
            fees_open[coid] = fee
        else:
            left = shares
            chosen = sorted((lot for lot in open_lots[code] if lot.shares == shares), key=lambda lot: lot.buy_price)
            chosen = chosen[:1] or sorted(open_lots[code], key=lambda lot: lot.buy_price)
            for lot in chosen:
                if left <= 0:
                    break
                take = min(left, lot.shares)
                cost = Decimal(str(lot.buy_price)) * take
                frac = Decimal(take) / lot.shares
                buy_fee = fees_open.get(lot.client_order_id, Decimal(0)) * frac
                alpha[code] += price * take - cost - buy_fee
                used[code] -= cost
                open_lots[code].remove(lot)
                if take < lot.shares:
                    open_lots[code].append(replace(lot, shares=lot.shares - take))
                left -= take
            alpha[code] -= fee
        row: dict[str, Any] = {"t": ms_to_naive_cst(int(tr.time))}
        for c in CODES:
            k = symbol_key(c)
            row[f"used_{k}"] = float(used[c])
            row[f"frozen_{k}"] = 0.0
            row[f"alpha_{k}"] = float(alpha[c].quantize(Decimal("0.01")))
        row["utilization"] = utilization(sum(used.values(), Decimal(0)), Decimal(physical_pool))
        rows.append(row)
        lots.append({c: tuple(v) for c, v in open_lots.items()})
    return PoolHistory(pd.DataFrame(rows, columns=POOL_HISTORY_COLUMNS), tuple(lots), {}, physical_pool,
                       "backtest trades")


def alpha_frame(history: PoolHistory | None, memory_points: Iterable[PoolPoint] = (),
                pool: PoolSummary | None = None, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """acc_alpha per symbol over time (t, alpha_159201, alpha_512890), merged from every source we have."""
    cols = ["t"] + [f"alpha_{symbol_key(c)}" for c in CODES]
    parts = []
    if history is not None and len(history.frame):
        parts.append(history.frame[cols])
    mem = [{"t": to_naive_cst(p.t), **{f"alpha_{symbol_key(c)}": float(p.acc_alpha[c]) for c in CODES}}
           for p in memory_points]
    if mem:
        parts.append(pd.DataFrame(mem, columns=cols))
    if pool is not None and pool.market_time is not None and until is None:
        parts.append(pd.DataFrame([{"t": to_naive_cst(pool.market_time),
                                    **{f"alpha_{symbol_key(c)}": float(pool.acc_alpha[c]) for c in CODES}}],
                                  columns=cols))
    if not parts:
        return pd.DataFrame(columns=cols)
    df = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else parts[0]
    df = df.dropna(subset=["t"]).sort_values("t", kind="stable").drop_duplicates(keep="last")
    if until is not None:
        df = df[df["t"] <= until]
    return df.reset_index(drop=True)


def downsample(df: pd.DataFrame, column: str, max_points: int = 2000, keep: Iterable[int] = ()) -> pd.DataFrame:
    """At most ~``max_points`` rows: per bucket the first, min, max and last of ``column`` (shape-preserving).

    Rows listed in ``keep`` (positions, e.g. penalty switches) always stay.
    """
    n = len(df)
    if n <= max_points:
        return df
    buckets = max(1, max_points // 4)
    edges = np.linspace(0, n, buckets + 1, dtype=int)
    values = df[column].to_numpy(dtype="float64")
    idx = set(int(k) for k in keep if 0 <= k < n)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        seg = values[a:b]
        idx.update((a, b - 1, a + int(np.nanargmin(seg)), a + int(np.nanargmax(seg))))
    return df.iloc[sorted(idx)]


# ------------------------------------------------------------------------------------- params


def load_params(config_path: Path | None) -> dict[str, CompiledParams]:
    """Per-symbol params: the tuned defaults, then the config's grid overrides when a config is found."""
    overrides: dict[str, dict[str, Any]] = {c: {} for c in CODES}
    if config_path is not None and config_path.is_file():
        try:
            raw = safe_loads(config_path.read_bytes())
            grid = raw.get("grid", {}) if isinstance(raw, dict) else {}
            common = {k: v for k, v in grid.items() if not isinstance(v, dict)}
            for c in CODES:
                overrides[c] = {**common, **grid.get(c, grid.get(symbol_key(c), {}))}
        except (OSError, ValueError, AttributeError):
            pass
    out = {}
    for c in CODES:
        try:
            out[c] = compile_params(default_params(c, "realistic", **overrides[c]))
        except ValueError:
            out[c] = compile_params(default_params(c))
    return out


# ------------------------------------------------------------------------------------- snapshot


@dataclass
class Snapshot:
    """Everything one page run shows."""

    mode: str  # live / replay
    source: str
    as_of: pd.Timestamp | None
    health: list[FileHealth]
    pool: PoolSummary | None
    quotes: QuoteFile | None
    bars: dict[str, pd.DataFrame]
    nodes: dict[str, NodeView]
    params: dict[str, CompiledParams]
    penalty: dict[str, PenaltyAnalysis]
    ladders: dict[str, LadderView]
    alpha: pd.DataFrame
    orders: pd.DataFrame
    audit: pd.DataFrame
    acks: list[dict[str, Any]]
    metrics: dict[str, Any] | None = None
    drawdown: float | None = None
    pool_history: PoolHistory | None = None
    replay_times: list[pd.Timestamp] = field(default_factory=list)

    @property
    def problems(self) -> list[FileHealth]:
        return [h for h in self.health if h.is_problem]


@dataclass(frozen=True)
class Sources:
    """Where the files are: the shared folder and (optional) the executor's state dir and config."""

    shared_dir: Path
    state_dir: Path | None = None
    config: Path | None = None

    @classmethod
    def resolve(cls, shared_dir: Path | str, state_dir: Path | str | None = None,
                config: Path | str | None = None) -> Sources:
        shared = Path(shared_dir)
        state = Path(state_dir) if state_dir else None
        if state is None:
            guess = shared.parent / f"{shared.name}_executor_state"  # the dry-run layout
            state = guess if guess.is_dir() else None
        if config:  # given: kept even when missing, so the journal's banner says it cannot be read
            return cls(shared, state, Path(config))
        guess = shared.parent / "config.json"  # the dry-run layout
        return cls(shared, state, guess if guess.is_file() else None)

    def node_path(self, code: str) -> Path:
        return self.shared_dir / f"dashboard_state_{symbol_key(code)}.json"

    def audit_paths(self) -> list[Path]:
        out: list[Path] = []
        for folder in (self.shared_dir, self.state_dir):
            if folder is not None and folder.is_dir():
                out.extend(sorted(folder.glob("*audit*.jsonl")))
        return out

    def journal_path(self) -> Path | None:
        if self.state_dir is None:
            return None
        path = self.state_dir / JOURNAL_FILE
        return path if path.is_file() else None


def _age_s(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else (now - ts).total_seconds()


def _health(name: str, parsed: Parsed, updated_at: datetime | None, now: datetime, stale_after: float,
            required: bool = True, kept: bool = False) -> FileHealth:
    if parsed.status != FRESH:
        extra = " - showing the last good view" if kept else ""
        return FileHealth(name, parsed.status, None, parsed.error + extra, required)
    age = _age_s(updated_at, now)
    if age is not None and age > stale_after:
        return FileHealth(name, STALE, age, f"{name} not updated for {_fmt_age(age)}", required)
    return FileHealth(name, OK, age, "", required)


def _fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _keep(memory: Memory, key: str, parsed: Parsed) -> tuple[Any, bool]:
    """The fresh value, or the last good one (and whether we fell back)."""
    if parsed.status == FRESH and parsed.value is not None:
        memory.last_good[key] = parsed.value
        return parsed.value, False
    value = memory.last_good.get(key)
    return value, value is not None


def bars_frame(quotes: QuoteFile | None, code: str) -> pd.DataFrame:
    if quotes is None or code not in quotes.quotes:
        return pd.DataFrame(columns=["t", "o", "h", "l", "c"])
    bars = quotes.quotes[code].bars
    return pd.DataFrame([(b.t, b.o, b.h, b.l, b.c) for b in bars], columns=["t", "o", "h", "l", "c"])


def read_acks(shared_dir: Path, limit: int = 20) -> list[dict[str, Any]]:
    """The executor's acknowledgements in ``control_ack/``, newest first; unreadable ones are reported."""
    folder = Path(shared_dir) / ACK_DIR
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.json"):
        if path.name.startswith(".tmp-"):
            continue
        try:
            data = safe_loads(path.read_bytes())
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as exc:
            data = {"command_id": path.stem, "accepted": None, "reason": f"unreadable ack: {exc}", "ts": ""}
        data["_mtime"] = file_signature(path)[0]
        out.append(data)
    out.sort(key=lambda d: d["_mtime"], reverse=True)
    return out[:limit]


def pending_commands(shared_dir: Path) -> list[str]:
    folder = Path(shared_dir) / CONTROL_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(".tmp-"))


def drawdown_from_audit(audit: pd.DataFrame) -> float | None:
    """The latest EQUITY_SNAPSHOT's drawdown from its peak (fraction), if the audit log has one."""
    if not len(audit):
        return None
    snaps = audit[audit["code"] == "EQUITY_SNAPSHOT"]
    for data in reversed(snaps["data"].tolist()):
        if not isinstance(data, dict):
            continue
        snap = data.get("snapshot") if isinstance(data.get("snapshot"), dict) else data
        eq, peak = snap.get("equity"), snap.get("peak_equity")
        try:
            eq, peak = float(eq), float(peak)
        except (TypeError, ValueError):
            continue
        if peak > 0:
            return max(0.0, (peak - eq) / peak)
    return None


def load_live(
    sources: Sources,
    now: datetime,
    memory: Memory,
    parse: ParseFn = parse_file,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> Snapshot:
    """The live view of a shared folder (plus the executor's journal and audit log when reachable)."""
    shared = sources.shared_dir
    params = load_params(sources.config)
    health: list[FileHealth] = []

    def read(kind: str, name: str, key: str, stamp: Callable[[Any], datetime | None], required: bool = True):
        parsed = parse(kind, shared / name)
        value, kept = _keep(memory, key, parsed)
        health.append(_health(name, parsed, stamp(parsed.value) if parsed.value is not None else None, now,
                              stale_after_s, required, kept))
        return value

    quotes = read("quote", QUOTE_FILE, "quote", lambda m: m.updated_at)
    pool_file = read("pool", POOL_FILE, "pool", lambda m: m.updated_at)
    if pool_file is not None and math.isfinite(stale_after_s):
        silent = executor_silence_s(pool_file.updated_at, pool_file.heartbeat_s, now, stale_after_s)
        if silent is not None:
            health[-1] = FileHealth(POOL_FILE, DOWN, silent, executor_down_message(silent), True)
    results = read("result", RESULT_FILE, "result", lambda m: None)
    signals = read("signal", SIGNAL_FILE, "signal", lambda m: None, required=False)
    nodes: dict[str, NodeView] = {}
    for code in CODES:
        node = read("node", sources.node_path(code).name, f"node_{code}", lambda m: m.updated_at)
        if node is not None:
            nodes[code] = node
    if pool_file is not None:
        memory.record_pool(pool_file)
    pool = PoolSummary.of(pool_file) if pool_file is not None else None

    history: PoolHistory | None = None
    journal = sources.journal_path()
    if journal is not None:
        parsed = parse("journal", journal, sources.config)
        if parsed.status == FRESH:
            history = parsed.value
        else:
            health.append(FileHealth(JOURNAL_FILE, parsed.status, None, parsed.error, required=False))
    audit = _load_audit(sources, parse, health)

    penalty, ladders, bars = {}, {}, {}
    for code in CODES:
        node = nodes.get(code)
        cp = params[code]
        hist = node.history if node is not None else pd.DataFrame(columns=["t", "utilization", "penalty_on"])
        penalty[code] = analyse_penalty(code, hist, cp.penalty_trigger, cp.penalty_release,
                                        node.penalty_on if node else None, pool.utilization if pool else None)
        last = quotes.quotes[code].last if quotes is not None and code in quotes.quotes else None
        ladders[code] = build_ladder(code, node, cp, last)
        bars[code] = bars_frame(quotes, code)
    orders = join_orders(signals, results, history.signals if history else None)
    alpha = alpha_frame(history, memory.pool_points, pool)
    return Snapshot(
        mode="live", source=str(shared), as_of=to_naive_cst(pool.market_time) if pool else None, health=health,
        pool=pool, quotes=quotes, bars=bars, nodes=nodes, params=params, penalty=penalty, ladders=ladders,
        alpha=alpha, orders=orders, audit=audit, acks=read_acks(shared), drawdown=drawdown_from_audit(audit),
        pool_history=history,
    )


def _load_audit(sources: Sources, parse: ParseFn, health: list[FileHealth]) -> pd.DataFrame:
    frames = []
    for path in sources.audit_paths():
        parsed = parse("audit", path)
        if parsed.status == FRESH:
            frames.append(parsed.value)
        else:
            health.append(FileHealth(path.name, parsed.status, None, parsed.error, required=False))
    if not frames:
        return pd.DataFrame(columns=["ts", "code", "severity", "symbol", "cause", "data"])
    return pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------- replay


@dataclass
class Replay:
    """A recorded run (dry-run folder or backtest output) that can be viewed at any time ``t``."""

    kind: str  # dry-run / backtest
    root: Path
    params: dict[str, CompiledParams]
    pool_history: PoolHistory
    nodes: dict[str, NodeView]
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame
    audit: pd.DataFrame
    final_pool: PoolSummary | None
    metrics: dict[str, Any] | None
    health: list[FileHealth]
    times: list[pd.Timestamp]

    def snapshot_at(self, t: pd.Timestamp | None) -> Snapshot:
        """The views as they stood at ``t`` (None: the end of the run)."""
        end = self.times[-1] if self.times else None
        t = end if t is None else t
        t_ms = None if t is None else int((pd.Timestamp(t) - pd.Timestamp("1970-01-01")).total_seconds() * 1000) \
            - 8 * 3_600_000
        ph = self.pool_history
        i = ph.at(t)
        pool = self._pool_at(i)
        penalty, ladders, bars = {}, {}, {}
        for code in CODES:
            cp = self.params[code]
            node = self.nodes.get(code)
            if node is not None:
                hist = node.history
            else:  # a backtest: the pool's own utilisation steps
                hist = pd.DataFrame({"t": (ph.frame["t"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)
                                     - 8 * 3_600_000, "utilization": ph.frame["utilization"]})
            if t_ms is not None and len(hist):
                hist = hist[hist["t"] <= t_ms]
            penalty[code] = analyse_penalty(code, hist, cp.penalty_trigger, cp.penalty_release,
                                            node.penalty_on if node is not None and t == end else None,
                                            pool.utilization if pool else None)
            b = self.bars.get(code, pd.DataFrame(columns=["t", "o", "h", "l", "c"]))
            if t_ms is not None and len(b):
                b = b[b["t"] <= t_ms]
            bars[code] = b
            last = float(b["c"].iloc[-1]) if len(b) else None
            at_end = t == end and node is not None
            lots = None if at_end else (ph.lots[i][code] if i is not None and i < len(ph.lots) else ())
            ladders[code] = build_ladder(code, node if at_end else None, cp, last, lots_override=lots,
                                         penalty_on=penalty[code].on)
        orders = self.orders
        if t is not None and len(orders):
            orders = orders[orders["created_at"].isna() | (orders["created_at"] <= t)]
        audit = self.audit[self.audit["ts"] <= t] if t is not None and len(self.audit) else self.audit
        return Snapshot(
            mode="replay", source=f"{self.kind}: {self.root}", as_of=t, health=self.health, pool=pool, quotes=None,
            bars=bars, nodes=self.nodes if t == end else {}, params=self.params, penalty=penalty,
            ladders=ladders, alpha=alpha_frame(ph, (), None, until=t), orders=orders, audit=audit, acks=[],
            metrics=self.metrics, drawdown=_metrics_drawdown(self.metrics), pool_history=ph,
            replay_times=self.times,
        )

    def _pool_at(self, i: int | None) -> PoolSummary | None:
        base = self.final_pool
        reserve = base.reserve_ratio if base else Decimal("0.15")
        caps = base.caps if base else {c: Decimal(200000) for c in CODES}
        if i is None:
            zero = {c: Decimal(0) for c in CODES}
            return PoolSummary(self.pool_history.physical_pool, reserve, caps, zero, zero, zero, 0.0)
        row = self.pool_history.frame.iloc[i]
        d = {p: {c: Decimal(str(round(float(row[f"{p}_{symbol_key(c)}"]), 2))) for c in CODES}
             for p in ("used", "frozen", "alpha")}
        at_end = i == len(self.pool_history.frame) - 1 and base is not None
        return PoolSummary(
            self.pool_history.physical_pool, reserve, caps, d["used"], d["frozen"], d["alpha"],
            float(row["utilization"]), risk_state=base.risk_state if at_end and base else "NORMAL",
            halted=bool(base.halted) if at_end and base else False, market_time=row["t"].to_pydatetime(),
        )


def _metrics_drawdown(metrics: dict[str, Any] | None) -> float | None:
    try:
        return float(metrics["total"]["max_drawdown_pct"]) if metrics else None
    except (KeyError, TypeError, ValueError):
        return None


def detect_replay(folder: Path) -> tuple[str, Path] | None:
    """``("backtest", dir)`` for a folder with trades.csv, ``("dry-run", shared_dir)`` for a dry-run root or its
    shared folder, ``None`` otherwise."""
    folder = Path(folder)
    if (folder / "trades.csv").is_file():
        return "backtest", folder
    if (folder / "shared").is_dir():
        return "dry-run", folder / "shared"
    if any((folder / name).exists() for name in (POOL_FILE, RESULT_FILE, QUOTE_FILE)):
        return "dry-run", folder
    return None


def load_replay(folder: Path | str, parse: ParseFn = parse_file, state_dir: Path | str | None = None,
                config: Path | str | None = None) -> Replay:
    """Load a recorded run once; ``snapshot_at`` slices it. Raises ``ValueError`` for an unknown folder.

    ``config`` is the run's config file (default: ``config.json`` beside the shared folder)."""
    found = detect_replay(Path(folder))
    if found is None:
        raise ValueError(f"{folder} is neither a dry-run folder nor a backtest output (trades.csv)")
    kind, base = found
    if kind == "backtest":
        return _load_backtest(base, parse)
    return _load_dry_run(Sources.resolve(base, state_dir, config), parse)


def _bars_from(folder: Path | None, parse: ParseFn) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    if folder is None or not folder.is_dir():
        return out
    for code in CODES:
        path = folder / f"{symbol_key(code)}.csv"
        if path.is_file():
            parsed = parse("bars", path)
            if parsed.status == FRESH:
                out[code] = parsed.value
    return out


def _load_dry_run(sources: Sources, parse: ParseFn) -> Replay:
    memory = Memory()
    live = load_live(sources, datetime.now(CST), memory, parse, stale_after_s=math.inf)
    params = live.params
    history = live.pool_history
    if history is None:  # no journal: only the final pool is known
        history = PoolHistory(pd.DataFrame(columns=POOL_HISTORY_COLUMNS), (), {},
                              live.pool.physical_pool if live.pool else Decimal(300000), "none")
    bars = _bars_from(sources.shared_dir.parent / "bars", parse)
    for code in CODES:
        if code not in bars:
            bars[code] = live.bars.get(code, pd.DataFrame(columns=["t", "o", "h", "l", "c"]))
    times = sorted(set(
        [ms_to_naive_cst(int(t)) for b in bars.values() if len(b) for t in b["t"].to_numpy()[:: max(1, len(b) // 400)]]
        + list(history.frame["t"])
    ))
    if live.pool is not None and live.pool.market_time is not None:
        times.append(to_naive_cst(live.pool.market_time))
        times = sorted(set(times))
    return Replay("dry-run", sources.shared_dir.parent, params, history, live.nodes, bars, live.orders, live.audit,
                  live.pool, None, live.health, times)


def _load_backtest(folder: Path, parse: ParseFn) -> Replay:
    health: list[FileHealth] = []
    params = load_params(folder / "config.json" if (folder / "config.json").is_file() else None)
    trades = parse("trades", folder / "trades.csv")
    metrics = parse("metrics", folder / "metrics.json")
    for name, parsed in (("trades.csv", trades), ("metrics.json", metrics)):
        health.append(FileHealth(name, OK if parsed.status == FRESH else parsed.status, None, parsed.error))
    frame = trades.value if trades.status == FRESH else pd.DataFrame(
        columns=["time", "code", "side", "price", "shares", "reason"])
    pool_size = Decimal(str(params[CODES[0]].source.physical_pool))
    history = history_from_trades(frame, params, pool_size)
    bars = _bars_from(folder / "bars", parse) or _bars_from(folder.parent / "bars", parse)
    orders = pd.DataFrame({
        "signal_id": [f"T{i}" for i in range(len(frame))],
        "code": frame["code"], "direction": frame["side"], "layer_index": None, "price": frame["price"],
        "shares": frame["shares"], "amount": frame["price"] * frame["shares"],
        "created_at": ms_to_naive_cst(frame["time"].to_numpy()) if len(frame) else [],
        "status": "FILLED", "status_label": "已成 / filled", "reason": "", "detail": frame["reason"],
        "reason_label": frame["reason"], "message": "", "filled_shares": frame["shares"],
        "avg_price": frame["price"], "updated_at": None, "source": "backtest",
    }, columns=ORDER_COLUMNS)
    times = list(history.frame["t"])
    for b in bars.values():
        times += [ms_to_naive_cst(int(t)) for t in b["t"].to_numpy()[:: max(1, len(b) // 400)]]
    return Replay("backtest", folder, params, history, {}, bars, orders,
                  pd.DataFrame(columns=["ts", "code", "severity", "symbol", "cause", "data"]), None,
                  metrics.value if metrics.status == FRESH else None, health, sorted(set(times)))


# ---------------------------------------------------------------------------------- kill switch

KILL_ACTIONS = ("FORCE_HALT", "FORCE_REDUCE", "RESET_FUSE", "FORCE_UNLOCK_SYMBOL")
KILL_LABELS = {
    "FORCE_HALT": "Force Halt 强制暂停",
    "FORCE_REDUCE": "Force Reduce 强制减仓",
    "RESET_FUSE": "Reset FUSE 解除熔断",
    "FORCE_UNLOCK_SYMBOL": "Force Unlock Symbol 解锁品种",
}


def write_control(
    shared_dir: Path | str,
    action: str,
    secret: bytes | None,
    now: datetime,
    symbol: str | None = None,
    issuer: str = DEFAULT_ISSUER,
    ttl: timedelta = timedelta(minutes=10),
) -> tuple[str, Path]:
    """Write one signed control command into ``<shared>/control/``; returns (command_id, path).

    Raises ``ValueError`` without a secret (the page disables the buttons then) or for a bad action.
    """
    from core.control import ControlAction, new_command, sign_command
    from core.control.file_door import write_command_file

    if not secret:
        raise ValueError("GRIDBRIDGE_CONTROL_SECRET is not set: commands cannot be signed")
    command = new_command(ControlAction(action), issuer, now, ttl, symbol=symbol)
    path = write_command_file(shared_dir, sign_command(command, secret))
    return command.command_id, path


def lots_table(ladder: LadderView) -> pd.DataFrame:
    return pd.DataFrame(
        [(lot.layer_index, lot.client_order_id, lot.shares, lot.buy_price, lot.take_profit, lot.status)
         for lot in ladder.lots],
        columns=["layer", "client_order_id", "shares", "buy_price", "take_profit", "status"],
    )


__all__ = [
    "CODES", "FileHealth", "LadderView", "Memory", "NodeView", "Parsed", "PenaltyAnalysis", "PoolHistory",
    "PoolSummary", "Replay", "Snapshot", "Sources", "analyse_penalty", "alpha_frame", "build_ladder",
    "detect_replay", "downsample", "file_signature", "filter_orders", "history_from_trades", "join_orders",
    "load_live", "load_replay", "parse_file", "read_acks", "replay_journal", "write_control",
]
