"""Metrics of a backtest run (exact money where the ledger is exact; floats only for curves).

Per symbol: alpha (= final equity: cash + open shares x last close; cash starts at 0), realised alpha
(the vault's ``acc_alpha`` in realistic mode), trades and trades per year (242 trading days), max
drawdown measured on ``equity - equity_0 + 500,000`` as reference-grid.md defines it, times all layers
were open, breaker pauses, cooling skips, float stops, T+1 blocks, layer-0 refusals, penalty switches and
time in penalty. Run level: the same summed over symbols, peak utilisation of the shared pool and, with
the risk machine on, a ``risk`` section (final state, time in each state, transitions, evaluations,
buys blocked by the risk mode, resting buys cancelled on entering a state without buys).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from backtest.engine import RunResult, SymbolResult

DRAWDOWN_BASE = 500_000.0
TRADING_DAYS_PER_YEAR = 242


def equity_curve(res: SymbolResult) -> np.ndarray:
    """Equity (cash + open shares x close) at every bar of the symbol, float yuan."""
    times, closes = res.times, res.closes
    cash_delta = np.zeros(len(times))
    share_delta = np.zeros(len(times))
    trades = res.trades
    if trades:
        # each trade's bar found at once; np.add.at adds in trade order, repeated bars included, so every
        # element sees the very additions (x - y is x + (-y) in IEEE) the per-trade loop made
        at = np.searchsorted(times, np.fromiter((t.t for t in trades), dtype=np.int64, count=len(trades)))
        cash, shares = [], []
        for t in trades:
            value = float(t.price * t.shares)
            if t.side == "BUY":
                cash.append(-(value + float(t.fees)))
                shares.append(t.shares)
            else:
                cash.append(value - float(t.fees))
                shares.append(-t.shares)
        np.add.at(cash_delta, at, cash)
        np.add.at(share_delta, at, shares)
    return np.cumsum(cash_delta) + np.cumsum(share_delta) * closes


def max_drawdown(equity: np.ndarray) -> tuple[float, float]:
    """(max drawdown in yuan, as a fraction of the peak) of ``equity - equity_0 + 500,000``."""
    if equity.size == 0:
        return 0.0, 0.0
    x = equity - equity[0] + DRAWDOWN_BASE
    peak = np.maximum.accumulate(x)
    dd = peak - x
    return float(dd.max()), float((dd / peak).max())


def _distinct_sorted(values: np.ndarray) -> int:
    """How many distinct values ``values`` holds; linear when it is sorted (bar times are), which
    ``np.unique`` would sort and hash again."""
    if values.size == 0:
        return 0
    if not bool((values[1:] >= values[:-1]).all()):
        return int(np.unique(values).size)
    return 1 + int(np.count_nonzero(values[1:] != values[:-1]))


def _days(times: np.ndarray) -> int:
    return _distinct_sorted((times + 8 * 3_600_000) // 86_400_000)


def union_times(columns: list[np.ndarray]) -> np.ndarray:
    """The sorted distinct times of all ``columns`` (= ``np.unique`` of their concatenation). Each
    symbol's times are sorted, so a stable sort (timsort: it merges the sorted runs) and one
    comparison with the neighbour replace ``np.unique``'s full sort."""
    merged = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int64)
    merged.sort(kind="stable")
    if merged.size == 0:
        return merged
    keep = np.empty(merged.size, dtype=bool)
    keep[0] = True
    np.not_equal(merged[1:], merged[:-1], out=keep[1:])
    return merged[keep]


def symbol_metrics(res: SymbolResult, vault=None) -> dict:
    state = res.state
    last = Decimal(repr(float(res.closes[-1]))) if res.closes is not None and res.closes.size else Decimal(0)
    held = state.open_shares
    alpha = state.cash + held * last
    eq = equity_curve(res)
    dd, dd_pct = max_drawdown(eq)
    days = _days(res.times)
    buys = sum(1 for t in res.trades if t.side == "BUY")
    sells = len(res.trades) - buys
    ev = res.events
    out = {
        "alpha": float(alpha),
        "alpha_exact": str(alpha),
        "cash": str(state.cash),
        "open_shares": held,
        "open_lots": len(state.lots),
        "trades": len(res.trades),
        "buys": buys,
        "sells": sells,
        "days": days,
        "trades_per_year": len(res.trades) / days * TRADING_DAYS_PER_YEAR if days else 0.0,
        "max_drawdown": dd,
        "max_drawdown_pct": dd_pct,
        "all_layers_open": res.all_layers,
        "breaker_pauses": ev.get("BREAKER_PAUSE", 0),
        "cooling_skips": ev.get("COOLING", 0),
        "stops": ev.get("FLOAT_STOP", 0),
        "t1_blocks": ev.get("NOT_SELLABLE_T1", 0),
        "layer0_refusals": ev.get("LAYER0_REFUSED_RESERVE", 0) + res.refusals.get("POOL_RESERVE_15", 0),
        "nominal_cap_skips": ev.get("NOMINAL_CAP", 0),
        "pool_exhausted_skips": ev.get("POOL_EXHAUSTED", 0),
        "vault_refusals": dict(res.refusals),
        "penalty_switches": ev.get("PENALTY_ON", 0) + ev.get("PENALTY_OFF", 0),
        "time_in_penalty": res.penalty_bars / res.bars if res.bars else 0.0,
        "expired_orders": res.expired,
    }
    if vault is not None:
        out["realised_alpha"] = str(vault.yuan(vault.acc_alpha.get(res.code, 0)))
    return out


def combined_equity(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """Union timeline and the summed equity of all symbols (each forward-filled)."""
    times = union_times([r.times for r in result.symbols.values()])
    total = np.zeros(times.size)
    for r in result.symbols.values():
        eq = equity_curve(r)
        if r.times.shape == times.shape and np.array_equal(r.times, times):
            total += eq  # the symbol has a bar at every time of the union: nothing to forward-fill
            continue
        idx = np.searchsorted(r.times, times, side="right") - 1
        total += np.where(idx >= 0, eq[np.clip(idx, 0, None)], 0.0)
    return times, total


def run_metrics(result: RunResult) -> dict:
    per = {code: symbol_metrics(r, result.vault) for code, r in result.symbols.items()}
    times, eq = combined_equity(result)
    dd, dd_pct = max_drawdown(eq)
    keys = ("trades", "all_layers_open", "breaker_pauses", "stops", "layer0_refusals", "penalty_switches")
    total = {k: sum(m[k] for m in per.values()) for k in keys}
    total["alpha"] = float(sum(Decimal(m["alpha_exact"]) for m in per.values()))
    total["max_drawdown"] = dd
    total["max_drawdown_pct"] = dd_pct
    days = _days(times)
    total["trades_per_year"] = total["trades"] / days * TRADING_DAYS_PER_YEAR if days else 0.0
    if result.util is not None and result.util.size:
        total["peak_utilization"] = float(result.util.max())
    if result.vault is not None:
        total["realised_alpha"] = str(
            sum((result.vault.yuan(v) for v in result.vault.acc_alpha.values()), Decimal(0))
        )
    out = {"mode": result.mode, "total": total, "symbols": per}
    if result.risk is not None:
        # time in each risk state (share of timestamps), transitions, evaluations, blocked/cancelled buys
        out["risk"] = result.risk.summary()
        total["risk_transitions"] = out["risk"]["transitions"]
        total["fuse_closes"] = sum(r.events.get("FUSE_CLOSE", 0) for r in result.symbols.values())
    return out
