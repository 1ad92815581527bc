"""Scalar types shared by every file in the contract.

Money and order prices are ``Decimal`` inside and plain JSON numbers on disk: a two- or three-decimal value
printed by ``float.__repr__`` is the shortest text that round-trips, so the number in the file is the exact
decimal the writer meant and a reader parses it back to the same ``Decimal``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StrictInt, WithJsonSchema

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time: every market timestamp in the contract is in this zone."""

FEN = Decimal("0.01")
TICK = Decimal("0.001")


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


Money = Annotated[Decimal, AfterValidator(_finite), PlainSerializer(float, return_type=float, when_used="json")]
"""Yuan amount, exact. Serialised as a JSON number."""

# Bounds checked before any arithmetic: a signal's numbers must stay far inside Decimal's 28-digit context
# and inside datetime's range, whatever a writer put in the file.
MAX_PRICE = Decimal("10000")
"""Highest order price accepted (yuan); A-share ETFs trade between 0.1 and a few hundred."""
MAX_SHARES = 100_000_000
"""Most shares one order may name (the exchange's own cap per order is far lower)."""
MAX_AMOUNT = Decimal("1000000000")
"""Largest ``amount`` a signal may carry (1e9 yuan); the pipeline then bounds it by price x shares."""
PRICE_DECIMALS = 3
"""Order prices and amounts have at most this many decimals (the 0.001 tick)."""
MIN_YEAR, MAX_YEAR = 1970, 2199
"""Timestamps outside these years are refused: no date arithmetic may overflow, none is plausible."""


def _json_number(value: Any) -> Decimal:
    """A JSON number (never a string, never a bool) as the exact decimal its shortest text spells."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("must be a JSON number, not a string or another type")
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text that round-trips: what the writer printed
    return Decimal(value)


def _bounded_decimal(upper: Decimal) -> Any:
    def check(value: Decimal) -> Decimal:
        _finite(value)
        if not (Decimal(0) < value <= upper):
            raise ValueError(f"must be greater than 0 and at most {upper}")
        if value != value.quantize(TICK):  # exact: the value is bounded above, so quantize cannot overflow
            raise ValueError(f"must have at most {PRICE_DECIMALS} decimals")
        return value

    return check


Price = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    AfterValidator(_bounded_decimal(MAX_PRICE)),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": float(MAX_PRICE),
                    "description": "a JSON number (not a string) with at most 3 decimals"}),
]
"""Order price in yuan: a JSON number in (0, 10000] with at most 3 decimals, exact. Serialised as a number."""

OrderAmount = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    AfterValidator(_bounded_decimal(MAX_AMOUNT)),
    PlainSerializer(float, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": float(MAX_AMOUNT),
                    "description": "a JSON number (not a string) with at most 3 decimals"}),
]
"""A signal's ``amount`` in yuan: a JSON number in (0, 1e9] with at most 3 decimals."""

Shares = Annotated[StrictInt, Field(gt=0, le=MAX_SHARES)]
"""A share count: a JSON integer (``"300"`` and ``200.0`` are refused) in [1, 1e8]."""


def _aware(value: datetime) -> datetime:
    # A naive timestamp from the other machine is read as China time, the market's clock.
    value = value if value.tzinfo is not None else value.replace(tzinfo=CST)
    if not (MIN_YEAR <= value.year <= MAX_YEAR):
        raise ValueError(f"year {value.year} is outside {MIN_YEAR}-{MAX_YEAR}")
    return value


Timestamp = Annotated[datetime, AfterValidator(_aware)]
"""An aware timestamp (naive means China time) within the years 1970-2199."""


def to_fen(yuan: Decimal) -> int:
    """Yuan to integer fen, rounding half up (brokers charge fees to the fen)."""
    return int((yuan / FEN).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) * FEN).quantize(FEN)


def price_to_milli(price: Decimal) -> int:
    """Price to integer thousandths of a yuan (ticks); raises if the price is off tick."""
    milli = price / TICK
    if milli != milli.to_integral_value():
        raise ValueError(f"price {price} is not a multiple of the 0.001 tick")
    return int(milli)


def notional_fen(price: Decimal, shares: int) -> int:
    """Exact value of ``shares`` at ``price`` in fen, rounded half up when an odd lot leaves a fraction."""
    return to_fen(price * shares)


def ms_to_datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=CST)


def datetime_to_ms(ts: datetime) -> int:
    return round(_aware(ts).timestamp() * 1000)
