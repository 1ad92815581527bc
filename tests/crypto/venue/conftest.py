"""Venue fixtures for the contract suite: each case is a real ccxt class talking to the local exchange, or the
local exchange's in-process door (``crypto.fakex.direct_venue``, OKX semantics without the wire)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from crypto.fakex.direct_venue import DirectVenue
from crypto.venue.ccxt_venue import CcxtVenue
from crypto.venue.factory import VenueCredentials, make_venue
from crypto.venue.types import Account


@dataclass(frozen=True)
class VenueCase:
    """One venue under contract: ``venue`` prechecks filters, ``raw`` lets the venue itself refuse."""

    name: str
    fx: object  # crypto.fakex.server.FakeExchange
    venue: CcxtVenue | DirectVenue
    raw: CcxtVenue | DirectVenue
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


class InProcessExchange:
    """What the contract tests ask of a running fake, for the in-process door: the model and its clock. The
    wire's own faults do not exist in process; a test that needs one is skipped where it asks for it."""

    def __init__(self, exchange: object) -> None:
        self.exchange = exchange

    def now_ms(self) -> int:
        return self.exchange.now_ms()  # type: ignore[attr-defined, no-any-return]

    def advance(self, ms: int) -> int:
        self.exchange.clock.advance(ms)  # type: ignore[attr-defined]
        return self.exchange.sync()  # type: ignore[attr-defined, no-any-return]

    def inject(self, kind: str, **_: object) -> None:
        pytest.skip(f"in process there is no wire: no {kind} fault (lost, dropped or held answer) to inject")

    def set_rate_limit(self, *_: object) -> None:
        pytest.skip("in process there is no wire: no per-endpoint rate limiter")

    def restart(self) -> None:
        pytest.skip("in process the model is the caller's own object: no venue process to restart")

    @property
    def credentials(self) -> object:
        pytest.skip("in process there is no wire: no API key or signature")

    @property
    def url(self) -> str:
        pytest.skip("in process there is no wire: no URL")


def _okx_direct_case() -> Iterator[VenueCase]:
    from crypto.fakex.engine.exchange import Exchange

    exchange = Exchange.create(seed=7, scenario="calm")
    # name "okx": the OKX dialect's semantics, so every OKX-only case runs against it too.
    yield VenueCase(name="okx", fx=InProcessExchange(exchange), venue=DirectVenue(exchange),
                    raw=DirectVenue(exchange, precheck=False), swap="BTC/USDT:USDT", spot="BTC/USDT",
                    order_path="", swap_account=None, spot_account=None)


CASES = {"okx": _okx_case, "binance-pm": _binance_case, "okx-direct": _okx_direct_case}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Iterator[VenueCase]:
    yield from CASES[request.param]()
