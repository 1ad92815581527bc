"""The in-process door (``crypto.fakex.direct_venue``) is the OKX dialect without the wire: the same refusals
and the same records as ``CcxtVenue`` on the fake's OKX server. The venue contract suite (tests/crypto/venue)
runs it as a third venue; these tests hold what the suite cannot: its refusal table against the real ccxt
path, its reads against the wire's reads of the same model, and the resend rule without a lost answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from core.oms.reasons import VenueReason
from crypto.fakex.direct_venue import REASONS, DirectVenue, venue_error
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import Exchange
from crypto.fakex.okx_routes import reject_code
from crypto.fakex.server import FakeExchange
from crypto.venue.ccxt_venue import CcxtVenue
from crypto.venue.errors import to_venue_error
from crypto.venue.factory import VenueCredentials, make_venue
from crypto.venue.protocol import Venue
from crypto.venue.types import OrderRequest, VenueError

D = Decimal
R = VenueReason
PERP, SPOT = "BTC/USDT:USDT", "BTC/USDT"


def _cid() -> str:
    return uuid.uuid4().hex[:24]


def _wire_error(reason: Reason, context: str) -> VenueError:
    """What CcxtVenue reports when the OKX dialect refuses with ``reason``: the dialect's answer body, through
    ccxt okx's own error handler and the venue layer's translation."""
    code, msg = reject_code(Reject(reason, "detail"), context)
    if context == "transfer":
        body: dict[str, Any] = {"code": code, "msg": msg, "data": []}
    else:  # an order-level refusal: OKX answers code 1 with the row's sCode
        body = {"code": "1", "msg": "All operations failed", "data": [{"sCode": code, "sMsg": msg}]}
    text = json.dumps(body)
    try:
        ccxt.okx().handle_errors(200, "OK", "http://127.0.0.1/api/v5/trade/order", "POST", {}, text, body, {}, "")
    except ccxt.BaseError as exc:
        return to_venue_error(exc, "okx")
    raise AssertionError(f"ccxt raised nothing for {body}")


@pytest.mark.parametrize("reason", list(Reason))
def test_every_refusal_reads_as_on_the_wire(reason: Reason) -> None:
    wire = _wire_error(reason, "")
    direct = venue_error(Reject(reason, "detail"))
    assert reason in REASONS
    assert (direct.reason, direct.venue_code) == (wire.reason, wire.venue_code)


def test_a_transfer_refusal_reads_as_on_the_wire() -> None:
    wire = _wire_error(Reason.INSUFFICIENT_FUNDS, "transfer")
    direct = venue_error(Reject(Reason.INSUFFICIENT_FUNDS), "transfer")
    assert (direct.reason, direct.venue_code) == (wire.reason, wire.venue_code) == (R.INSUFFICIENT_FUNDS, "58350")


def test_it_has_every_method_of_the_protocol_with_the_same_signature() -> None:
    import inspect

    names = [n for n, v in vars(Venue).items() if callable(v) and not n.startswith("_")]
    assert "fetch_transfer" in names
    for name in names:
        want = inspect.signature(getattr(Venue, name))
        got = inspect.signature(getattr(DirectVenue, name))
        # Same parameters, names, kinds and defaults in the same order; an adapter may add trailing optional ones
        # (set_margin_mode's leverage, as CcxtVenue has).
        assert list(got.parameters.values())[: len(want.parameters)] == list(want.parameters.values()), name
        assert all(p.default is not inspect.Parameter.empty
                   for p in list(got.parameters.values())[len(want.parameters):]), name
    venue: Venue = DirectVenue(Exchange.create(seed=1))  # and mypy sees a Venue
    assert venue.name == "okx"


# --- reads: the same model through both doors ---------------------------------------------------------------

@pytest.fixture(scope="module")
def both() -> Iterator[tuple[FakeExchange, CcxtVenue, DirectVenue]]:
    with FakeExchange.start(seed=11, scenario="calm", dialects=("okx",)) as fx:
        c = fx.credentials
        wire = make_venue("okx-fake", fx.url, VenueCredentials(api_key=c.api_key, secret=c.secret,
                                                                 passphrase=c.passphrase))
        yield fx, wire, DirectVenue(fx.exchange)


def _same(a: object, b: object, path: str = "") -> None:
    """Equal, up to ccxt reading OKX's numbers through floats (a last digit at 1e-12 on a 6-digit sum)."""
    if is_dataclass(a) and is_dataclass(b):
        assert type(a) is type(b), path
        _same(asdict(a), asdict(b), path)  # type: ignore[arg-type]
    elif isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, Decimal) and isinstance(b, Decimal):
        assert abs(a - b) <= D("1e-9") * max(D(1), abs(a)), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_both_doors_read_the_same_records(both: tuple[FakeExchange, CcxtVenue, DirectVenue]) -> None:
    fx, wire, direct = both
    wire.set_leverage(PERP, D(3))
    ask, level = direct.order_book(PERP, 5).asks[0]
    partial = OrderRequest(PERP, "buy", level + D("0.001"), "limit", _cid(), price=ask)  # takes the level, rests
    wire.place_order(partial)
    spot = direct.place_order(OrderRequest(SPOT, "buy", D("0.001"), "market", _cid()))
    mark = direct.mark_price(PERP)
    stop = OrderRequest(PERP, "sell", level, "stop_market", _cid(), reduce_only=True,
                        trigger_price=(mark * D("0.9") / D("0.1")).to_integral_value() * D("0.1"))
    direct.place_order(stop)
    fx.exchange.set_funding_rate("BTC-USDT-SWAP", D("0.0004"))
    fx.advance(direct.funding_rate(PERP).funding_time_ms - direct.now_ms() + 1_000)
    direct.transfer("USDT", D("3.25"), "funding", "trading", "tr-funding-trading-" + _cid())

    reads = {
        "markets": lambda v: v.markets(),
        "prices": lambda v: (v.ticker(PERP), v.order_book(PERP, 5), v.mark_price(SPOT), v.index_price(PERP),
                             v.funding_rate(PERP)),
        "funding history": lambda v: v.funding_history(PERP),
        "balances": lambda v: (v.balances(), v.balances("funding")),
        "positions": lambda v: (v.positions(), v.positions([PERP, SPOT]), v.positions([SPOT])),
        "funding payments": lambda v: v.funding_payments(PERP),
        "orders": lambda v: (v.fetch_order(PERP, partial.client_order_id), v.fetch_order(SPOT, spot.client_order_id),
                             v.fetch_order(PERP, stop.client_order_id), v.fetch_order(PERP, _cid())),
        "open orders": lambda v: (v.open_orders(PERP), v.open_orders()),
        "fills": lambda v: (v.fills(PERP), v.fills(SPOT)),
    }
    for label, read in reads.items():
        _same(read(wire), read(direct), label)
    assert direct.funding_payments(PERP)[-1].rate == D("0.0004")

    fx.exchange.set_price("BTC-USDT-SWAP", mark * D("0.85"))  # the stop fires and closes the position
    fx.advance(1_000)
    _same(wire.fetch_order(PERP, stop.client_order_id), direct.fetch_order(PERP, stop.client_order_id), "fired")
    _same(wire.cancel_order(PERP, partial.client_order_id), direct.fetch_order(PERP, partial.client_order_id),
          "canceled")


