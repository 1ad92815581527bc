"""The sweep's heat map: alpha and max drawdown over two swept axes, an interactive plotly page.

With more than two axes, each cell shows the point of best alpha over the other axes (both maps show that
same point; its other values are in the hover), and the title says so. Ties keep the first point in the
CSV's order, so the map is the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtest.report import write_html_offline
from backtest.sweep_axes import SweepError


def choose_axes(axes: Sequence[str], x: str | None, y: str | None) -> tuple[str, str | None]:
    """The map's axes: ``x``/``y`` as asked (each one of the swept ``axes``), else the first two swept."""
    for name in (x, y):
        if name is not None and name not in axes:
            raise SweepError(f"--x/--y {name!r} is not swept; swept: {', '.join(axes)}")
    if x is None:
        x = next((a for a in axes if a != y), None)
        if x is None:
            raise SweepError(f"--y is {y}, and no axis is left for x")
    if y is None:
        y = next((a for a in axes if a != x), None)
    if x == y:
        raise SweepError(f"--x and --y are both {x}")
    return x, y


def best_cells(rows: Sequence[dict], x: str, y: str | None) -> dict[tuple, dict]:
    """(x value, y value) -> the row of best alpha among the rows of that cell (the first on a tie)."""
    cells: dict[tuple, dict] = {}
    for row in rows:
        key = (row[x], row[y] if y is not None else None)
        if key not in cells or row["alpha"] > cells[key]["alpha"]:
            cells[key] = row
    return cells


def heatmap_figure(rows: Sequence[dict], axes: Sequence[str], x: str, y: str | None) -> go.Figure:
    """Two heat maps side by side: alpha (CNY) and max drawdown (CNY) of each cell's best-alpha point."""
    xs = list(dict.fromkeys(r[x] for r in rows))
    ys = list(dict.fromkeys(r[y] for r in rows)) if y is not None else [None]
    others = [a for a in axes if a not in (x, y)]
    cells = best_cells(rows, x, y)

    def grid(metric: str) -> list[list[float | None]]:
        return [[cells[(vx, vy)][metric] if (vx, vy) in cells else None for vx in xs] for vy in ys]

    hover_rest = "".join(f"<br>{a}=%{{customdata[{i}]}}" for i, a in enumerate(others))
    custom = [[[cells[(vx, vy)][a] for a in others] if (vx, vy) in cells else [] for vx in xs] for vy in ys]
    x_labels = [str(v) for v in xs]
    y_labels = [str(v) for v in ys] if y is not None else [""]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["alpha (CNY)", "max drawdown (CNY)"],
                        horizontal_spacing=0.12)  # fmt: skip
    for col, (metric, scale, bar_x) in enumerate(
        (("alpha", "Viridis", 0.44), ("max_drawdown", "Reds", 1.0)), start=1
    ):
        fig.add_trace(
            go.Heatmap(
                z=grid(metric), x=x_labels, y=y_labels, colorscale=scale, colorbar=dict(x=bar_x, len=0.9),
                customdata=custom, name=metric,
                hovertemplate=f"{x}=%{{x}}<br>{y or ''}=%{{y}}{hover_rest}<br>{metric}=%{{z:,.2f}}<extra></extra>",
            ),
            row=1, col=col,
        )  # fmt: skip
        fig.update_xaxes(title_text=x, type="category", row=1, col=col)
        fig.update_yaxes(title_text=y or "", type="category", row=1, col=col)
    title = f"sweep of {len(rows)} points: alpha and max drawdown over {x}" + (f" x {y}" if y else "")
    if others:
        title += f"<br><sup>each cell: the point of best alpha over {', '.join(others)} (values in the hover)</sup>"
    fig.update_layout(title=title, height=520)
    return fig


def write_heatmap(rows: Sequence[dict], axes: Sequence[str], x: str, y: str | None, path: str | Path) -> Path:
    """``heatmap_figure`` as a page that renders offline (``plotly.min.js`` beside it)."""
    return write_html_offline(heatmap_figure(rows, axes, x, y), path)
