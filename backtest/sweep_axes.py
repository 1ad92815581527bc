"""The sweep's axes: ``NAME=START:STOP:STEP`` or ``NAME=V1,V2,...`` over any scalar field of ``GridParams``.

Ranges are computed in ``Decimal`` (the text as typed) and converted once to the field's type, so
``0.26:0.40:0.02`` gives exactly 0.26, 0.28, ..., 0.40 (the float nearest each decimal) and never the
0.30000000000000004 a float accumulator drifts into. The stop is included when it lands on the grid.
A point sets its values on every symbol's resolved parameters; each point is validated by ``GridParams``
itself before anything runs, so an impossible combination fails with the model's own reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from settings.grid import GridParams

AxisValue = float | int | bool | Decimal
Point = tuple[tuple[str, AxisValue], ...]  # ((name, value), ...) in axis order

MAX_POINTS = 100_000  # a typo like 0:1:0.000001 must fail here, not after a night of backtests
_SCALARS: dict[object, type] = {float: float, int: int, bool: bool, Decimal: Decimal}
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class SweepError(ValueError):
    """A sweep specification that cannot run: the message says what and why."""


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[AxisValue, ...]


def sweepable_fields() -> dict[str, type]:
    """``GridParams`` fields a sweep may vary (name -> type): the scalar numbers and switches. The symbol's
    code, the mode and the tuples (weights, no-trade minutes) are not axes."""
    return {
        name: _SCALARS[field.annotation]
        for name, field in GridParams.model_fields.items()
        if field.annotation in _SCALARS
    }


def _decimal(text: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SweepError(f"{spec}: {text.strip()!r} is not a number") from None
    if not value.is_finite():
        raise SweepError(f"{spec}: {text.strip()!r} is not a finite number")
    return value


def _range(body: str, spec: str) -> list[Decimal]:
    parts = body.split(":")
    if len(parts) != 3:
        raise SweepError(f"{spec}: a range is START:STOP:STEP")
    start, stop, step = (_decimal(p, spec) for p in parts)
    if step <= 0:
        raise SweepError(f"{spec}: STEP must be positive")
    if stop < start:
        raise SweepError(f"{spec}: STOP is below START")
    if stop - start >= step * MAX_POINTS:  # before dividing: 1e-30 steps overflow Decimal's integer division
        raise SweepError(f"{spec}: more than {MAX_POINTS:,} values (at most {MAX_POINTS:,})")
    count = int((stop - start) // step) + 1
    return [start + step * i for i in range(count)]


def _convert(value: Decimal | str, kind: type, spec: str) -> AxisValue:
    if kind is bool:
        text = str(value).strip().lower()
        if text not in _BOOLS:
            raise SweepError(f"{spec}: {text!r} is not true or false")
        return _BOOLS[text]
    number = value if isinstance(value, Decimal) else _decimal(value, spec)
    if kind is int:
        if number != number.to_integral_value():
            raise SweepError(f"{spec}: {number} is not a whole number")
        return int(number)
    if kind is float:
        return float(number)  # the float nearest the decimal, the same one the literal gives
    return number


def parse_axis(spec: str) -> Axis:
    """One ``--grid`` argument as an axis. Raises ``SweepError`` naming the valid fields when the name is
    not one of them."""
    name, sep, body = spec.partition("=")
    name = name.strip()
    fields = sweepable_fields()
    if not sep or not body.strip():
        raise SweepError(f"{spec!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,...")
    if name not in fields:
        raise SweepError(f"unknown grid parameter {name!r}; sweepable: {', '.join(sorted(fields))}")
    kind = fields[name]
    if ":" in body:
        if kind is bool:
            raise SweepError(f"{spec}: {name} is a switch; list its values (true,false)")
        values = [_convert(v, kind, spec) for v in _range(body, spec)]
    else:
        values = [_convert(v, kind, spec) for v in body.split(",")]
    if len(set(values)) != len(values):
        raise SweepError(f"{spec}: a value is listed twice")
    return Axis(name, tuple(values))


def combine_axes(axes: Sequence[Axis]) -> tuple[Axis, ...]:
    """The axes of one sweep, checked: at least one, no name twice, at most ``MAX_POINTS`` points."""
    if not axes:
        raise SweepError("nothing to sweep: give at least one --grid NAME=VALUES")
    names = [a.name for a in axes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepError(f"swept twice: {', '.join(twice)}")
    total = 1
    for axis in axes:
        total *= len(axis.values)
    if total > MAX_POINTS:
        raise SweepError(f"{total:,} points (at most {MAX_POINTS:,})")
    return tuple(axes)


def grid_points(axes: Iterable[Axis]) -> list[Point]:
    """Every combination of the axes' values, the last axis varying fastest (the CSV's row order)."""
    axes = list(axes)
    return [
        tuple(zip([a.name for a in axes], combo, strict=True))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def apply_point(base: Mapping[str, GridParams], point: Point) -> dict[str, GridParams]:
    """Every symbol's parameters with the point's values set, validated by ``GridParams`` (``model_copy``
    would skip the model's checks). Raises ``SweepError``."""
    update = dict(point)
    out: dict[str, GridParams] = {}
    for code, params in base.items():
        try:
            out[code] = GridParams.model_validate({**params.model_dump(), **update})
        except ValidationError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point)
            reasons = "; ".join(str(e["msg"]) for e in exc.errors())
            raise SweepError(f"{code} at {where}: {reasons}") from None
    return out


DEFAULT_FACTORS = "0.24,0.28,0.32,0.36,0.40"
DEFAULT_FLOORS = "0.0008,0.001,0.0012,0.0015"


def axes_from_options(grid: Sequence[str], factors: str | None, floors: str | None) -> tuple[Axis, ...]:
    """The axes of ``backtest sweep``'s options: ``--factors`` and ``--floors`` are shorthands for
    ``--grid atr_grid_factor=...`` and ``--grid grid_step_floor=...`` and come first (the old CSV's columns);
    without any ``--grid`` the two take their old defaults, so a bare ``backtest sweep`` sweeps as before."""
    if not grid:
        factors = DEFAULT_FACTORS if factors is None else factors
        floors = DEFAULT_FLOORS if floors is None else floors
    axes = [parse_axis(f"{name}={values}") for name, values in
            (("atr_grid_factor", factors), ("grid_step_floor", floors)) if values is not None]  # fmt: skip
    axes.extend(parse_axis(spec) for spec in grid)
    return combine_axes(axes)