def test_refusals_made_before_the_model_are_the_ccxt_adapters(both: tuple[FakeExchange, CcxtVenue,
                                                                           DirectVenue]) -> None:
    _, wire, direct = both
    tick = direct.market(PERP).tick
    bad = [
        OrderRequest(PERP, "buy", D("0.01"), "limit", "not-okx-id!", price=D(1000)),
        OrderRequest(PERP, "buy", D("0.01"), "limit", _cid(), price=D(1000) + tick / 2),
        OrderRequest(PERP, "buy", D("0.00001"), "limit", _cid(), price=D(1000)),
        OrderRequest(PERP, "buy", D("0.01"), "market", _cid(), post_only=True),
        OrderRequest(SPOT, "sell", D("0.01"), "limit", _cid(), price=D(1000), reduce_only=True),
        OrderRequest("DOGE/USDT", "buy", D("1"), "market", _cid()),
    ]
    for request in bad:
        with pytest.raises(VenueError) as on_wire:
            wire.place_order(request)
        with pytest.raises(VenueError) as in_process:
            direct.place_order(request)
        assert (in_process.value.reason, in_process.value.venue_code) == \
               (on_wire.value.reason, on_wire.value.venue_code), request


# --- behaviours the contract suite reaches only through a wire fault -----------------------------------------

def test_a_filled_market_order_sent_again_is_refused_and_fills_once() -> None:
    venue = DirectVenue(Exchange.create(seed=5))
    request = OrderRequest(PERP, "buy", D("0.01"), "market", _cid(), margin_mode="isolated")
    venue.place_order(request)
    for _ in range(3):  # the venue itself refuses only a live duplicate: this door remembers what it sent
        with pytest.raises(VenueError) as again:
            venue.place_order(request)
        assert again.value.reason is R.DUPLICATE_CLIENT_ID and again.value.venue_code == "LOCAL"
    (position,) = venue.positions([PERP])
    assert position.qty == D("0.01")


def test_a_transfer_sent_twice_with_one_key_moves_once_and_is_found_by_it() -> None:
    exchange = Exchange.create(seed=5)
    venue = DirectVenue(exchange)
    key = "tr-funding-trading-" + _cid()  # outside OKX's clientId rule: hashed, as the ccxt path sends it
    assert venue.fetch_transfer(key) is None
    before = venue.balances("funding")["USDT"].total
    first = venue.transfer("USDT", D("7.5"), "funding", "trading", key)
    second = venue.transfer("USDT", D("7.5"), "funding", "trading", key)
    assert first.venue_transfer_id == second.venue_transfer_id
    assert venue.balances("funding")["USDT"].total == before - D("7.5")
    found = venue.fetch_transfer(key)
    assert found is not None and found == first
    with pytest.raises(VenueError) as info:
        venue.transfer("USDT", D(10**9), "funding", "trading", "another" + _cid()[:8])
    assert info.value.reason is R.INSUFFICIENT_FUNDS and info.value.venue_code == "58350"
