"""View models of the crypto pages (carry engine, position manager): pure functions from a status file's read
outcome to what the page draws, with no streamlit and no IO, so they are tested on their own.

The engines publish the files (``crypto.carry.status_file``, ``crypto.pm.status_file``); the page reads them
with the tolerant readers there, which keep the last good view. Here a read outcome becomes banners (missing,
invalid, stale, stopped: said plainly, never a crash), metrics, tables and zone colours: margin health
against the carry's top-up (80 %) and close-all (50 %) lines, the pm's SLIs against their SLOs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from crypto.carry.status_file import CARRY_STATUS_FILE, CarryPairStatus, CarryStatus, CarryThresholds
from crypto.pm.status_file import PM_STATUS_FILE, PmPositionStatus, PmSlis, PmSlos, PmStatus
from shared_schema.atomic_io import ReadOutcome, ReadStatus

Level = Literal["error", "warning", "info", "success"]
GREEN, ORANGE, RED, GREY = "#2ca02c", "#ff7f0e", "#d62728", "#7f7f7f"
DEFAULT_STALE_AFTER_S = 120.0

# Margin-health zones of a carry pair, against the risk section's lines.
ZONE_OK, ZONE_TOPUP, ZONE_CLOSE, ZONE_NONE = "OK", "TOP_UP", "CLOSE_ALL", "NO_POSITION"
ZONE_COLORS = {ZONE_OK: GREEN, ZONE_TOPUP: ORANGE, ZONE_CLOSE: RED, ZONE_NONE: GREY}
# An SLI's verdict against its SLO.
SLO_MET, SLO_BREACHED, NO_DATA, NO_SLO = "MET", "BREACHED", "NO DATA", "—"
VERDICT_COLORS = {SLO_MET: GREEN, SLO_BREACHED: RED, NO_DATA: GREY, NO_SLO: GREY}


@dataclass(frozen=True)
class Banner:
    level: Level
    text: str


@dataclass(frozen=True)
class Metric:
    label: str
    value: str
    help: str = ""
    color: str = ""


def fmt_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_utc(ts: datetime | int | None) -> str:
    """A wall time (aware datetime) or an epoch-ms engine time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if ts is None:
        return "—"
    if isinstance(ts, int):
        ts = datetime.fromtimestamp(ts / 1000, tz=timezone.utc)
    return f"{ts.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def usdt(x: Decimal | None, places: int = 2) -> str:
    return "—" if x is None else f"{x:,.{places}f}"


def qty(x: Decimal | None) -> str:
    """A base-unit size without trailing zeros (0.0823, not 0.082300000000)."""
    if x is None:
        return "—"
    text = f"{x.quantize(Decimal('1e-8')):f}".rstrip("0").rstrip(".")
    return text or "0"


def ms(x: float | None) -> str:
    """A latency: one decimal under 100 ms (a fake answers in well under 1 ms), whole ms above."""
    return "—" if x is None else f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def pct(x: Decimal | float | None, places: int = 1) -> str:
    return "—" if x is None else f"{float(x):.{places}%}"


def file_banners(outcome: ReadOutcome[Any], written_at: datetime | None, now: datetime, stale_after_s: float,
                 name: str, folder: str, writer_hint: str, running: bool = True) -> list[Banner]:
    """What the page says about the file itself: missing, invalid (the last good view kept), stale (only while
    its writer says it is running: a stopped engine's last file is expected to age)."""
    out: list[Banner] = []
    kept = outcome.model is not None
    if outcome.status == ReadStatus.MISSING and not kept:
        out.append(Banner("error", f"No `{name}` in `{folder}` yet. {writer_hint}"))
    elif outcome.status == ReadStatus.MISSING:
        out.append(Banner("warning", f"`{name}` has disappeared from `{folder}`: showing the last good view "
                                     f"(written {fmt_utc(written_at)})."))
    elif outcome.status == ReadStatus.INVALID and not kept:
        out.append(Banner("error", f"`{name}` cannot be read: {outcome.error}. Nothing to show until the writer "
                                   f"replaces it."))
    elif outcome.status == ReadStatus.INVALID:
        out.append(Banner("warning", f"`{name}` cannot be read ({outcome.error}): showing the last good view "
                                     f"(written {fmt_utc(written_at)})."))
    if written_at is not None and running:
        age = (now - written_at).total_seconds()
        if age > stale_after_s:
            out.append(Banner("warning", f"`{name}` not updated for {fmt_age(age)} (last written "
                                         f"{fmt_utc(written_at)}): is its writer running?"))
    return out


# ------------------------------------------------------------------------------------------ carry


@dataclass(frozen=True)
class PairView:
    symbol: str
    state: str
    health: Decimal | None
    zone: str
    zone_color: str
    zone_text: str
    metrics: tuple[Metric, ...]
    legs: tuple[dict[str, str], ...]
    status: CarryPairStatus


