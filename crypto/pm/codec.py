"""JSON documents for positions, actions and transfers: Decimals as strings, so a replay reads back the
exact value (Redis values and the snapshot store hold these documents)."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from crypto.pm.decisions import Action, ManagedPosition
from crypto.pm.treasury import TransferRecord, TransferState

_POS_DECIMALS = ("qty", "entry", "margin", "q0", "stop", "adds_qty", "best_roe", "realised_pnl")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def position_doc(pos: ManagedPosition) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(pos).items()}


def position_from(doc: dict[str, Any]) -> ManagedPosition:
    """Raises ``ValueError`` (or ``TypeError``/``ArithmeticError``) on a document that is not a position, and
    ``ValueError`` on a non-finite number: a NaN quantity would poison every decision after it."""
    if not isinstance(doc, dict):
        raise ValueError("a position document is a JSON object")
    d = dict(doc)
    for key in _POS_DECIMALS:
        if d.get(key) is not None:
            d[key] = Decimal(str(d[key]))
            if not d[key].is_finite():
                raise ValueError(f"{key} is not a finite number")
    d["ladder_fired"] = tuple(int(i) for i in d.get("ladder_fired", ()))
    return ManagedPosition(**d)


def action_doc(a: Action) -> dict[str, Any]:
    return {k: _plain(v) for k, v in asdict(a).items()}


def action_from(doc: dict[str, Any]) -> Action:
    d = dict(doc)
    d["qty"] = Decimal(str(d["qty"]))
    d["stop"] = None if d.get("stop") is None else Decimal(str(d["stop"]))
    d["cancel_coids"] = tuple(d.get("cancel_coids", ()))
    return Action(**d)


def transfer_doc(rec: TransferRecord) -> dict[str, Any]:
    d = {k: _plain(v) for k, v in asdict(rec).items()}
    d["state"] = rec.state.value
    return d


def transfer_from(doc: dict[str, Any]) -> TransferRecord:
    d = dict(doc)
    d["amount"] = Decimal(str(d["amount"]))
    d["state"] = TransferState(d["state"])
    return TransferRecord(**d)
