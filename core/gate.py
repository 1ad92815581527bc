"""Release gate: a pure verdict over the audit events of a period.

Any KRI failure vetoes; a period with too little activity fails too, so "no trading" never passes.

Which audit events feed each KRI (the executor emits them; Decimals as strings):

| KRI                          | source events and fields                                                      |
|------------------------------|-------------------------------------------------------------------------------|
| mdd_rolling                  | EQUITY_SNAPSHOT ``data.equity`` (optional ``data.peak_equity`` seeds the peak) |
| liq_distance_p95             | EQUITY_SNAPSHOT ``data.liq_distance_p95`` and RISK_LIQ_DISTANCE_LOW           |
|                              | ``data.liq_distance`` (min over the period; None = no margined position)      |
| leverage_violation_count     | RISK_LEVERAGE_VIOLATION events + ORDER_FILLED with ``data.opens`` true and    |
|                              | ``data.leverage`` > ``data.max_leverage``                                     |
| reduce_only_violation_count  | RISK_REDUCE_ONLY_VIOLATION events + ORDER_FILLED with ``data.opens`` true and |
|                              | ``data.risk_state`` in COOLDOWN / FUSE / REDUCE_ONLY                          |
| data_gap_seconds             | DATA_GAP ``data.seconds`` (summed)                                            |
| orders_submitted             | distinct orders of ORDER_SUBMITTED and ORDER_ERROR (a send whose outcome was  |
|                              | unknown, later found or declared lost, was still submitted)                   |
| exec_reject_rate             | ORDER_REJECTED / orders_submitted                                             |
| exec_error_rate              | ORDER_ERROR / orders_submitted                                                |
| effective_signals_per_day    | SIGNAL_ACCEPTED per trading day of the period                                 |
| fills_per_day                | ORDER_FILLED per trading day of the period                                    |
| protective_missing_count     | EXEC_PROTECTIVE_ORDER_MISSING                                                 |
| rate_limited_rate            | EXEC_RATE_LIMITED / orders_submitted (when ``max_rate_limited_rate`` is set;  |
|                              | over it fails FAIL_EXEC_ERROR_RATE)                                           |
| rate_limit_backoff_count     | EXEC_RATE_LIMIT_BACKOFF (when ``max_rate_limit_backoffs`` is set; over it     |
|                              | fails FAIL_EXEC_ERROR_RATE)                                                   |

Presets (``GATE_PRESETS``, ``gridbridge gate --preset``): ``etf`` is ``GateConfig()``; ``crypto`` is a 24/7
venue's: continuous calendar, its own activity floors (a trend loop trades far less often than a grid), and
the rate-limit KRIs switched on.

A trading day (``trading_days``) is a weekday, not in ``GateConfig.holidays``, whose session
(09:30-15:00 China time) the period overlaps; ``calendar="continuous"`` counts calendar days instead (a
24/7 venue). A period without a trading day has activity rates of 0, so it fails the floors.

The Shadow stage (``GateStage``): a release needs >= ``shadow_min_trading_days`` of paper or dry run with
every KRI passing. ``stage=SHADOW`` gates such a run itself (wrong run mode or too short:
FAIL_SHADOW_STAGE); ``stage=RELEASE`` needs a ``ShadowEvidence`` (the shadow run's gate report) that passed,
of the same config and strategy versions, else FAIL_SHADOW_STAGE; ``stage=RUN`` (a replay or a dry run's own
check) has no Shadow step.

``actions_summary`` counts risk transitions by target state, kill-switch commands, rollbacks, filter drops,
control rejections and signal rejections.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.events import AuditCode, AuditEvent

ZERO = Decimal(0)
REDUCING = {"COOLDOWN", "FUSE", "REDUCE_ONLY"}
EXCHANGE_TZ = timezone(timedelta(hours=8))  # China time: the ETF sessions
SESSION_OPEN = time(9, 30)
SESSION_CLOSE = time(15, 0)
SHADOW_RUN_MODES = frozenset({"paper", "dry-run"})


class FailReason(str, Enum):
    FAIL_MDD_EXCEEDED = "FAIL_MDD_EXCEEDED"
    FAIL_LIQ_DISTANCE_LOW = "FAIL_LIQ_DISTANCE_LOW"
    FAIL_LEVERAGE_VIOLATION = "FAIL_LEVERAGE_VIOLATION"
    FAIL_REDUCE_ONLY_VIOLATION = "FAIL_REDUCE_ONLY_VIOLATION"
    FAIL_EXEC_ERROR_RATE = "FAIL_EXEC_ERROR_RATE"
    FAIL_REJECT_RATE = "FAIL_REJECT_RATE"
    FAIL_DATA_GAP = "FAIL_DATA_GAP"
    FAIL_LOW_ACTIVITY_SIGNALS = "FAIL_LOW_ACTIVITY_SIGNALS"
    FAIL_LOW_ACTIVITY_FILLS = "FAIL_LOW_ACTIVITY_FILLS"
    FAIL_PROTECTIVE_ORDER_MISSING = "FAIL_PROTECTIVE_ORDER_MISSING"
    FAIL_SHADOW_STAGE = "FAIL_SHADOW_STAGE"


class GateStage(str, Enum):
    """What the gated period is for: a run's own check, the Shadow stage itself, or a release."""

    RUN = "run"
    SHADOW = "shadow"
    RELEASE = "release"


