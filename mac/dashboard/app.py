"""The gridbridge dashboard page (``gridbridge dashboard`` runs ``streamlit run`` on this file).

Thin on purpose: it reads settings, asks ``mac.dashboard.live`` / ``replay`` for a snapshot (parses cached on each
file's mtime and size), draws ``mac.dashboard.views`` figures and writes signed kill-switch commands. The
live part refreshes itself in a fragment (``st.fragment(run_every=...)``), so the page never flickers.

Settings (``launch.py`` sets them): ``GRIDBRIDGE_DASHBOARD_SHARED_DIR``, ``..._REPLAY`` (a dry-run or backtest
folder), ``..._STATE_DIR`` (the executor's state dir: its pool history and journal), ``..._CONFIG`` (the run's
config: the grid params the ladders are drawn with), ``..._REFRESH_S``, ``..._STALE_S``;
or ``streamlit run app.py -- --shared-dir DIR [--replay DIR] ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import streamlit as st

from core.control import secret_from_env
from mac.dashboard import crypto_pages, views
from mac.dashboard.analysis import lots_table
from mac.dashboard.control import (
    CONTROL_DIR,
    KILL_ACTIONS,
    KILL_LABELS,
    pending_commands,
    read_acks,
    write_control,
)
from mac.dashboard.labels import CODES, NAMES, RISK_LABELS, SHORT_NAMES, reason_label, reduction_text
from mac.dashboard.live import DEFAULT_STALE_AFTER_S, Memory, fmt_age, load_live
from mac.dashboard.orders import filter_orders
from mac.dashboard.parsing import Parsed, cached_parse_key, file_signature, parse_file
from mac.dashboard.replay import Replay, load_replay
from mac.dashboard.sources import Sources
from mac.dashboard.view_models import DOWN, INVALID, MISSING, OK, Snapshot
from shared_schema.types import CST

ENV = "GRIDBRIDGE_DASHBOARD_"


def settings() -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--shared-dir", default=os.environ.get(ENV + "SHARED_DIR", ""))
    p.add_argument("--replay", default=os.environ.get(ENV + "REPLAY", ""))
    p.add_argument("--state-dir", default=os.environ.get(ENV + "STATE_DIR", ""))
    p.add_argument("--config", default=os.environ.get(ENV + "CONFIG", ""))
    p.add_argument("--refresh", type=float, default=float(os.environ.get(ENV + "REFRESH_S", "2") or 2))
    p.add_argument("--stale-after", type=float,
                   default=float(os.environ.get(ENV + "STALE_S", DEFAULT_STALE_AFTER_S) or 120))
    argv = sys.argv[1:] if any(a in sys.argv for a in ("--shared-dir", "--replay")) else []
    args, _ = p.parse_known_args(argv)
    return args


# ------------------------------------------------------------------------------------------ caching


@st.cache_data(max_entries=128, show_spinner=False)
def _parse_cached(kind: str, path: str, mtime_ns: int, size: int, config: str, config_mtime_ns: int,
                  config_size: int) -> Parsed:
    return parse_file(kind, Path(path), Path(config) if config else None)


def parse(kind: str, path: Path, config: Path | None = None) -> Parsed:
    # Keyed on mtime and size (of the config too: a journal is replayed under it): an unchanged file is
    # parsed once; a missing one is re-checked every run.
    key = cached_parse_key(kind, path, config)
    if key[3] < 0:
        return parse_file(kind, path, config)
    return _parse_cached(*key)


@st.cache_resource(show_spinner=False)
def _memory(shared_dir: str) -> Memory:
    return Memory()


@st.cache_resource(show_spinner=False, max_entries=4)
def _replay(folder: str, state_dir: str, config: str, signature: tuple) -> Replay:
    return load_replay(folder, parse, state_dir or None, config or None)


def _replay_signature(folder: Path) -> tuple:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")]
    return tuple(sorted((str(p), *file_signature(p)) for p in files[:200]))


# ------------------------------------------------------------------------------------------ helpers


def yuan(x: object) -> str:
    return f"{float(x):,.2f}"  # type: ignore[arg-type]


def price(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


# ------------------------------------------------------------------------------------------ sections


def banners(snap: Snapshot) -> None:
    for h in snap.health:
        if h.status == OK:
            continue
        text = f"**{h.name}: {h.status}** — {h.error}"
        if h.status == DOWN:
            st.error(f"执行端离线 Executor down · {text}")
        elif h.status in (MISSING, INVALID) and h.required:
            st.error(f"数据异常 Data problem · {text}")
        elif h.required:
            st.warning(f"数据过期 Stale data · {text}")
        else:
            st.info(text)


def executor_banner(shared: Path) -> None:
    """Who owns the shared folder (``executor_lease.json``) and which operator doors that executor has off."""
    from shared_schema.lease import lease_view

    view = lease_view(shared, datetime.now(CST))
    if view.state == "LIVE":
        st.caption(f"执行端 Executor: {view.text}")
    elif view.state == "NONE":
        st.warning(f"执行端 Executor: {view.text}")
    else:
        st.error(f"执行端 Executor: {view.text}")
    for door in view.disabled_doors:
        st.warning(f"控制通道关闭 Control door OFF · {door}")


def pool_section(snap: Snapshot) -> None:
    st.subheader("Pool 资金池 — how much is committed")
    pool = snap.pool
    if pool is None:
        st.error("No pool view: shared_pool.json has never been read. 无资金池数据")
        return
    cols = st.columns(4)
    cols[0].metric("committed 已占用 (used+frozen)", yuan(pool.committed))
    cols[1].metric("utilisation 利用率", f"{pool.utilization:.2%}")
    cols[2].metric("free 可用", yuan(pool.free))
    cols[3].metric("physical pool 资金池", yuan(pool.physical_pool))
    cp = snap.params[CODES[0]]
    st.plotly_chart(views.pool_figure(pool, cp.penalty_release, cp.penalty_trigger), key="fig_pool")
    rows = []
    for code in CODES:
        rows.append({"symbol": NAMES[code], "used 已用": yuan(pool.used[code]),
                     "frozen 冻结": yuan(pool.frozen[code]),
                     "committed": yuan(pool.used[code] + pool.frozen[code]),
                     "cap 上限": yuan(pool.caps.get(code, 0)), "acc_alpha": yuan(pool.acc_alpha[code])})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="tbl_pool")
    st.caption(f"Reserve line 备用金线: {yuan(pool.reserve_line)} committed "
               f"({1 - float(pool.reserve_ratio):.0%}); a layer-0 buy may not pass it, deeper layers may.")


def penalty_section(snap: Snapshot) -> None:
    st.subheader("Step penalty 步长惩罚 — on or off, and why")
    for code, a in snap.penalty.items():
        text = f"**{SHORT_NAMES[code]}** — {a.rule_text()} · {a.why_text()}"
        (st.warning if a.on else st.success)(text)
        if not a.agrees_with_node:
            st.error(f"{code}: the node's persisted penalty flag ({a.node_flag}) differs from its history walked "
                     f"through penalty_after ({a.on}).")
        if a.next_on is not None and a.next_on != a.on:
            st.info(f"{code}: at the pool's utilisation now ({a.pool_utilization:.2%}) the next bar switches the "
                    f"penalty {'ON' if a.next_on else 'OFF'}.")
    st.plotly_chart(views.hysteresis_figure(snap.penalty), key="fig_hysteresis")


def grid_section(snap: Snapshot) -> None:
    st.subheader("Grids 网格 — where each grid buys and sells next")
    cols = st.columns(len(CODES))
    for col, code in zip(cols, CODES, strict=True):
        lad = snap.ladders[code]
        nb = lad.next_buy
        with col:
            st.markdown(f"#### {NAMES[code]}")
            if lad.approximate:
                st.caption("replay: lots from the vault's allocations at this time (take-profit at a flat trend)")
            m = st.columns(3)
            m[0].metric("last 最新价", price(lad.last_price))
            m[1].metric("next buy 下一买点", price(nb.trigger if nb else None),
                        help="highest tick price whose close triggers a buy on the next bar (mac.grid.ladder)")
            m[2].metric("lots 持仓层数", str(len(lad.lots)))
            m = st.columns(3)
            m[0].metric("without penalty 无惩罚", price(nb.trigger_without_penalty if nb else None))
            m[1].metric("with penalty 有惩罚", price(nb.trigger_with_penalty if nb else None))
            m[2].metric("ATR", "—" if lad.atr is None else f"{lad.atr:.4f}")
            trend = {"UP": "UP 上升 ↑", "DOWN": "DOWN 下降 ↓", "FLAT": "FLAT 平 →"}[lad.trend]
            breaker = "ON 熔断暂停买入" if lad.breaker_on else "off"
            cooling = "n/a" if lad.cooling_left is None else (
                f"{lad.cooling_left} bars 冷却中" if lad.cooling_left else "off")
            st.markdown(f"trend 趋势 **{trend}** · breaker (ATR > 2×ATR_AVG) **{breaker}** · cooling-off 冷静期 "
                        f"**{cooling}** · penalty **{'ON' if lad.penalty_on else 'off'}**")
            if lad.mismatch:
                st.error(f"reconciliation 对账不一致: {lad.mismatch}")
            st.plotly_chart(views.ladder_figure(code, snap.bars.get(code, pd.DataFrame()), lad), key=f"fig_ladder_{code}")
            table = lots_table(lad)
            if len(table):
                st.dataframe(table, hide_index=True, key=f"tbl_lots_{code}")
            else:
                st.caption("no open lot 无持仓层")


def alpha_section(snap: Snapshot) -> None:
    st.subheader("Alpha race 超额收益竞赛 — acc_alpha 159201 vs 512890")
    if snap.pool is not None:
        m = st.columns(3)
        a1, a2 = (snap.pool.acc_alpha[c] for c in CODES)
        m[0].metric(f"acc_alpha {SHORT_NAMES[CODES[0]]}", yuan(a1))
        m[1].metric(f"acc_alpha {SHORT_NAMES[CODES[1]]}", yuan(a2))
        m[2].metric("lead 领先", yuan(abs(a1 - a2)), help=f"{'159201' if a1 >= a2 else '512890'} leads")
    if len(snap.alpha):
        st.plotly_chart(views.alpha_figure(snap.alpha), key="fig_alpha")
        src = snap.pool_history.source if snap.pool_history else "pool files read in this session"
        st.caption(f"series from: {src} + pool files read in this session")
    else:
        st.info("no alpha history yet")
    if snap.metrics:
        tot = snap.metrics.get("total", {})
        st.caption(f"backtest metrics: alpha {tot.get('alpha')}, realised {tot.get('realised_alpha')}, trades "
                   f"{tot.get('trades')}, max drawdown {tot.get('max_drawdown')}")


def orders_section(snap: Snapshot) -> None:
    st.subheader("Signals & results 信号与回报 — what the executor did with every signal")
    df = snap.orders
    c = st.columns(3)
    codes = c[0].multiselect("symbol 品种", sorted(x for x in df["code"].dropna().unique()), key="f_code")
    statuses = c[1].multiselect("status 状态", sorted(df["status"].dropna().unique()), key="f_status")
    reasons = c[2].multiselect("reason 原因", sorted(r for r in df["reason"].dropna().unique() if r), key="f_reason",
                               format_func=lambda r: f"{r} · {reason_label(r)}")
    shown = filter_orders(df, codes, statuses, reasons)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    st.caption(f"{len(shown)} of {len(df)} rows · " + " · ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    st.dataframe(shown, hide_index=True, key="tbl_orders", column_config={
        "price": st.column_config.NumberColumn(format="%.3f"),
        "avg_price": st.column_config.NumberColumn(format="%.3f"),
        "amount": st.column_config.NumberColumn(format="%.2f"),
    })


def risk_section(snap: Snapshot) -> None:
    st.subheader("Risk 风控 — is anything wrong")
    pool = snap.pool
    m = st.columns(5)
    state = pool.risk_state if pool else "unknown"
    zh, en = RISK_LABELS.get(state, ("", ""))
    m[0].metric("risk state 风控状态", f"{state} {zh}".strip(), help=en or None)
    m[1].metric("halted 暂停", "YES 是" if pool and pool.halted else "no 否")
    m[2].metric("drawdown 回撤", "—" if snap.drawdown is None else f"{snap.drawdown:.2%}")
    mismatches = {c: n.mismatch for c, n in snap.nodes.items() if n.mismatch}
    m[3].metric("reconciliation 对账", "MISMATCH 不一致" if mismatches else "OK 一致")
    reduction = pool.reduction if pool else None
    m[4].metric("forced reduction 强制减仓", reduction.mode if reduction else "none 无",
                help="COOLDOWN sells the oldest grid lots down to a share of the exposure at its start; "
                     "Force Reduce sells every sellable grid lot. Never the base position.")
    if pool and pool.halted:
        st.error("Executor is HALTED: no new orders. 执行器已暂停")
    if reduction is not None:
        st.warning(reduction_text(reduction))
    for code, text in mismatches.items():
        st.error(f"{code} position mismatch 持仓不一致: {text} — no new layers until it clears")
    fresh = pd.DataFrame([{"file": h.name, "status": h.status,
                           "age": "—" if h.age_s is None else fmt_age(h.age_s), "detail": h.error}
                          for h in snap.health])
    st.markdown("**Data freshness 数据新鲜度**")
    st.dataframe(fresh, hide_index=True, key="tbl_health")
    st.markdown("**Audit events 审计事件**")
    if len(snap.audit):
        st.dataframe(snap.audit[["ts", "code", "severity", "symbol", "cause"]].tail(200).iloc[::-1],
                     hide_index=True, key="tbl_audit")
    else:
        st.caption("no audit log found in the shared or state dir")
    events = [dict(e, code=c) for c, n in snap.nodes.items() for e in n.events[-50:] if e.get("kind") != "RESULT"]
    if events:
        st.markdown("**Node events 节点事件**")
        st.dataframe(pd.DataFrame(events).iloc[::-1], hide_index=True, key="tbl_node_events")


def _confirm_command(shared: Path, action: str, secret: bytes, symbol: str | None) -> None:
    try:
        command_id, path = write_control(shared, action, secret, datetime.now(CST), symbol=symbol)
    except (ValueError, OSError) as exc:
        st.session_state["kill_error"] = f"could not write the command: {exc}"
    else:
        st.session_state["kill_last"] = (command_id, action, str(path))
        st.session_state["kill_error"] = None
    st.session_state["kill_pending"] = None


def kill_switch_section(shared: Path) -> None:
    st.subheader("Kill switch 紧急控制")
    secret = secret_from_env(os.environ)
    if secret is None:
        st.error("GRIDBRIDGE_CONTROL_SECRET is not set: commands cannot be signed, the buttons are disabled. "
                 "未设置控制密钥，按钮已禁用。")
    symbol = st.selectbox("symbol for Force Unlock 解锁品种", CODES, key="unlock_symbol")
    cols = st.columns(len(KILL_ACTIONS))
    # Callbacks run before the rerun, so the confirmation appears (and goes) on the same click.
    for col, action in zip(cols, KILL_ACTIONS, strict=True):
        col.button(KILL_LABELS[action], key=f"kill_{action}", disabled=secret is None,
                   type="primary" if action == "FORCE_HALT" else "secondary",
                   on_click=st.session_state.__setitem__, args=("kill_pending", action))
    pending = st.session_state.get("kill_pending")
    if pending and secret is not None:
        target = symbol if pending == "FORCE_UNLOCK_SYMBOL" else None
        st.warning(f"Confirm **{KILL_LABELS[pending]}**{f' for {target}' if target else ''}? A signed command "
                   f"goes to `{shared / CONTROL_DIR}` for the executor. 确认发送？")
        c = st.columns(2)
        c[0].button("Confirm 确认", key="kill_confirm", type="primary", on_click=_confirm_command,
                    args=(shared, pending, secret, target))
        c[1].button("Cancel 取消", key="kill_cancel", on_click=st.session_state.__setitem__,
                    args=("kill_pending", None))
    if st.session_state.get("kill_error"):
        st.error(st.session_state["kill_error"])
    last = st.session_state.get("kill_last")
    acks = read_acks(shared)
    if last:
        command_id, action, path = last
        ack = next((a for a in acks if a.get("command_id") == command_id), None)
        if ack is None:
            st.info(f"sent {action} `{command_id}` → `{path}`; waiting for the executor's acknowledgement 等待确认")
        elif ack.get("accepted"):
            st.success(f"{action} `{command_id}` accepted by the executor at {ack.get('ts')} 已执行")
        else:
            st.error(f"{action} `{command_id}` refused: {ack.get('reason')} 被拒绝")
    waiting = pending_commands(shared)
    if waiting:
        st.caption(f"commands not yet picked up: {', '.join(waiting)}")
    if acks:
        st.dataframe(pd.DataFrame(acks).drop(columns=["_mtime"], errors="ignore"), hide_index=True, key="tbl_acks")


def glance(snap: Snapshot) -> None:
    """One line that answers 'is anything wrong' before any scrolling."""
    pool = snap.pool
    pens = " · ".join(f"{SHORT_NAMES[c]} {'ON' if a.on else 'off'}" for c, a in snap.penalty.items())
    problems = len(snap.problems)
    parts = [
        f"utilisation 利用率 **{pool.utilization:.1%}**" if pool else "utilisation **n/a**",
        f"penalty 惩罚 **{pens}**",
        f"risk 风控 **{pool.risk_state if pool else 'n/a'}**",
        "**HALTED 已暂停**" if pool and pool.halted else "not halted",
        f"data **{'OK' if not problems else f'{problems} problem(s)'}**",
    ]
    st.markdown(" | ".join(parts))


def render(snap: Snapshot) -> None:
    glance(snap)
    banners(snap)
    pool_section(snap)
    penalty_section(snap)
    grid_section(snap)
    alpha_section(snap)
    orders_section(snap)
    risk_section(snap)


# ------------------------------------------------------------------------------------------ page


def _fragment(run_every: float | None):
    if hasattr(st, "fragment"):
        return st.fragment(run_every=run_every)
    return lambda fn: fn  # pragma: no cover - streamlit < 1.37: no auto-refresh


def main() -> None:
    st.set_page_config(page_title="gridbridge dashboard", layout="wide")
    args = settings()
    if crypto_pages.render_selected(args.refresh, args.stale_after):  # the carry / pm pages (sidebar, ?page=)
        return
    st.title("gridbridge 网格看板")
    if args.replay:
        replay_page(args)
        return
    if not args.shared_dir:
        st.error("No shared folder: run `gridbridge dashboard --shared-dir DIR` (or --replay DIR).")
        return
    shared = Path(args.shared_dir)
    sources = Sources.resolve(shared, args.state_dir or None, args.config or None)
    memory = _memory(str(shared.resolve()))

    @_fragment(args.refresh if args.refresh > 0 else None)
    def live() -> None:
        snap = load_live(sources, datetime.now(CST), memory, parse, args.stale_after)
        as_of = "—" if snap.as_of is None else f"{snap.as_of:%Y-%m-%d %H:%M:%S}"
        st.caption(f"live · `{sources.shared_dir}` · market time 行情时间 {as_of} · refreshed "
                   f"{datetime.now(CST):%H:%M:%S} every {args.refresh:g} s"
                   + (f" · journal `{sources.journal_path()}`" if sources.journal_path() else ""))
        executor_banner(shared)
        render(snap)

    @_fragment(args.refresh if args.refresh > 0 else None)
    def kill() -> None:
        kill_switch_section(shared)

    live()
    kill()


def replay_page(args: argparse.Namespace) -> None:
    folder = Path(args.replay)
    try:
        config = ((args.config, *file_signature(args.config)),) if args.config else ()
        signature = _replay_signature(folder) + config
        rep = _replay(str(folder), args.state_dir, args.config, signature)
    except (ValueError, OSError) as exc:
        st.error(f"cannot replay {folder}: {exc}")
        return
    st.caption(f"replay 回放 · {rep.kind} · `{rep.root}` · read-only (the kill switch is off in replay)")
    if not rep.times:
        st.warning("nothing recorded in this folder yet")
        render(rep.snapshot_at(None))
        return
    lo, hi = rep.times[0].to_pydatetime(), rep.times[-1].to_pydatetime()
    if hi <= lo:
        hi = lo + timedelta(minutes=1)
    t = st.slider("time 时间", min_value=lo, max_value=hi, value=hi, step=timedelta(minutes=1),
                  format="YYYY-MM-DD HH:mm", key="replay_time")
    render(rep.snapshot_at(pd.Timestamp(t)))


main()
