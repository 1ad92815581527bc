"""Plotly figures of the crypto pages: pure functions of the view models, no streamlit, no IO."""

from __future__ import annotations

import plotly.graph_objects as go

from crypto.carry.status_file import CarryThresholds
from mac.dashboard.crypto_view_models import GREEN, ORANGE, RED, PairView

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), template="plotly_white", showlegend=False)


def margin_health_figure(pairs: tuple[PairView, ...], t: CarryThresholds) -> go.Figure:
    """Each pair's margin health as a bar coloured by its zone, against the close-all, top-up and target lines."""
    fig = go.Figure()
    shown = [p for p in pairs if p.health is not None]
    top = max([1.2, float(t.topup_target) + 0.1] + [float(p.health) + 0.1 for p in shown if p.health is not None])
    fig.add_vrect(x0=0, x1=float(t.close_health), fillcolor=RED, opacity=0.10, line_width=0)
    fig.add_vrect(x0=float(t.close_health), x1=float(t.topup_health), fillcolor=ORANGE, opacity=0.10, line_width=0)
    fig.add_vrect(x0=float(t.topup_health), x1=top, fillcolor=GREEN, opacity=0.06, line_width=0)
    fig.add_trace(go.Bar(
        y=[p.symbol for p in shown], x=[float(p.health) for p in shown if p.health is not None], orientation="h",
        marker_color=[p.zone_color for p in shown], text=[f"{float(p.health):.1%}" for p in shown if p.health is not None],
        textposition="outside", hovertemplate="%{y}: margin health %{x:.2%}<extra></extra>",
    ))
    lines = [(t.close_health, f"{float(t.close_health):.0%} close all 全平", RED),
             (t.topup_health, f"{float(t.topup_health):.0%} top-up 追加", ORANGE),
             (t.topup_target, f"{float(t.topup_target):.0%} target", GREEN)]
    for i, (x, label, color) in enumerate(lines):
        fig.add_vline(x=float(x), line_color=color, line_dash="dash", line_width=2)
        fig.add_annotation(x=float(x), y=1.04 + 0.12 * (i % 2), yref="paper", text=label, showarrow=False,
                           font=dict(color=color), xanchor="center")
    fig.update_layout(height=140 + 50 * max(1, len(shown)), xaxis=dict(range=[0, top], tickformat=".0%",
                                                                    title="margin health 保证金健康度"), **_LAYOUT)
    return fig
