"""The live view of a shared folder (plus the executor's state folder when reachable): one ``Snapshot``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from mac.dashboard.analysis import analyse_penalty, build_ladder
from mac.dashboard.control import read_acks
from mac.dashboard.history import alpha_frame
from mac.dashboard.labels import CODES
from mac.dashboard.orders import join_orders
from mac.dashboard.params import load_params
from mac.dashboard.parsing import Parsed, ParseFn, parse_file
from mac.dashboard.sources import JOURNAL_FILE, Sources
from mac.dashboard.times import to_naive_cst
from mac.dashboard.view_models import (
    DOWN,
    FRESH,
    INVALID,
    OK,
    STALE,
    FileHealth,
    NodeView,
    PoolHistory,
    PoolPoint,
    PoolSummary,
    Snapshot,
    per_code,
    pool_utilization,
)
from shared_schema.heartbeat import executor_down_message, executor_silence_s
from shared_schema.models import POOL_FILE, QUOTE_FILE, RESULT_FILE, SIGNAL_FILE, PoolFile, QuoteFile
from shared_schema.pool_history import POOL_HISTORY_FILE

DEFAULT_STALE_AFTER_S = 120.0


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
        self.pool_points.append(PoolPoint(t, pool.seq, per_code(pool, "used"), per_code(pool, "frozen"),
                                          per_code(pool, "acc_alpha"), pool_utilization(pool)))
        if len(self.pool_points) > self.max_points:
            del self.pool_points[: len(self.pool_points) - self.max_points]


def _age_s(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else (now - ts).total_seconds()


def _health(name: str, parsed: Parsed, updated_at: datetime | None, now: datetime, stale_after: float,
            required: bool = True, kept: bool = False) -> FileHealth:
    if parsed.status != FRESH:
        extra = " - showing the last good view" if kept else ""
        return FileHealth(name, parsed.status, None, parsed.error + extra, required)
    age = _age_s(updated_at, now)
    if age is not None and age > stale_after:
        return FileHealth(name, STALE, age, f"{name} not updated for {fmt_age(age)}", required)
    return FileHealth(name, OK, age, "", required)


def fmt_age(seconds: float) -> str:
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

    _check_config(sources, parse, health)
    history = _load_pool_history(sources, parse, health)
    journaled: dict[str, dict[str, Any]] | None = None
    journal = sources.journal_path()
    if journal is not None:
        parsed = parse("journal", journal)
        if parsed.status == FRESH:
            journaled = parsed.value
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
    orders = join_orders(signals, results, journaled)
    alpha = alpha_frame(history, memory.pool_points, pool)
    return Snapshot(
        mode="live", source=str(shared), as_of=to_naive_cst(pool.market_time) if pool else None, health=health,
        pool=pool, quotes=quotes, bars=bars, nodes=nodes, params=params, penalty=penalty, ladders=ladders,
        alpha=alpha, orders=orders, audit=audit, acks=read_acks(shared), drawdown=drawdown_from_audit(audit),
        pool_history=history,
    )


def _check_config(sources: Sources, parse: ParseFn, health: list[FileHealth]) -> None:
    """A config given but unreadable is reported: the ladders then show the default grid params."""
    if sources.config is None:
        return
    parsed = parse("config", sources.config)
    if parsed.status != FRESH:
        health.append(FileHealth(sources.config.name, parsed.status, None,
                                 parsed.error + " - the ladders use the default grid params", required=False))


def _load_pool_history(sources: Sources, parse: ParseFn, health: list[FileHealth]) -> PoolHistory | None:
    """The executor's published pool history (``pool_history.jsonl`` beside its journal), when reachable."""
    path = sources.pool_history_path()
    if path is None:
        return None
    parsed = parse("pool_history", path, sources.config)
    if parsed.status != FRESH:
        health.append(FileHealth(POOL_HISTORY_FILE, parsed.status, None, parsed.error, required=False))
        return None
    history: PoolHistory = parsed.value
    if history.skipped:
        health.append(FileHealth(POOL_HISTORY_FILE, INVALID, None,
                                 f"{history.skipped} invalid line(s) of {POOL_HISTORY_FILE} skipped", required=False))
    return history


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
