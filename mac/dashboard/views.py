"""Plotly figure builders for the dashboard: pure functions of the view models, no streamlit, no IO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mac.dashboard.history import downsample
from mac.dashboard.labels import CODES, SHORT_NAMES
from mac.dashboard.times import ms_to_naive_cst
from mac.dashboard.view_models import LadderView, PenaltyAnalysis, PoolSummary
from shared_schema.models import symbol_key

COLORS = {"159201.SZ": "#1f77b4", "512890.SH": "#d62728"}
LIGHT = {"159201.SZ": "rgba(31,119,180,0.45)", "512890.SH": "rgba(214,39,40,0.45)"}
SHADE = {"159201.SZ": "rgba(31,119,180,0.12)", "512890.SH": "rgba(214,39,40,0.12)"}
MAX_POINTS = 2000
# Hide nights, lunch and weekends on time axes: A-share sessions are 09:30-11:30 and 13:00-15:00.
SESSION_BREAKS = [dict(bounds=["sat", "mon"]), dict(bounds=[15, 9.5], pattern="hour"),
                  dict(bounds=[11.5, 13], pattern="hour")]
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white", legend=dict(orientation="h", y=-0.15))


def _yuan(x: float) -> str:
    return f"{x:,.2f}"


def pool_figure(pool: PoolSummary, release: float = 0.85, trigger: float = 0.90) -> go.Figure:
    """Used and frozen per symbol stacked against the physical pool, with the 85/90 % and reserve lines."""
    total = float(pool.physical_pool)
    fig = go.Figure()
    for code in CODES:
        for part, value, color in (("used", pool.used[code], COLORS[code]), ("frozen", pool.frozen[code], LIGHT[code])):
            fig.add_trace(go.Bar(
                y=["pool 资金池"], x=[float(value)], orientation="h", name=f"{SHORT_NAMES[code]} {part}",
                marker_color=color, text=[_yuan(float(value))] if value else None, textposition="inside",
                hovertemplate=f"{code} {part}: %{{x:,.2f}} CNY<extra></extra>",
            ))
    free = max(0.0, float(pool.free))
    fig.add_trace(go.Bar(y=["pool 资金池"], x=[free], orientation="h", name="free 可用", marker_color="#e8e8e8",
                         hovertemplate="free: %{x:,.2f} CNY<extra></extra>"))
    reserve_x = float(pool.reserve_line)
    lines = [(release * total, f"{release:.0%} penalty release 惩罚解除", "#2ca02c", "dash"),
             (trigger * total, f"{trigger:.0%} penalty trigger 惩罚触发", "#ff7f0e", "dash")]
    if abs(reserve_x - release * total) < 0.005:
        lines[0] = (reserve_x, f"{release:.0%} release = reserve line (15% 备用金 kept for deeper layers)",
                    "#2ca02c", "dash")
    else:
        lines.append((reserve_x, f"reserve line {1 - float(pool.reserve_ratio):.0%} committed (备用金)",
                      "#9467bd", "dot"))
    for i, (x, label, color, dash) in enumerate(lines):
        fig.add_vline(x=x, line_color=color, line_dash=dash, line_width=2)
        fig.add_annotation(x=x, y=1.06 + 0.18 * i, yref="paper", text=label, showarrow=False, font=dict(color=color),
                           xanchor="right" if x > total * 0.6 else "left")
    fig.update_layout(barmode="stack", height=260, xaxis=dict(range=[0, total], title="CNY", tickformat=","),
                      title=None, **{**_LAYOUT, "margin": dict(l=10, r=10, t=70, b=10),
                                                   "legend": dict(orientation="h", y=-0.6)})
    return fig


def hysteresis_figure(analyses: dict[str, PenaltyAnalysis], max_points: int = MAX_POINTS) -> go.Figure:
    """Utilisation over time with the release-trigger band, penalty-on periods shaded and switches marked."""
    fig = go.Figure()
    any_a = next(iter(analyses.values()), None)
    release = any_a.release if any_a else 0.85
    trigger = any_a.trigger if any_a else 0.90
    for code, a in analyses.items():
        s = a.series
        if not len(s):
            continue
        switch_pos = np.flatnonzero(np.diff(s["penalty"].to_numpy().astype(int)) != 0) + 1
        thin = downsample(s, "utilization", max_points, keep=list(switch_pos) + list(switch_pos - 1))
        x = ms_to_naive_cst(thin["t"].to_numpy())
        if thin["penalty"].any():
            fig.add_trace(go.Scatter(
                x=x, y=np.where(thin["penalty"].to_numpy(), 1.0, 0.0), yaxis="y2", mode="lines", line_shape="hv",
                line=dict(width=0), fill="tozeroy", fillcolor=SHADE[code], name=f"{SHORT_NAMES[code]} penalty ON 惩罚开启",
                hoverinfo="skip",
            ))
        fig.add_trace(go.Scatter(x=x, y=thin["utilization"], mode="lines", name=f"utilisation ({SHORT_NAMES[code]} node)",
                                   line=dict(color=COLORS[code], width=1.5)))
        if a.switches:
            on = [sw for sw in a.switches if sw[1]]
            off = [sw for sw in a.switches if not sw[1]]
            for group, symbol, color, label in ((on, "triangle-up", "#d62728", "ON"), (off, "triangle-down", "#2ca02c", "OFF")):
                if group:
                    fig.add_trace(go.Scatter(
                        x=ms_to_naive_cst(np.array([g[0] for g in group])), y=[g[2] for g in group], mode="markers",
                        marker=dict(symbol=symbol, size=11, color=color, line=dict(width=1, color="black")),
                        name=f"{SHORT_NAMES[code]} switch {label}",
                        hovertemplate=f"{code} penalty {label} at %{{x}}<br>utilisation %{{y:.2%}}<extra></extra>",
                    ))
    fig.add_hrect(y0=release, y1=trigger, fillcolor="orange", opacity=0.18, line_width=0)
    fig.add_hline(y=trigger, line_color="#ff7f0e", line_dash="dash",
                  annotation_text=f"{trigger:.0%} trigger 触发", annotation_position="top left")
    fig.add_hline(y=release, line_color="#2ca02c", line_dash="dash",
                  annotation_text=f"{release:.0%} release 解除", annotation_position="bottom left")
    fig.update_layout(height=330, yaxis=dict(title="utilisation 利用率", tickformat=".0%", rangemode="tozero"),
                      yaxis2=dict(range=[0, 1], overlaying="y", visible=False), xaxis=dict(rangebreaks=SESSION_BREAKS),
                      **_LAYOUT)
    return fig


def ladder_figure(code: str, bars: pd.DataFrame, ladder: LadderView, last_n: int = 240) -> go.Figure:
    """Recent 1-minute bars with the grid ladder: lots' buy and take-profit prices and the next buy trigger."""
    fig = go.Figure()
    b = bars.tail(last_n) if len(bars) else bars
    if len(b):
        fig.add_trace(go.Candlestick(
            x=ms_to_naive_cst(b["t"].to_numpy()), open=b["o"], high=b["h"], low=b["l"], close=b["c"],
            name="1-min bars 分钟线", increasing_line_color="#d62728", decreasing_line_color="#2ca02c",
        ))
    for lot in ladder.lots:
        fig.add_hline(y=lot.buy_price, line_color="#1f77b4", line_dash="dot", line_width=1,
                      annotation_text=f"L{lot.layer_index} buy {lot.buy_price:.3f}", annotation_position="bottom left",
                      annotation_font_size=10)
        fig.add_hline(y=lot.take_profit, line_color="#2ca02c", line_dash="dot", line_width=1,
                      annotation_text=f"L{lot.layer_index} TP {lot.take_profit:.3f}", annotation_position="top right",
                      annotation_font_size=10)
    nb = ladder.next_buy
    if nb is not None and nb.trigger is not None:
        if nb.anchor is not None:
            fig.add_hline(y=nb.anchor, line_color="grey", line_width=1,
                          annotation_text=f"anchor 锚 {nb.anchor:.3f}", annotation_position="top left")
        fig.add_hline(y=nb.trigger_without_penalty, line_color="#ff7f0e", line_width=2,
                      annotation_text=f"next buy 下一买点 {nb.trigger_without_penalty:.3f}",
                      annotation_position="bottom right")
        if nb.trigger_with_penalty is not None and nb.trigger_with_penalty != nb.trigger_without_penalty:
            fig.add_hline(y=nb.trigger_with_penalty, line_color="#8c564b", line_dash="dash", line_width=2,
                          annotation_text=f"with penalty 惩罚后 {nb.trigger_with_penalty:.3f}",
                          annotation_position="bottom left")
    fig.update_layout(height=380, title=SHORT_NAMES.get(code, code), xaxis=dict(rangeslider_visible=False, rangebreaks=SESSION_BREAKS),
                      yaxis=dict(title="price 价格", tickformat=".3f"), **_LAYOUT)
    return fig