@dataclass(frozen=True)
class CarryPage:
    configured: bool
    banners: tuple[Banner, ...]
    status: CarryStatus | None = None
    engine: tuple[Metric, ...] = ()
    breaker: Metric | None = None
    pairs: tuple[PairView, ...] = ()
    actions: tuple[dict[str, str], ...] = ()  # newest first


def health_zone(health: Decimal | None, t: CarryThresholds) -> tuple[str, str]:
    """The zone of a margin health and the sentence that says what the engine does there."""
    if health is None:
        return ZONE_NONE, "no short position: nothing to measure"
    if health < t.close_health:
        return ZONE_CLOSE, (f"{pct(health)} is under the close line {pct(t.close_health, 0)}: the engine "
                            f"closes everything")
    if health < t.topup_health:
        action = "adds margin back to " + pct(t.topup_target, 0) if t.topups_enabled else "top-ups are OFF"
        return ZONE_TOPUP, f"{pct(health)} is under the top-up line {pct(t.topup_health, 0)}: {action}"
    return ZONE_OK, (f"{pct(health)}: above the top-up line {pct(t.topup_health, 0)} "
                     f"(close-all under {pct(t.close_health, 0)})")


def liq_distance_metric(p: CarryPairStatus, t: CarryThresholds) -> Metric:
    """The short's liquidation distance against the engine's second top-up rule (under 25 %: top-up to 35 %)."""
    line = t.topup_liq_distance
    under = p.liq_distance is not None and line is not None and p.liq_distance < line
    rule = "" if line is None else (f"top-up when under {pct(line, 0)}" + (
        f", back to {pct(t.topup_liq_target, 0)}" if t.topup_liq_target is not None else ""))
    color = GREY if p.liq_distance is None else ORANGE if under else GREEN
    return Metric("liquidation distance 强平距离", pct(p.liq_distance, 2), rule, color)


def _pair_view(p: CarryPairStatus, t: CarryThresholds) -> PairView:
    zone, text = health_zone(p.margin_health, t)
    metrics = (
        Metric("state 状态", p.state),
        Metric("funding earned 资金费收入 (USDT)", usdt(p.funding, 4),
               "booked from the venue's funding bills on the open position (signed: + received)"),
        Metric("funding rate 当期费率", "—" if p.funding_rate is None else f"{float(p.funding_rate):.4%}",
               "the venue's rate for the coming settlement, as last read"),
        Metric("margin health 保证金健康度", pct(p.margin_health), text, ZONE_COLORS[zone]),
        Metric("leg gap 两腿差", pct(p.leg_gap, 2), "|spot - short| / larger leg; rebalanced above 1 %"),
        Metric("liquidation price 强平价", usdt(p.liq_price, 1)),
        liq_distance_metric(p, t),
        Metric("mark 标记价", usdt(p.mark, 1)),
        Metric("top-ups 追加保证金次数", str(p.topups)),
        Metric("open PnL 持仓盈亏 (USDT)", usdt(p.open_pnl), "both legs, funding and fees, marked at the engine's "
                                                            "last hourly risk task"),
    )
    legs = (
        {"pair": p.symbol, "leg": "spot (long)", "symbol": p.spot_symbol, "qty": qty(p.spot_qty),
         "entry": usdt(p.spot_entry, 1), "margin": "—", "dust": qty(p.dust) if p.dust else ""},
        {"pair": p.symbol, "leg": "perp (short)", "symbol": p.symbol, "qty": qty(p.short_qty),
         "entry": usdt(p.perp_entry, 1), "margin": usdt(p.margin), "dust": ""},
    )
    return PairView(p.symbol, p.state, p.margin_health, zone, ZONE_COLORS[zone], text, metrics, legs, p)


def _action_row(a: Any) -> dict[str, str]:
    d = a.data
    if a.code == "CARRY_STATE_CHANGE":
        what = f"{d.get('from')} → {d.get('to')} ({d.get('trigger')})"
    elif a.code == "CARRY_FUNDING_SETTLED":
        what = f"funding {d.get('amount')} at rate {d.get('rate')}"
    elif a.code == "CARRY_MARGIN_TOPUP":
        what = f"top-up {d.get('amount')} (health after {d.get('health_after', '—')})"
    elif a.code == "CARRY_CLOSE":
        what = f"close: {d.get('reason')} net {d.get('net_pnl', '—')}"
    else:
        what = ", ".join(f"{k} {v}" for k, v in list(d.items())[:4])
    return {"time": a.ts.replace("T", " ").replace("+00:00", " UTC"), "code": a.code, "severity": a.severity,
            "symbol": a.symbol or "", "cause": a.cause, "what": what}


