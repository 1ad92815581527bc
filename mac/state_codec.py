"""JSON codec for the grid's frozen dataclasses, so node state survives restarts and the dashboard can read it.

Floats round-trip exactly (``repr``), Decimals travel as strings, tuples come back as tuples. Only classes
registered here are decoded: a state file can never name an arbitrary class.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from decimal import Decimal
from typing import Any

from mac.grid.core import GridState, Lot, PendingOrder
from mac.grid.indicators import IndicatorPeriods, IndicatorState

_CLASSES: dict[str, type] = {cls.__name__: cls for cls in (GridState, Lot, PendingOrder, IndicatorState, IndicatorPeriods)}


def encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if name not in _CLASSES:
            raise TypeError(f"cannot encode {name}")
        return {"__dc__": name, **{f.name: encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, Decimal):
        return {"__dec__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__dc__" in value:
            cls = _CLASSES[value["__dc__"]]
            return cls(**{k: decode(v) for k, v in value.items() if k != "__dc__"})
        if "__dec__" in value:
            return Decimal(value["__dec__"])
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
