"""Plotly HTML report: equity, pool utilisation with the 85/90 % band and penalty shading, prices with fills.

Every HTML page the backtest writes loads plotly.js from ``plotly.min.js`` beside it (``write_html_offline``),
never from a CDN: QMT machines are often offline, and a CDN page is blank there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtest.engine import RunResult
from backtest.metrics import combined_equity, equity_curve
from shared_schema.atomic_io import atomic_write_bytes

MAX_POINTS = 20_000  # thin long runs so the HTML stays light
PLOTLY_JS = "plotly.min.js"


def _thin(n: int) -> np.ndarray:
    return np.arange(0, n, max(1, n // MAX_POINTS))


def _dt(times: np.ndarray) -> np.ndarray:
    return (times + 8 * 3_600_000).astype("datetime64[ms]")  # China time on the axis


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    out, start = [], None
    for i, on in enumerate(mask.tolist()):
        if on and start is None:
            start = i
        elif not on and start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(mask) - 1))
    return out


def build_figure(result: RunResult, metrics: dict | None = None) -> go.Figure:
    codes = list(result.symbols)
    rows = 2 + len(codes)
    titles = ["Equity (cash + holdings, CNY)", "Pool utilisation"] + [f"{c} price and fills" for c in codes]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=titles, vertical_spacing=0.05)
    times, eq = combined_equity(result)
    k = _thin(times.size)
    fig.add_trace(go.Scattergl(x=_dt(times[k]), y=eq[k], name="equity (all)"), row=1, col=1)
    if len(codes) > 1:
        for c, r in result.symbols.items():
            e = equity_curve(r)
            kk = _thin(e.size)
            fig.add_trace(go.Scattergl(x=_dt(r.times[kk]), y=e[kk], name=f"equity {c}"), row=1, col=1)
    if result.util is not None and result.util_t is not None:
        k = _thin(result.util.size)
        fig.add_trace(
            go.Scattergl(x=_dt(result.util_t[k]), y=result.util[k], name="utilisation"), row=2, col=1
        )
        fig.add_hrect(y0=0.85, y1=0.90, fillcolor="orange", opacity=0.2, line_width=0, row=2, col=1)
        for r in result.symbols.values():
            if r.penalty is None:
                continue
            for a, b in _spans(r.penalty)[:500]:
                fig.add_vrect(x0=_dt(r.times[a : a + 1])[0], x1=_dt(r.times[b : b + 1])[0], fillcolor="red",
                              opacity=0.08, line_width=0, row=2, col=1)  # fmt: skip
    for n, (c, r) in enumerate(result.symbols.items()):
        kk = _thin(r.times.size)
        fig.add_trace(go.Scattergl(x=_dt(r.times[kk]), y=r.closes[kk], name=f"{c} close"), row=3 + n, col=1)
        for side, color, symbol in (("BUY", "green", "triangle-up"), ("SELL", "red", "triangle-down")):
            tr = [t for t in r.trades if t.side == side]
            if tr:
                fig.add_trace(
                    go.Scattergl(
                        x=_dt(np.array([t.t for t in tr])), y=[t.price_milli / 1000 for t in tr], mode="markers",
                        marker=dict(color=color, symbol=symbol, size=7), name=f"{c} {side}",
                    ),
                    row=3 + n, col=1,
                )  # fmt: skip
    title = f"gridbridge backtest ({result.mode})"
    if metrics:
        tot = metrics["total"]
        title += f" - alpha {tot['alpha']:.2f} CNY, trades {tot['trades']}, max DD {tot['max_drawdown']:.0f}"
    fig.update_layout(title=title, height=300 * rows, hovermode="x unified")
    return fig


def write_html_offline(fig: go.Figure, path: str | Path) -> Path:
    """``fig`` as a standalone page at ``path`` that loads plotly.js from ``plotly.min.js`` in the same folder,
    written there too (the bundle of the installed plotly, replaced when it differs: a page and its script
    always match). One bundle serves every page of the folder (report and sweep heat map). Both files are
    written atomically, so a link at either path is replaced, never written through."""
    path = Path(path)
    bundle = path.parent / PLOTLY_JS
    script = plotly_bundle()
    if bundle.is_symlink() or not bundle.is_file() or bundle.read_bytes() != script:
        atomic_write_bytes(bundle, script)
    atomic_write_bytes(path, fig.to_html(include_plotlyjs=PLOTLY_JS, full_html=True).encode("utf-8"))
    return path


def plotly_bundle() -> bytes:
    """The plotly.js the installed plotly package ships (what ``include_plotlyjs=True`` would embed)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def write_report(result: RunResult, path: str | Path, metrics: dict | None = None) -> Path:
    """``report.html`` (``build_figure``) with ``plotly.min.js`` beside it: it renders offline."""
    return write_html_offline(build_figure(result, metrics), path)