def carry_page(outcome: ReadOutcome[CarryStatus] | None, now: datetime, folder: str = "",
               stale_after_s: float = DEFAULT_STALE_AFTER_S) -> CarryPage:
    """The carry page from the status file's read outcome (None: no carry folder configured)."""
    if outcome is None:
        return CarryPage(False, (Banner("info", "No carry folder configured. Start the dashboard with "
                                                "`gridbridge dashboard --carry-dir STATE_DIR` (the carry engine's "
                                                "`--state` folder, where it writes `carry_status.json`), or set "
                                                "`GRIDBRIDGE_DASHBOARD_CARRY_DIR`."),))
    s = outcome.model
    banners = file_banners(outcome, s.written_at if s else None, now, stale_after_s, CARRY_STATUS_FILE, folder,
                           "Is `gridbridge crypto carry run` (or `dry-run --state`) writing to this folder?",
                           s is None or s.running)
    if s is None:
        return CarryPage(True, tuple(banners))
    if not s.running:
        banners.append(Banner("info", f"The engine shut down cleanly at {fmt_utc(s.written_at)}: this is its last "
                                      f"state."))
    if s.risk_state not in ("NORMAL", "DEGRADED"):
        banners.append(Banner("error", f"Risk state {s.risk_state}: no new opens."))
    if s.emergency:
        banners.append(Banner("error", "Emergency: the engine closes every pair."))
    for p in s.pairs:
        zone, text = health_zone(p.margin_health, s.thresholds)
        if zone == ZONE_CLOSE:
            banners.append(Banner("error", f"{p.symbol} margin health {text}"))
        elif zone == ZONE_TOPUP:
            banners.append(Banner("warning", f"{p.symbol} margin health {text}"))
        liq = liq_distance_metric(p, s.thresholds)
        if liq.color == ORANGE:
            banners.append(Banner("warning", f"{p.symbol} liquidation distance {liq.value}: {liq.help}"))
    b, t = s.breaker, s.thresholds
    breaker_text = (f"TRIPPED: {b.reason}" if b.tripped else "armed (not tripped)")
    breaker = Metric("circuit breaker 熔断", breaker_text,
                     f"losses in a row {b.consecutive_losses}/{t.max_consecutive_losses}, today's loss "
                     f"{usdt(b.day_loss)}/{usdt(t.max_daily_loss_usdt)} USDT; a trip stays until a manual reset",
                     RED if b.tripped else GREEN)
    if b.tripped:
        banners.append(Banner("error", f"Circuit breaker tripped ({b.reason}): no new opens until a manual reset."))
    engine = (
        Metric("risk state 风控", s.risk_state),
        Metric("funding earned 资金费合计 (USDT)", usdt(sum((p.funding for p in s.pairs), Decimal(0)), 4),
               "over the open positions"),
        Metric("closed pairs' net PnL 已平仓盈亏 (USDT)", usdt(s.realized_total),
               "net of fees and funding, every pair closed so far"),
        Metric("losses in a row 连亏", f"{b.consecutive_losses} / {t.max_consecutive_losses}"),
        Metric("today's loss 当日亏损 (USDT)", f"{usdt(b.day_loss)} / {usdt(t.max_daily_loss_usdt)}"),
    )
    return CarryPage(True, tuple(banners), s, engine, breaker, tuple(_pair_view(p, t) for p in s.pairs),
                     tuple(_action_row(a) for a in reversed(s.actions)))


# ------------------------------------------------------------------------------------------ position manager


@dataclass(frozen=True)
class SliRow:
    name: str
    value: str
    target: str
    verdict: str
    color: str
    detail: str


@dataclass(frozen=True)
class PmPage:
    configured: bool
    banners: tuple[Banner, ...]
    status: PmStatus | None = None
    slis: tuple[SliRow, ...] = ()
    service: tuple[Metric, ...] = ()
    positions: tuple[dict[str, str], ...] = ()
    events: tuple[dict[str, str], ...] = ()  # newest first


