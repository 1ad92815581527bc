"""The dashboard's words: symbol names and the bilingual (中文 / English) labels of reasons, statuses and
risk states, plus the one-line text of a forced reduction. Pure data and string functions."""

from __future__ import annotations

from shared_schema.models import DESIGN_SYMBOLS, Reason, ReductionStatus

CODES: tuple[str, ...] = DESIGN_SYMBOLS
NAMES = {
    "159201.SZ": "159201.SZ 自由现金流ETF (free-cash-flow)",
    "512890.SH": "512890.SH 红利低波ETF (dividend low-vol)",
}
SHORT_NAMES = {"159201.SZ": "159201 自由现金流", "512890.SH": "512890 红利低波"}

REASON_LABELS: dict[str, tuple[str, str]] = {
    Reason.INVALID_SIGNAL.value: ("信号无效", "invalid signal"),
    Reason.DUPLICATE_ID_CONFLICT.value: ("重复编号冲突", "duplicate id with another payload"),
    Reason.INSUFFICIENT_CASH.value: ("资金不足", "broker cash below amount + fee"),
    Reason.NOMINAL_CAP.value: ("超出单品种上限", "symbol's nominal cap (200,000) reached"),
    Reason.POOL_RESERVE_15.value: ("触及15%备用金", "layer-0 buy would break the 15% reserve"),
    Reason.POOL_EXHAUSTED.value: ("资金池用尽", "physical pool (300,000) exhausted"),
    Reason.NOT_SELLABLE_T1.value: ("T+1不可卖", "not sellable today (T+1)"),
    Reason.OUTSIDE_SESSION.value: ("非交易时段", "outside the trading session"),
    Reason.PRICE_LIMIT.value: ("超出涨跌停", "outside the ±10% daily limit"),
    Reason.BROKER_REJECT.value: ("券商拒单", "refused by the broker"),
    Reason.ORDER_EXPIRED.value: ("委托过期", "order expired"),
    Reason.HALTED.value: ("已暂停交易", "kill switch: halted"),
    Reason.NO_QUOTE.value: ("无行情", "no quote for the code"),
    Reason.RISK_STATE.value: ("风控状态禁止", "risk state forbids opening"),
    Reason.RATE_LIMIT.value: ("频率限制", "rate limited"),
}
DETAIL_LABELS: dict[str, tuple[str, str]] = {
    "LOT_SIZE": ("非整百股", "shares not a multiple of 100"),
    "OFF_TICK": ("价格不在最小变动单位", "price off the 0.001 tick"),
    "UNKNOWN_CODE": ("未知代码", "unknown code"),
    "FUTURE_TIMESTAMP": ("时间戳在未来", "timestamp in the future"),
    "AMOUNT_BELOW_NOTIONAL": ("金额低于名义价值", "amount below price x shares"),
    "RELEASE_UNKNOWN": ("释放的买单未知", "released lot unknown"),
    "RELEASE_EMPTY": ("释放的买单已空", "released lot already empty"),
    "RELEASE_BUSY": ("释放的买单正在卖出", "released lot already in a sell"),
    "SIGNAL_ID_REUSED": ("信号编号重复使用", "signal_id reused"),
    "CLIENT_ORDER_ID_REUSED": ("委托编号重复使用", "client_order_id reused"),
    "OUTSIDE_DAILY_LIMIT": ("超出涨跌停", "outside the daily limit"),
    "ABOVE_CAN_USE_VOLUME": ("超过可用数量", "above can_use_volume"),
    "POSITIONS_UNKNOWN": ("持仓未知", "positions unknown"),
    "FORCE_HALT": ("强制暂停", "Force Halt"),
    "BROKER_CASH": ("券商可用资金不足", "broker cash"),
    "CASH_UNKNOWN": ("资金未知", "cash unknown"),
    "SIGNAL_EXPIRED": ("信号过期", "signal expired"),
}
STATUS_LABELS: dict[str, tuple[str, str]] = {
    "PENDING": ("待处理", "waiting for the executor"),
    "ACCEPTED": ("已接受", "accepted"),
    "SENT": ("已报", "sent"),
    "PARTIAL": ("部分成交", "partly filled"),
    "FILLED": ("已成", "filled"),
    "CANCELLED": ("已撤", "cancelled"),
    "REJECTED": ("拒绝", "rejected"),
    "EXPIRED": ("过期", "expired"),
}
RISK_LABELS: dict[str, tuple[str, str]] = {
    "NORMAL": ("正常", "all clear"),
    "DEGRADED": ("降级", "thresholds x1.5, budget 50%"),
    "COOLDOWN": ("冷却", "no opening trades, reduce to 50%"),
    "REDUCE_ONLY": ("只减仓", "no opening trades"),
    "FUSE": ("熔断", "full close, manual Reset FUSE only"),
}


def reason_label(code: str | None) -> str:
    """``中文 / English`` for a reason or detail code ('' for none, the code itself when unknown)."""
    if not code:
        return ""
    zh, en = REASON_LABELS.get(code) or DETAIL_LABELS.get(code) or ("", code)
    return f"{zh} / {en}" if zh else en


def reduction_text(reduction: ReductionStatus) -> str:
    """One line for the forced reduction the executor is carrying out (COOLDOWN or Force Reduce)."""
    goal = (f"selling oldest grid lots down to {reduction.target:,.2f}" if reduction.target is not None
            else "selling every sellable grid lot" if reduction.mode == "FORCE_REDUCE"
            else "waiting for the exposure at the cooldown's start")
    parts = [f"forced reduction 强制减仓 {reduction.mode}: grid exposure {reduction.exposure:,.2f}, {goal}"]
    if reduction.selling:
        parts.append(f"selling 卖出中 {', '.join(reduction.selling)}")
    if reduction.held_back:
        parts.append("held back 暂缓 " + ", ".join(f"{lot} {why}" for lot, why in reduction.held_back.items()))
    return "; ".join(parts) + ". The base position is never sold. 底仓不动"

