"""The orders table: one row per ``signal_id``, the signal joined with its result and the input rejections."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from mac.dashboard.labels import STATUS_LABELS, reason_label
from mac.dashboard.times import parse_ts, to_naive_cst
from mac.dashboard.view_models import SignalsView
from shared_schema.models import ResultFile

ORDER_COLUMNS = [
    "signal_id", "code", "direction", "layer_index", "price", "shares", "amount", "created_at", "status",
    "status_label", "reason", "detail", "reason_label", "message", "filled_shares", "avg_price", "updated_at",
    "source",
]


def join_orders(
    signals: SignalsView | None,
    results: ResultFile | None,
    journal_signals: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """One row per signal_id: the signal's fields joined with its result, plus the input rejections.

    Signals leave ``order_signal.json`` once final, so a result's price and layer come from the executor's
    journal when it is available.
    """
    rows: dict[str, dict[str, Any]] = {}
    journal_signals = journal_signals or {}

    def base(sid: str) -> dict[str, Any]:
        return rows.setdefault(sid, {c: None for c in ORDER_COLUMNS} | {"signal_id": sid})

    for sid, payload in journal_signals.items():
        row = base(sid)
        row.update(code=payload.get("code"), direction=payload.get("direction"),
                   layer_index=payload.get("layer_index"), price=payload.get("price"),
                   shares=payload.get("shares"), amount=payload.get("amount"),
                   created_at=to_naive_cst(parse_ts(payload.get("created_at"))), source="journal")
    if signals is not None:
        for sig in signals.signals:
            row = base(sig.signal_id)
            row.update(code=sig.code, direction=sig.direction.value, layer_index=sig.layer_index,
                       price=float(sig.price), shares=sig.shares, amount=float(sig.amount),
                       created_at=to_naive_cst(sig.created_at), source="signal")
            row.setdefault("status", None)
    if results is not None:
        for sid, res in results.results.items():
            row = base(sid)
            row.update(status=res.status.value, reason=res.reason.value if res.reason else "", detail=res.detail,
                       message=res.message, filled_shares=res.filled_shares, avg_price=res.avg_price or None,
                       updated_at=to_naive_cst(res.updated_at))
            row["code"] = row["code"] or res.code
            row["direction"] = row["direction"] or (res.direction.value if res.direction else None)
            row["shares"] = row["shares"] or res.requested_shares
            row["created_at"] = row["created_at"] or to_naive_cst(res.signal_created_at or res.received_at)
            row["source"] = row["source"] or "result"
        for i, rej in enumerate(results.input_rejections):
            sid = f"{rej.signal_id or rej.key}#input{i}"
            row = base(sid)
            row.update(status="REJECTED", reason=rej.reason.value, detail=rej.detail, message=rej.message,
                       updated_at=to_naive_cst(rej.at), created_at=to_naive_cst(rej.at), source="input rejection")
    for row in rows.values():
        if not row["status"]:
            row["status"] = "PENDING"
        zh, en = STATUS_LABELS.get(row["status"], ("", row["status"]))
        row["status_label"] = f"{zh} / {en}" if zh else en
        row["reason_label"] = " · ".join(x for x in (reason_label(row["reason"]), reason_label(row["detail"])) if x)
        row["reason"] = row["reason"] or ""
        row["detail"] = row["detail"] or ""
    df = pd.DataFrame(list(rows.values()), columns=ORDER_COLUMNS)
    if len(df):
        df = df.sort_values("created_at", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return df


def filter_orders(df: pd.DataFrame, codes: Iterable[str] = (), statuses: Iterable[str] = (),
                  reasons: Iterable[str] = ()) -> pd.DataFrame:
    """Rows matching every non-empty filter."""
    out = df
    codes, statuses, reasons = list(codes), list(statuses), list(reasons)
    if codes:
        out = out[out["code"].isin(codes)]
    if statuses:
        out = out[out["status"].isin(statuses)]
    if reasons:
        out = out[out["reason"].isin(reasons)]
    return out