class GateConfig(BaseModel):
    """Gate thresholds; fractions as Decimals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_mdd: Decimal = Decimal("0.12")
    min_liq_distance: Decimal = Decimal("0.08")
    max_leverage_violations: int = 0
    max_reduce_only_violations: int = 0
    max_data_gap_seconds: Decimal = Decimal("300")
    max_reject_rate: Decimal = Decimal("0.05")
    max_exec_error_rate: Decimal = Decimal("0.02")
    min_signals_per_day: Decimal = Decimal("24")  # per trading day
    min_fills_per_day: Decimal = Decimal("4")  # per trading day
    max_protective_missing: int = 0
    shadow_min_trading_days: int = 14
    calendar: Literal["exchange", "continuous"] = "exchange"
    holidays: tuple[date, ...] = ()  # weekdays without a session (exchange calendar)
    # Venue rate limits (None = not checked: the ETF broker has none we hit).
    max_rate_limited_rate: Decimal | None = None
    max_rate_limit_backoffs: int | None = None


# A 24/7 margined venue (the crypto trend loop): every calendar day counts; a trend strategy emits a
# target per bar and symbol but trades only past its hysteresis, so its floors are far below the grid's.
CRYPTO_GATE = GateConfig(
    calendar="continuous",
    min_signals_per_day=Decimal("12"),
    min_fills_per_day=Decimal("1"),
    max_rate_limited_rate=Decimal("0.05"),
    max_rate_limit_backoffs=3,
)
GATE_PRESETS: dict[str, GateConfig] = {"etf": GateConfig(), "crypto": CRYPTO_GATE}


def gate_config(preset: str = "etf", overrides: Mapping[str, Any] | None = None) -> GateConfig:
    """A preset with some fields replaced (a ``--gate-config`` file), validated as a whole; raises
    ``ValueError`` for an unknown preset or a bad field."""
    if preset not in GATE_PRESETS:
        raise ValueError(f"unknown gate preset {preset!r} (known: {', '.join(sorted(GATE_PRESETS))})")
    base = GATE_PRESETS[preset].model_dump()
    return GateConfig.model_validate({**base, **dict(overrides or {})})


@dataclass(frozen=True)
class VersionSet:
    config: str
    strategy: str
    git: str


@dataclass(frozen=True)
class ShadowEvidence:
    """The Shadow stage's own gate report, as a release gate reads it back."""

    run_mode: str
    stage: str
    verdict: str
    trading_days: int
    version_set: VersionSet

    @classmethod
    def from_report(cls, data: Mapping[str, Any]) -> ShadowEvidence:
        """From ``render_json`` output; raises ``ValueError`` when it is not a gate report."""
        try:
            vs = data["version_set"]
            return cls(
                run_mode=str(data.get("run_mode", "unknown")),
                stage=str(data.get("stage", GateStage.RUN.value)),
                verdict=str(data["verdict"]),
                trading_days=int(data["kris"]["trading_days"]),
                version_set=VersionSet(str(vs["config"]), str(vs["strategy"]), str(vs["git"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a shadow gate report: {exc!r}") from exc


@dataclass(frozen=True)
class GateReport:
    period_from: datetime
    period_to: datetime
    version_set: VersionSet
    verdict: str
    kris: Mapping[str, Any]
    fail_reasons: tuple[FailReason, ...]
    actions_summary: Mapping[str, int]
    thresholds: Mapping[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)
    stage: GateStage = GateStage.RUN
    run_mode: str = "unknown"

    @property
    def passed(self) -> bool:
        return self.verdict == "PASS"

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": {"from": self.period_from.isoformat(), "to": self.period_to.isoformat()},
            "stage": self.stage.value,
            "run_mode": self.run_mode,
            "version_set": {
                "config": self.version_set.config,
                "strategy": self.version_set.strategy,
                "git": self.version_set.git,
            },
            "verdict": self.verdict,
            "kris": dict(self.kris),
            "fail_reasons": [r.value for r in self.fail_reasons],
            "actions_summary": dict(self.actions_summary),
            "thresholds": dict(self.thresholds),
            "notes": list(self.notes),
        }


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _ratio(num: int, den: int) -> Decimal:
    return Decimal(num) / Decimal(den) if den else ZERO


def trading_days(period_from: datetime, period_to: datetime, cfg: GateConfig) -> int:
    """Trading days of ``[period_from, period_to)``: weekdays (China time), not holidays, whose session
    09:30-15:00 the period overlaps; with ``calendar="continuous"`` the calendar days it touches."""
    start, end = period_from.astimezone(EXCHANGE_TZ), period_to.astimezone(EXCHANGE_TZ)
    if cfg.calendar == "continuous":
        return max((end - start).days + (1 if (end - start) % timedelta(days=1) else 0), 0)
    first, last = start.date(), end.date()
    if first > last:
        return 0
    holidays = {d for d in cfg.holidays if first <= d <= last and d.weekday() < 5}

    def is_session_day(day: date) -> bool:
        return day.weekday() < 5 and day not in holidays

    def overlaps(day: date) -> bool:
        opens = datetime.combine(day, SESSION_OPEN, EXCHANGE_TZ)
        return start < datetime.combine(day, SESSION_CLOSE, EXCHANGE_TZ) and opens < end

    # weekdays in [first, last] by arithmetic (a clumsy --from 0001-01-01 must not loop for seconds)
    span = (last - first).days + 1
    weeks, rest = divmod(span, 7)
    count = weeks * 5 + sum(1 for k in range(rest) if (first.weekday() + k) % 7 < 5) - len(holidays)
    # only the first and the last day can be partly outside the period
    for day in {first, last}:
        if is_session_day(day) and not overlaps(day):
            count -= 1
    return count


def shadow_problem(
    stage: GateStage,
    run_mode: str,
    days: int,
    version_set: VersionSet,
    cfg: GateConfig,
    shadow: ShadowEvidence | None,
) -> str | None:
    """Why the Shadow step fails (``None``: it passes or does not apply to ``stage``)."""
    need = cfg.shadow_min_trading_days
    if stage is GateStage.SHADOW:
        if run_mode not in SHADOW_RUN_MODES:
            return f"shadow: run mode {run_mode!r} is not paper or dry-run"
        if days < need:
            return f"shadow: {days} trading day(s) of {run_mode}, needs {need}"
        return None
    if stage is GateStage.RELEASE:
        if shadow is None:
            return "shadow: no Shadow stage report given"
        if shadow.stage != GateStage.SHADOW.value or shadow.run_mode not in SHADOW_RUN_MODES:
            return f"shadow: the report is a {shadow.stage} gate of a {shadow.run_mode!r} run, not a Shadow stage"
        if shadow.verdict != "PASS":
            return "shadow: the Shadow stage did not pass its KRIs"
        if shadow.trading_days < need:
            return f"shadow: {shadow.trading_days} trading day(s), needs {need}"
        ours, theirs = version_set, shadow.version_set
        if (ours.config, ours.strategy) != (theirs.config, theirs.strategy):
            return (f"shadow: ran config {theirs.config} / strategy {theirs.strategy}, "
                    f"releasing {ours.config} / {ours.strategy}")
    return None


def evaluate_gate(
    events: Iterable[AuditEvent],
    period_from: datetime,
    period_to: datetime,
    version_set: VersionSet,
    cfg: GateConfig | None = None,
    notes: Iterable[str] = (),
    stage: GateStage = GateStage.RUN,
    run_mode: str = "unknown",
    shadow: ShadowEvidence | None = None,
) -> GateReport:
    """KRIs, verdict and fail reasons for the events with ``period_from <= ts < period_to``.

    ``stage`` adds the Shadow step (see the module doc); ``run_mode`` (paper, dry-run, live, backtest) is
    recorded in the report, and ``shadow`` is the Shadow stage's report for a release."""
    c = cfg or GateConfig()
    if period_to <= period_from:
        raise ValueError("the gate period must have --to after --from")
    counts: Counter[AuditCode] = Counter()
    actions: Counter[str] = Counter()
    peak: Decimal | None = None
    mdd = ZERO
    liq_min: Decimal | None = None
    lev_viol = ro_viol = 0
    gap = ZERO
    sent: set[str] = set()
    sent_anonymous = 0
    for ev in events:
        if not (period_from <= ev.ts < period_to):
            continue
        counts[ev.code] += 1
        d = ev.data
        if ev.code in (AuditCode.ORDER_SUBMITTED, AuditCode.ORDER_ERROR):
            coid = d.get("client_order_id")
            if isinstance(coid, str) and coid:
                sent.add(coid)
            else:
                sent_anonymous += 1
        if ev.code is AuditCode.EQUITY_SNAPSHOT:
            equity = _dec(d.get("equity"))
            seed = _dec(d.get("peak_equity"))
            if equity is not None:
                peak = max(x for x in (peak, seed, equity) if x is not None)
                if peak > 0:
                    mdd = max(mdd, (peak - equity) / peak)
            liq = _dec(d.get("liq_distance_p95"))
            if liq is not None:
                liq_min = liq if liq_min is None else min(liq_min, liq)
        elif ev.code is AuditCode.RISK_LIQ_DISTANCE_LOW:
            # The risk kernel saw the distance under its line between two equity snapshots.
            liq = _dec(d.get("liq_distance"))
            if liq is not None:
                liq_min = liq if liq_min is None else min(liq_min, liq)
        elif ev.code is AuditCode.ORDER_FILLED and d.get("opens") is True:
            lev, cap = _dec(d.get("leverage")), _dec(d.get("max_leverage"))
            if lev is not None and cap is not None and lev > cap:
                lev_viol += 1
            if str(d.get("risk_state", "")) in REDUCING:
                ro_viol += 1
        elif ev.code is AuditCode.RISK_LEVERAGE_VIOLATION:
            lev_viol += 1
        elif ev.code is AuditCode.RISK_REDUCE_ONLY_VIOLATION:
            ro_viol += 1
        elif ev.code is AuditCode.DATA_GAP:
            gap += _dec(d.get("seconds")) or ZERO
        elif ev.code is AuditCode.RISK_STATE_CHANGE:
            actions[f"risk_to_{d.get('to', '?')}"] += 1
        if ev.code.value.startswith("KILL_SWITCH_") or ev.code in (
            AuditCode.ROLLBACK,
            AuditCode.EXEC_FILTER_IGNORE,
            AuditCode.CONTROL_REJECTED,
            AuditCode.SIGNAL_REJECTED,
            AuditCode.RISK_SYMBOL_FROZEN,
            AuditCode.EXEC_DUST_POSITION_STUCK,
            AuditCode.RISK_LIQ_DISTANCE_LOW,
            AuditCode.RISK_CROSS_MARGIN_FOUND,
            AuditCode.EXEC_RATE_LIMIT_BACKOFF,
            AuditCode.EXEC_PROTECTIVE_TIMEOUT,
            AuditCode.EXEC_TP_ATTACH_FAILED,
        ):
            actions[ev.code.value] += 1

    days = trading_days(period_from, period_to, c)
    submitted = len(sent) + sent_anonymous

    def per_day(n: int) -> Decimal:
        return Decimal(n) / Decimal(days) if days else ZERO
    kris: dict[str, Any] = {
        "mdd_rolling": mdd,
        "liq_distance_p95": liq_min,
        "leverage_violation_count": lev_viol,
        "reduce_only_violation_count": ro_viol,
        "data_gap_seconds": gap,
        "exec_reject_rate": _ratio(counts[AuditCode.ORDER_REJECTED], submitted),
        "exec_error_rate": _ratio(counts[AuditCode.ORDER_ERROR], submitted),
        "effective_signals_per_day": per_day(counts[AuditCode.SIGNAL_ACCEPTED]),
        "fills_per_day": per_day(counts[AuditCode.ORDER_FILLED]),
        "protective_missing_count": counts[AuditCode.EXEC_PROTECTIVE_ORDER_MISSING],
        "rate_limited_rate": _ratio(counts[AuditCode.EXEC_RATE_LIMITED], submitted),
        "rate_limit_backoff_count": counts[AuditCode.EXEC_RATE_LIMIT_BACKOFF],
        "orders_submitted": submitted,
        "trading_days": days,
    }
    shadow_fail = shadow_problem(stage, run_mode, days, version_set, c, shadow)
    # The venue refusing our pace is an execution error: it fails the same KRI when its limits are set.
    rate_limited = (
        c.max_rate_limited_rate is not None and kris["rate_limited_rate"] > c.max_rate_limited_rate
    ) or (c.max_rate_limit_backoffs is not None and kris["rate_limit_backoff_count"] > c.max_rate_limit_backoffs)
    fails: list[FailReason] = []
    checks: list[tuple[bool, FailReason]] = [
        (mdd > c.max_mdd, FailReason.FAIL_MDD_EXCEEDED),
        (liq_min is not None and liq_min < c.min_liq_distance, FailReason.FAIL_LIQ_DISTANCE_LOW),
        (lev_viol > c.max_leverage_violations, FailReason.FAIL_LEVERAGE_VIOLATION),
        (ro_viol > c.max_reduce_only_violations, FailReason.FAIL_REDUCE_ONLY_VIOLATION),
        (kris["exec_error_rate"] > c.max_exec_error_rate or rate_limited, FailReason.FAIL_EXEC_ERROR_RATE),
        (kris["exec_reject_rate"] > c.max_reject_rate, FailReason.FAIL_REJECT_RATE),
        (gap > c.max_data_gap_seconds, FailReason.FAIL_DATA_GAP),
        (kris["effective_signals_per_day"] < c.min_signals_per_day, FailReason.FAIL_LOW_ACTIVITY_SIGNALS),
        (kris["fills_per_day"] < c.min_fills_per_day, FailReason.FAIL_LOW_ACTIVITY_FILLS),
        (
            kris["protective_missing_count"] > c.max_protective_missing,
            FailReason.FAIL_PROTECTIVE_ORDER_MISSING,
        ),
        (shadow_fail is not None, FailReason.FAIL_SHADOW_STAGE),
    ]
    fails = [reason for failed, reason in checks if failed]
    all_notes = tuple(notes) + ((shadow_fail,) if shadow_fail is not None else ())
    return GateReport(
        period_from=period_from,
        period_to=period_to,
        version_set=version_set,
        verdict="FAIL" if fails else "PASS",
        kris=kris,
        fail_reasons=tuple(fails),
        actions_summary=dict(sorted(actions.items())),
        thresholds=c.model_dump(mode="json"),
        notes=all_notes,
        stage=stage,
        run_mode=run_mode,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Reports are for humans and dashboards: floats here are fine (accounting stays exact elsewhere).
        return float(value)
    return value


def render_json(report: GateReport) -> str:
    """The report as indented JSON (Decimals as numbers)."""
    data = report.to_dict()
    data["kris"] = {k: _plain(v) for k, v in data["kris"].items()}
    return json.dumps(data, indent=2, sort_keys=False)


def render_markdown(report: GateReport) -> str:
    """A short human-readable report."""
    vs = report.version_set
    lines = [
        f"# Gate report: **{report.verdict}**",
        "",
        f"- Period: {report.period_from.isoformat()} -> {report.period_to.isoformat()}",
        f"- Stage: {report.stage.value} ({report.run_mode} run)",
        f"- Versions: config `{vs.config}`, strategy `{vs.strategy}`, git `{vs.git}`",
        "",
        "## KRIs",
        "",
        "| KRI | value |",
        "|---|---|",
    ]
    for key, value in report.kris.items():
        shown = (
            "n/a" if value is None else (f"{float(value):.4f}" if isinstance(value, Decimal) else str(value))
        )
        lines.append(f"| {key} | {shown} |")
    lines += ["", "## Fail reasons", ""]
    lines += [f"- {r.value}" for r in report.fail_reasons] or ["- none"]
    lines += ["", "## Actions", ""]
    lines += [f"- {k}: {v}" for k, v in report.actions_summary.items()] or ["- none"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"
