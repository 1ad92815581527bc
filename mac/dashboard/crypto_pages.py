"""The dashboard's crypto pages (carry engine, position manager): thin streamlit rendering of
``mac.dashboard.crypto_view_models``.

The engines write the files (``carry_status.json`` in the carry engine's state dir, ``pm_status.json`` beside
the position manager's store); the pages read them through the tolerant readers of ``crypto.*.status_file``,
held per folder for the whole server (``st.cache_resource``) so a bad read keeps the last good view. Folders
come like the ETF page's: ``gridbridge dashboard --carry-dir DIR --pm-dir DIR`` (``launch.py`` turns them
into ``GRIDBRIDGE_DASHBOARD_CARRY_DIR`` / ``..._PM_DIR``), or ``streamlit run app.py -- --carry-dir DIR``.
The page is chosen in the sidebar or by the URL (``?page=carry``, ``?page=pm``).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import streamlit as st

from crypto.carry.status_file import CarryStatusReader
from crypto.pm.status_file import PmStatusReader
from mac.dashboard.crypto_view_models import Banner, CarryPage, Metric, PmPage, carry_page, fmt_utc, pm_page
from mac.dashboard.crypto_views import margin_health_figure

ENV = "GRIDBRIDGE_DASHBOARD_"
PAGES = {"grid": "ETF grid 网格", "carry": "Carry 资金费套利", "pm": "Position manager 仓位管理"}
CARRY_TITLE = "Carry engine 资金费套利"
PM_TITLE = "Position manager 仓位管理"


def crypto_settings() -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--carry-dir", default=os.environ.get(ENV + "CARRY_DIR", ""))
    p.add_argument("--pm-dir", default=os.environ.get(ENV + "PM_DIR", ""))
    args, _ = p.parse_known_args(sys.argv[1:] if any(a in sys.argv for a in ("--carry-dir", "--pm-dir")) else [])
    return args


@st.cache_resource(show_spinner=False)
def _carry_reader(folder: str) -> CarryStatusReader:
    return CarryStatusReader(Path(folder))


@st.cache_resource(show_spinner=False)
def _pm_reader(folder: str) -> PmStatusReader:
    return PmStatusReader(Path(folder))


def choose_page() -> str:
    """The sidebar's page choice, kept in the URL (``?page=``) so a page can be linked and reloaded."""
    names = list(PAGES)
    asked = st.query_params.get("page", "grid")
    page = st.sidebar.radio("page 页面", names, index=names.index(asked) if asked in names else 0,
                            format_func=PAGES.__getitem__, key="crypto_page_choice")
    if st.query_params.get("page") != page:
        st.query_params["page"] = page
    return str(page)


def render_selected(refresh_s: float, stale_after_s: float) -> bool:
    """Draw the carry or pm page when one is chosen (True); False leaves the ETF grid page to the caller."""
    page = choose_page()
    if page == "grid":
        return False
    settings = crypto_settings()
    run_every = refresh_s if refresh_s > 0 else None
    fragment = st.fragment(run_every=run_every) if hasattr(st, "fragment") else (lambda fn: fn)
    if page == "carry":
        st.title(CARRY_TITLE)
        folder = settings.carry_dir

        @fragment
        def carry_live() -> None:
            outcome = _carry_reader(str(Path(folder).resolve())).read() if folder else None
            render_carry(carry_page(outcome, datetime.now(timezone.utc), folder, stale_after_s), folder)

        carry_live()
    else:
        st.title(PM_TITLE)
        folder = settings.pm_dir

        @fragment
        def pm_live() -> None:
            outcome = _pm_reader(str(Path(folder).resolve())).read() if folder else None
            render_pm(pm_page(outcome, datetime.now(timezone.utc), folder, stale_after_s), folder)

        pm_live()
    return True


# ------------------------------------------------------------------------------------------ drawing


def _banners(banners: tuple[Banner, ...]) -> None:
    for b in banners:
        getattr(st, b.level)(b.text)


def _metrics(metrics: tuple[Metric, ...], per_row: int = 5) -> None:
    for i in range(0, len(metrics), per_row):
        row = metrics[i:i + per_row]
        cols = st.columns(per_row)
        for col, m in zip(cols, row, strict=False):
            col.metric(m.label, m.value, help=m.help or None)


def _table(frame: pd.DataFrame) -> None:
    # A plain HTML table, not the canvas grid: the rows are few, and their text is then readable as text
    # (selectable, searchable, and checked by the browser test).
    st.table(frame.set_index(frame.columns[0]))


def _colored(m: Metric) -> None:
    st.markdown(f"**{m.label}**: <span style='color:{m.color}; font-weight:600'>{m.value}</span>"
                + (f" — {m.help}" if m.help else ""), unsafe_allow_html=True)


def render_carry(view: CarryPage, folder: str) -> None:
    _banners(view.banners)
    s = view.status
    if s is None:
        return
    st.caption(f"`{folder}` · written {s.written_at:%Y-%m-%d %H:%M:%S} UTC · seq {s.seq} · engine time "
               f"{fmt_utc(s.engine_ms)} (the fake's clock in a dry run) · refreshed "
               f"{datetime.now(timezone.utc):%H:%M:%S} UTC")
    st.subheader("Engine 引擎")
    _metrics(view.engine, per_row=5)
    if view.breaker is not None:
        _colored(view.breaker)
    st.subheader("Margin health 保证金健康度 — against the top-up and close-all lines")
    for p in view.pairs:
        _colored(Metric(f"{p.symbol} margin health", p.zone, p.zone_text, p.zone_color))
    if any(p.health is not None for p in view.pairs):
        st.plotly_chart(margin_health_figure(view.pairs, s.thresholds), key="fig_carry_health")
    st.subheader("Pairs & legs 交易对与两腿")
    for p in view.pairs:
        st.markdown(f"#### {p.symbol}")
        _metrics(p.metrics, per_row=5)
    legs = [leg for p in view.pairs for leg in p.legs]
    _table(pd.DataFrame(legs))
    st.subheader("Recent actions 最近操作 — audited transitions")
    if view.actions:
        _table(pd.DataFrame(view.actions))
    else:
        st.caption("no action recorded yet")


def render_pm(view: PmPage, folder: str) -> None:
    _banners(view.banners)
    s = view.status
    if s is None:
        return
    st.caption(f"`{folder}` · written {s.written_at:%Y-%m-%d %H:%M:%S} UTC · seq {s.seq} · service time "
               f"{fmt_utc(s.clock_ms)} · refreshed {datetime.now(timezone.utc):%H:%M:%S} UTC")
    st.subheader("SLIs against the SLOs 服务指标")
    for i, r in enumerate(view.slis):
        if i % 3 == 0:
            cols = st.columns(3)
        with cols[i % 3]:
            st.metric(r.name, r.value, help=f"target {r.target}; {r.detail}" if r.detail else f"target {r.target}")
            st.markdown(f"<span style='color:{r.color}; font-weight:600'>SLO {r.verdict}</span> · target "
                        f"{r.target}", unsafe_allow_html=True)
    st.subheader("Service 服务")
    _metrics(view.service, per_row=6)
    st.subheader("Positions 持仓 — stop, ladder, add-ons")
    if view.positions:
        _table(pd.DataFrame(view.positions))
    else:
        st.caption("no open position")
    st.subheader("Recent events 最近事件")
    if view.events:
        _table(pd.DataFrame(view.events))
    else:
        st.caption("no event yet")
