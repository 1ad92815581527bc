"""Scalar types shared by every file in the contract.

Money and order prices are ``Decimal`` inside and plain JSON numbers on disk: a two- or three-decimal value
printed by ``float.__repr__`` is the shortest text that round-trips, so the number in the file is the exact
decimal the writer meant and a reader parses it back to the same ``Decimal``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, NewType

from pydantic import AfterValidator, PlainSerializer

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
"""China Standard Time: every market timestamp in the contract is in this zone."""

ClientOrderId = NewType("ClientOrderId", str)
SignalId = NewType("SignalId", str)

FEN = Decimal("0.01")
TICK = Decimal("0.001")


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite number")
    return value


Money = Annotated[Decimal, AfterValidator(_finite), PlainSerializer(float, return_type=float, when_used="json")]
"""Yuan amount, exact. Serialised as a JSON number."""

Price = Annotated[Decimal, AfterValidator(_finite), PlainSerializer(float, return_type=float, when_used="json")]
"""Order price in yuan, exact. Serialised as a JSON number."""


def _aware(value: datetime) -> datetime:
    # A naive timestamp from the other machine is read as China time, the market's clock.
    return value if value.tzinfo is not None else value.replace(tzinfo=CST)


Timestamp = Annotated[datetime, AfterValidator(_aware)]


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
