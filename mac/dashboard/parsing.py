"""Each file the dashboard reads, parsed by ``parse_file(kind, path)``, which never raises.

A missing, partial or invalid file becomes a ``Parsed`` with status ``MISSING`` / ``INVALID`` and the
reason; the live loader keeps the last good view so the page can keep showing it under a banner. The app
wraps ``parse_file`` in ``st.cache_data`` keyed on the file's mtime and size (``cached_parse_key``), so an
unchanged file is never parsed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from mac.dashboard.history import history_from_points, journal_signals
from mac.dashboard.labels import CODES
from mac.dashboard.params import load_params, load_run_config
from mac.dashboard.times import parse_ts, to_naive_cst
from mac.dashboard.view_models import FRESH, INVALID, MISSING, NodeView, SignalsView
from shared_schema.models import PoolFile, QuoteFile, ResultFile, Signal
from shared_schema.pool_history import read_pool_history
from shared_schema.safe_json import safe_loads


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
        updated_at=parse_ts(raw.get("updated_at")),
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
    """Parse one file of ``kind`` (quote, pool, result, signal, node, pool_history, journal, config, audit, bars,
    trades, metrics).

    ``pool_history`` is the executor's published pool history; its open lots get take-profit prices from
    the grid params of the run's ``config`` (the defaults without one). ``journal`` gives the signal
    payloads the executor journaled. Never raises: the outcome says FRESH with the value, MISSING, or
    INVALID with the first error.
    """
    path = Path(path)
    try:
        if kind == "pool_history":
            read = read_pool_history(path)
            params = load_params(config)
            pool = Decimal(str(params[CODES[0]].source.physical_pool))
            return Parsed(history_from_points(read.points, params, pool, read.skipped), FRESH)
        if kind == "journal":
            if not path.exists():
                return Parsed(None, MISSING, f"{path.name} is missing")
            return Parsed(journal_signals(path), FRESH)
        if kind == "config":
            try:
                return Parsed(load_run_config(path), FRESH)
            except FileNotFoundError:
                raise
            except (OSError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return Parsed(None, INVALID, f"{path.name} unreadable: {first[:200]}")
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