def alpha_figure(alpha: pd.DataFrame, max_points: int = MAX_POINTS) -> go.Figure:
    """acc_alpha of the two symbols over time (realised alpha of released lots, CNY)."""
    fig = go.Figure()
    for code in CODES:
        col = f"alpha_{symbol_key(code)}"
        if col not in alpha.columns or not len(alpha):
            continue
        thin = downsample(alpha, col, max_points)
        fig.add_trace(go.Scatter(x=thin["t"], y=thin[col], mode="lines", line_shape="hv",
                                   name=f"acc_alpha {SHORT_NAMES[code]}", line=dict(color=COLORS[code], width=2)))
    fig.update_layout(height=320, yaxis=dict(title="acc_alpha (CNY)", tickformat=",.0f"),
                      xaxis=dict(rangebreaks=SESSION_BREAKS), **_LAYOUT)
    return fig


def pool_history_figure(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> go.Figure:
    """Committed (used + frozen) per symbol over time, stacked."""
    fig = go.Figure()
    if len(frame):
        thin = downsample(frame, "utilization", max_points)
        for code in CODES:
            k = symbol_key(code)
            fig.add_trace(go.Scatter(x=thin["t"], y=thin[f"used_{k}"] + thin[f"frozen_{k}"], stackgroup="one",
                                     line_shape="hv", name=f"{SHORT_NAMES[code]} committed",
                                     line=dict(color=COLORS[code])))
    fig.update_layout(height=260, yaxis=dict(title="CNY", tickformat=","), xaxis=dict(rangebreaks=SESSION_BREAKS),
                      **_LAYOUT)
    return fig