def sli_rows(s: PmSlis, slo: PmSlos) -> tuple[SliRow, ...]:
    """The six SLIs; the two with an SLO (order p95, stop-move success) get MET / BREACHED / NO DATA."""
    def verdict(value: float | None, ok: bool) -> tuple[str, str]:
        v = NO_DATA if value is None else SLO_MET if ok else SLO_BREACHED
        return v, VERDICT_COLORS[v]

    p95 = s.order_p95_ms
    v1, c1 = verdict(p95, p95 is not None and Decimal(str(p95)) <= slo.order_p95_ms_max)
    stop = s.stop_move_success_rate
    v2, c2 = verdict(stop, stop is not None and Decimal(str(stop)) >= slo.stop_move_success_min)
    return (
        SliRow("end-to-end order p95 下单延迟", ms(p95),
               f"≤ {slo.order_p95_ms_max} ms", v1, c1, f"{s.orders_measured} orders measured (intent -> venue ack)"),
        SliRow("stop-move success 移止损成功率", pct(stop, 2), f"≥ {pct(slo.stop_move_success_min, 0)}", v2, c2,
               f"{s.stop_moves} stop moves"),
        SliRow("take-profit success 止盈成功率", pct(s.take_profit_success_rate, 2), NO_SLO, NO_SLO, GREY,
               f"{s.take_profits} take-profits"),
        SliRow("stagnated 停滞仓位", str(s.stagnated_count), NO_SLO, NO_SLO, GREY, "positions flagged stagnated"),
        SliRow("treasury transfers 划转次数", str(s.treasury_transfer_count), NO_SLO, NO_SLO, GREY, ""),
        SliRow("treasury transfer success 划转成功率", pct(s.treasury_transfer_success_rate, 2), NO_SLO, NO_SLO, GREY,
               ""),
    )


def _position_row(p: PmPositionStatus) -> dict[str, str]:
    side = "long" if p.direction > 0 else "short"
    dist = "—"
    if p.stop is not None and p.mark is not None and p.mark > 0:
        dist = pct((p.mark - p.stop) / p.mark * p.direction, 2)
    return {"pos_id": p.pos_id, "symbol": p.symbol, "kind": p.kind, "side": side, "qty": qty(p.qty),
            "entry": usdt(p.entry, 2), "mark": usdt(p.mark, 2), "stop": usdt(p.stop, 2), "stop distance": dist,
            "stop on venue": "yes" if p.stop_on_venue else ("guard (spot)" if p.kind == "spot" else "NO"),
            "ladder": f"{len(p.ladder_fired)}/{p.ladder_rungs} rungs"
                      + (f" ({', '.join(str(i) for i in p.ladder_fired)})" if p.ladder_fired else ""),
            "adds": f"{p.add_count}/{p.add_cap} (+{qty(p.adds_qty)})", "best ROE": pct(p.best_roe),
            "realised": usdt(p.realised_pnl), "stagnated": "yes" if p.stagnated else ""}


def _event_row(e: Any) -> dict[str, str]:
    return {"time": fmt_utc(e.ts_ms), "symbol": e.symbol, "pos_id": e.pos_id, "type": e.type,
            "detail": ", ".join(f"{k} {v}" for k, v in sorted(e.data.items()))}


def pm_page(outcome: ReadOutcome[PmStatus] | None, now: datetime, folder: str = "",
            stale_after_s: float = DEFAULT_STALE_AFTER_S) -> PmPage:
    """The position-manager page from the status file's read outcome (None: no pm folder configured)."""
    if outcome is None:
        return PmPage(False, (Banner("info", "No position-manager folder configured. Start the dashboard with "
                                             "`gridbridge dashboard --pm-dir DIR` (the folder of `pm serve --db`, "
                                             "where it writes `pm_status.json`), or set "
                                             "`GRIDBRIDGE_DASHBOARD_PM_DIR`."),))
    s = outcome.model
    banners = file_banners(outcome, s.written_at if s else None, now, stale_after_s, PM_STATUS_FILE, folder,
                           "Is `gridbridge crypto pm serve --db DIR/...` running?", s is None or s.running)
    if s is None:
        return PmPage(True, tuple(banners))
    if not s.running:
        banners.append(Banner("info", f"The service stopped at {fmt_utc(s.written_at)}: this is its last state."))
    if not s.redis_ok:
        banners.append(Banner("error", "Redis is down: positions and events as of the last good read; the SLIs "
                                       "are live."))
    rows = sli_rows(s.slis, s.slos)
    for r in rows:
        if r.verdict == SLO_BREACHED:
            banners.append(Banner("error", f"SLO breached: {r.name} {r.value} (target {r.target})"))
    unprotected = [p.pos_id for p in s.positions if p.kind == "swap" and not p.stop_on_venue]
    if unprotected:
        banners.append(Banner("error", f"No stop on the venue for {', '.join(unprotected)}."))
    service = (
        Metric("open positions 持仓", str(len(s.positions))),
        Metric("retry queue 重试队列", "—" if s.retry_queue is None else str(s.retry_queue)),
        Metric("Redis", "up" if s.redis_ok else "DOWN", color=GREEN if s.redis_ok else RED),
        Metric("service errors 错误", str(s.service_errors)),
        Metric("config version 配置版本", s.config_version),
    )
    return PmPage(True, tuple(banners), s, rows, service, tuple(_position_row(p) for p in s.positions),
                  tuple(_event_row(e) for e in reversed(s.events)))
