"""Carry engine fixtures: the local exchange's model in process, behind the ``Venue`` the engine uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from core.oms.reasons import VenueReason
from crypto.carry.config import CarryConfig
from crypto.carry.shell import CarryEngine
from crypto.fakex.direct_venue import DirectVenue
from crypto.fakex.engine.exchange import Exchange
from crypto.fakex.engine.instruments import default_instruments
from crypto.venue.types import VenueError

PERP, SPOT = "BTC/USDT:USDT", "BTC/USDT"


class LatentVenue(DirectVenue):
    """The fake with a round-trip latency per call (the model clock moves) and scripted refusals:
    ``refuse[(method, symbol)] = [reason, ...]`` refuses the next calls, one reason each."""

    def __init__(self, exchange: Exchange, latency_ms: int = 250) -> None:
        super().__init__(exchange)
        self.latency_ms = latency_ms
        self.refuse: dict[tuple[str, str], list[VenueReason]] = {}
        self.calls: list[tuple[str, str]] = []

    def _gate(self, method: str, symbol: str) -> None:
        self.x.clock.advance(self.latency_ms)  # type: ignore[attr-defined]
        self.calls.append((method, symbol))
        queue = self.refuse.get((method, symbol))
        if queue:
            raise VenueError(queue.pop(0), f"scripted {method} refusal")

    def place_order(self, request: Any) -> Any:
        self._gate("place_order", request.symbol)
        return super().place_order(request)

    def transfer(self, *args: Any, **kwargs: Any) -> Any:
        self._gate("transfer", "")
        return super().transfer(*args, **kwargs)


def make_exchange(usdt: str = "20000", funding_usdt: str = "10000", spot_lot: str | None = None) -> Exchange:
    insts = default_instruments()
    if spot_lot is not None:
        insts["BTC-USDT"] = dataclasses.replace(insts["BTC-USDT"], lot=D(spot_lot), min_size=D(spot_lot))
    return Exchange.create(seed=3, scenario="calm", balances={"trading": {"USDT": D(usdt)},
                                                              "funding": {"USDT": D(funding_usdt)}},
                           instruments=insts)


@pytest.fixture
def make_engine(tmp_path: Path) -> Callable[..., tuple[CarryEngine, LatentVenue, Exchange]]:
    def build(cfg: CarryConfig | None = None, exchange: Exchange | None = None, latency_ms: int = 250,
              state: Path | None = None) -> tuple[CarryEngine, LatentVenue, Exchange]:
        x = exchange if exchange is not None else make_exchange()
        v = LatentVenue(x, latency_ms)
        e = CarryEngine(v, cfg or CarryConfig(), state or tmp_path / "state", wait=x.clock.advance,  # type: ignore[attr-defined]
                        fsync=False)
        return e, v, x
    return build


def audit_codes(engine: CarryEngine) -> list[dict[str, Any]]:
    import json
    engine.audit.close()
    return [json.loads(line) for line in (engine.dir / "audit.jsonl").read_text().splitlines()]
