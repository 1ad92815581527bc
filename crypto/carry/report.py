"""Plotly report of a carry backtest: equity, margin health against its 80 % / 50 % lines, the short's
liquidation distance against the gate's 8 %, and the funding rate per settlement.

Like the ETF backtest's pages (``backtest/report.py``, which crypto may not import), the page loads
plotly.js from ``plotly.min.js`` written beside it, never from a CDN: it renders offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crypto.carry.backtest import RunResult
from shared_schema.atomic_io import atomic_write_bytes

MAX_POINTS = 20_000
PLOTLY_JS = "plotly.min.js"


def _thin(n: int) -> np.ndarray:
    return np.arange(0, n, max(1, n // MAX_POINTS))


def build_figure(results: list[RunResult]):  # -> plotly Figure (plotly has no stubs)
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05,
                        subplot_titles=["Equity (USDT)", "Margin health (short's margin balance / margin at open)",
                                        "Liquidation distance of the short", "Funding rate per settlement"])
    for r in results:
        k = _thin(r.ts_ms.size)
        x = r.ts_ms[k].astype("datetime64[ms]")
        name = f"{r.symbol} {r.regime}"
        fig.add_trace(go.Scattergl(x=x, y=r.equity[k], name=f"equity {name}"), row=1, col=1)
        fig.add_trace(go.Scattergl(x=x, y=r.health[k], name=f"health {name}"), row=2, col=1)
        fig.add_trace(go.Scattergl(x=x, y=r.liq_distance[k], name=f"liq distance {name}"), row=3, col=1)
        fig.add_trace(go.Scattergl(x=r.funding_ts_ms.astype("datetime64[ms]"), y=r.funding_rate,
                                   mode="markers", marker={"size": 3}, name=f"funding {name}"), row=4, col=1)
    for y, label in ((0.8, "top-up 80 %"), (0.5, "close 50 %")):
        fig.add_hline(y=y, line_dash="dot", annotation_text=label, row=2, col=1)
    fig.add_hline(y=0.08, line_dash="dot", annotation_text="gate 8 %", row=3, col=1)
    fig.update_layout(height=1100, title="Funding-rate cash-and-carry backtest", hovermode="x unified")
    return fig


def write_report(results: list[RunResult], out_dir: Path) -> Path:
    """``report.html`` with ``plotly.min.js`` beside it (rewritten only when the installed bundle differs)."""
    from plotly.offline import get_plotlyjs

    out_dir.mkdir(parents=True, exist_ok=True)
    script = get_plotlyjs().encode("utf-8")
    js = out_dir / PLOTLY_JS
    if not js.exists() or js.read_bytes() != script:
        atomic_write_bytes(js, script)
    page = out_dir / "report.html"
    html = build_figure(results).to_html(include_plotlyjs=PLOTLY_JS, full_html=True)
    atomic_write_bytes(page, html.encode("utf-8"))
    return page
