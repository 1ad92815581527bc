"""Venue fixtures for the contract suite: each case is a real ccxt class talking to the local exchange."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from crypto.venue.ccxt_venue import CcxtVenue
from crypto.venue.factory import VenueCredentials, make_venue
from crypto.venue.types import Account


@dataclass(frozen=True)
class VenueCase:
    """One venue under contract: ``venue`` prechecks filters, ``raw`` lets the venue itself refuse."""

    name: str
    fx: object  # crypto.fakex.server.FakeExchange
    venue: CcxtVenue
    raw: CcxtVenue
    swap: str  # a USDT perpetual
    spot: str  # a spot pair with min size above one lot (OKX) or a min notional (Binance)
    order_path: str  # where an order is POSTed (fault injection)
    swap_account: Account | None
    spot_account: Account | None


def new_client_id() -> str:
    return uuid.uuid4().hex[:24]


def _credentials(fx: object) -> VenueCredentials:
    creds = fx.credentials  # type: ignore[attr-defined]
    return VenueCredentials(api_key=creds.api_key, secret=creds.secret, passphrase=creds.passphrase)


def _okx_case() -> Iterator[VenueCase]:
    from crypto.fakex.server import FakeExchange

    with FakeExchange.start(seed=7, scenario="calm", dialects=("okx",)) as fx:
        creds = _credentials(fx)
        yield VenueCase(name="okx", fx=fx, venue=make_venue("okx-fake", fx.url, creds),
                        raw=make_venue("okx-fake", fx.url, creds, precheck=False),
                        swap="BTC/USDT:USDT", spot="BTC/USDT", order_path="/api/v5/trade/order",
                        swap_account=None, spot_account=None)


def _binance_case() -> Iterator[VenueCase]:
    from crypto.fakex.server import FakeExchange

    with FakeExchange.start(seed=7, scenario="calm", dialects=("binance",)) as fx:
        creds = _credentials(fx)
        yield VenueCase(name="binance", fx=fx, venue=make_venue("binance-pm-fake", fx.url, creds),
                        raw=make_venue("binance-pm-fake", fx.url, creds, precheck=False),
                        swap="BTC/USDT:USDT", spot="BTC/USDT", order_path="/papi/v1/um/order",
                        swap_account="um", spot_account="margin")


CASES = {"okx": _okx_case, "binance-pm": _binance_case}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[VenueCase]:
    yield from CASES[request.param]()
