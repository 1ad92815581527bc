"""Stub factories with sensible defaults, so tests state only what matters to them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from shared_schema.models import Account, Bar, Position, Quote, QuoteFile, Signal
from shared_schema.types import CST, datetime_to_ms

SESSION_TIME = datetime(2026, 1, 5, 10, 0, tzinfo=CST)  # a Monday, mid-morning


def signal_payload(**overrides: Any) -> dict[str, Any]:
    """A signal entry as a writer puts it in the file. Prices and amounts are JSON numbers there; a test may
    write them as decimal text (``price="1.100"``) for readability and gets the number. A test about the
    schema's refusal of strings writes the entry by hand."""
    payload: dict[str, Any] = {
        "signal_id": "S1",
        "code": "512890.SH",
        "direction": "BUY",
        "price": 1.1,
        "shares": 1000,
        "layer_index": 1,
        "created_at": SESSION_TIME.isoformat(),
    }
    payload.update(overrides)
    for key in ("price", "amount"):
        if key in payload:
            payload[key] = _as_json_number(payload[key])
    return payload


def _as_json_number(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        if number.is_finite() and number == number.to_integral_value() and "." not in value and "e" not in value.lower():
            return int(number)
        return float(number) if number.is_finite() and value == value.strip() else value
    if isinstance(value, Decimal):
        return float(value)
    return value


def make_signal(**overrides: Any) -> Signal:
    return Signal.model_validate(signal_payload(**overrides))


def make_quote(
    code: str = "512890.SH",
    last: float = 1.1,
    when: datetime = SESSION_TIME,
    prev_close: float | None = None,
    spread: float = 0.001,
) -> Quote:
    return Quote(
        code=code,
        last=last,
        bid1=round(last - spread, 3),
        ask1=last,
        volume=1e6,
        quote_time=when,
        prev_close=prev_close or last,
        bars=[],
    )


def make_quote_file(
    seq: int = 1,
    when: datetime = SESSION_TIME,
    prices: dict[str, float] | None = None,
    positions: dict[str, int] | None = None,
    cash: str = "1000000",
) -> QuoteFile:
    prices = prices or {"512890.SH": 1.1, "159201.SZ": 1.3}
    return QuoteFile(
        seq=seq,
        updated_at=when,
        quotes={c: make_quote(c, p, when) for c, p in prices.items()},
        positions={
            c: Position(code=c, volume=v, can_use_volume=v, avg_cost=1.0, market_value=v * 1.0)
            for c, v in (positions or {}).items()
        },
        account=Account(cash=Decimal(cash), total_asset=Decimal(cash)),
    )


def trading_minutes(day: datetime) -> list[datetime]:
    """Bar-end labels of one A-share day: 09:31..11:30 and 13:01..15:00."""
    start = day.replace(hour=9, minute=30, second=0, microsecond=0)
    morning = [start + timedelta(minutes=i) for i in range(1, 121)]
    afternoon_start = day.replace(hour=13, minute=0, second=0, microsecond=0)
    return morning + [afternoon_start + timedelta(minutes=i) for i in range(1, 121)]


def random_walk_bars(
    days: int,
    seed: int = 1,
    start_price: float = 1.1,
    first_day: datetime = SESSION_TIME,
    vol: float = 0.0006,
) -> list[Bar]:
    """A small deterministic random walk on the 0.001 tick; enough for bridge tests (the strategy uses synth)."""
    rng = random.Random(seed)
    price = start_price
    bars: list[Bar] = []
    day = first_day
    made = 0
    while made < days:
        if day.weekday() < 5:
            for t in trading_minutes(day):
                o = price
                c = max(0.1, round(o * (1 + rng.gauss(0, vol)), 3))
                h = round(max(o, c) + rng.choice([0, 0.001]), 3)
                low = round(min(o, c) - rng.choice([0, 0.001]), 3)
                bars.append(Bar(t=datetime_to_ms(t), o=o, h=h, l=low, c=c, v=float(rng.randint(1000, 90000))))
                price = c
            made += 1
        day += timedelta(days=1)
    return bars


def write_bars_csv(path: Path, bars: list[Bar]) -> Path:
    lines = ["time,open,high,low,close,volume"]
    lines += [f"{b.t},{b.o},{b.h},{b.l},{b.c},{b.v}" for b in bars]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)
