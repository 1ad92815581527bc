"""One entry with an extreme field in a venue answer (through the unmodified ccxt okx, canned answers):
text where a number goes, NaN, an infinity, 35 digits, a fill above the order, a price of 0. The whole answer
is refused as a ``VenueError`` (``BAD_ANSWER``: ``VENUE_ERROR`` for a read, ``UNKNOWN_OUTCOME`` after a
send), never a raw ``ValueError`` and never a half-read record (before: ValueError / InvalidOperation
escaped the adapter, "1e400" became an infinite fill, "-50" a negative one, an unknown margin mode was read
as isolated)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.oms.reasons import VenueReason
from crypto.venue.ccxt_venue import BAD_ANSWER, CcxtVenue
from crypto.venue.factory import VenueCredentials, make_exchange
from crypto.venue.types import OrderRequest, VenueError
from tests.crypto.venue.okx_canned import CannedOkx, ok
from tests.crypto.venue.test_ccxt_venue_requests import SWAP, order_row

D = Decimal
R = VenueReason
BAD_NUMBERS = ["abc", "NaN", "Infinity", "1e400", "123456789012345678901234567890123.5"]


def venue() -> tuple[CcxtVenue, CannedOkx]:
    exchange = make_exchange("okx-fake", "http://127.0.0.1:1", VenueCredentials(api_key="k", secret="s",
                                                                                   passphrase="p"))
    canned = CannedOkx(exchange)
    exchange.fetch = canned
    return CcxtVenue(exchange, name="okx"), canned


def position_row(**over: Any) -> dict[str, Any]:
    row = {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "pos": "-250", "posSide": "net", "avgPx": "50000",
           "markPx": "49000", "liqPx": "60000", "margin": "1250", "mgnMode": "isolated", "lever": "10",
           "upl": "25", "notionalUsd": "122500", "mmr": "12", "imr": "", "cTime": "1", "uTime": "1"}
    row.update(over)
    return row


@pytest.mark.parametrize("field", ["accFillSz", "sz", "avgPx"])
@pytest.mark.parametrize("value", [*BAD_NUMBERS, "-50"])
def test_an_order_answer_with_a_bad_number_is_refused_whole(field: str, value: str) -> None:
    if field == "avgPx" and value in ("-50", BAD_NUMBERS[-1]):
        pytest.skip("ccxt reads a negative average as none; a 35-digit price is a (float) number")
    v, canned = venue()
    canned.route("GET", "trade/order", ok([order_row(**{field: value})]))
    with pytest.raises(VenueError) as err:
        v.fetch_order(SWAP, "c1")
    assert err.value.reason is R.VENUE_ERROR and err.value.venue_code == BAD_ANSWER


def test_a_fill_above_the_order_is_refused_and_a_good_answer_still_reads() -> None:
    v, canned = venue()
    canned.route("GET", "trade/order", ok([order_row(accFillSz="151")]))
    with pytest.raises(VenueError, match="filled"):
        v.fetch_order(SWAP, "c1")
    canned.route("GET", "trade/order", ok([order_row(accFillSz="-0")]))
    order = v.fetch_order(SWAP, "c1")
    assert order is not None and order.filled == 0 and order.qty == D("1.5")


@pytest.mark.parametrize(("field", "value"), [("pos", "abc"), ("pos", "NaN"), ("pos", "1e40"), ("markPx", "abc"),
                                              ("markPx", "0"), ("markPx", "Infinity"), ("liqPx", "NaN"),
                                              ("avgPx", "NaN"), ("avgPx", "-5")])
def test_a_position_answer_with_a_bad_number_is_refused(field: str, value: str) -> None:
    v, canned = venue()
    canned.route("GET", "account/positions", ok([position_row(**{field: value})]))
    with pytest.raises(VenueError) as err:
        v.positions()
    assert err.value.reason is R.VENUE_ERROR and err.value.venue_code == BAD_ANSWER


def test_an_unknown_margin_mode_is_read_as_cross_never_as_isolated() -> None:
    v, canned = venue()
    canned.route("GET", "account/positions", ok([position_row(mgnMode="portfolio")]))
    (pos,) = v.positions()
    assert pos.margin_mode == "cross"  # blocks opens (RISK_CROSS_MARGIN_FOUND) instead of passing


@pytest.mark.parametrize("value", ["abc", "NaN", "0", "-1"])
def test_a_book_or_ticker_with_a_bad_price_is_refused(value: str) -> None:
    v, canned = venue()
    canned.route("GET", "market/books", ok([{"asks": [[value, "10", "0", "1"]], "bids": [["49999", "5", "0", "1"]],
                                             "ts": "1700000000000"}]))
    with pytest.raises(VenueError) as err:
        v.order_book(SWAP, 5)
    assert err.value.venue_code == BAD_ANSWER


def test_a_malformed_answer_to_a_send_is_an_unknown_outcome_looked_up_later(monkeypatch: pytest.MonkeyPatch) -> None:
    v, canned = venue()
    v.markets()

    def parse_fails(*_a: Any, **_k: Any) -> Any:  # the request left; ccxt's parser chokes on the answer
        raise ValueError("invalid literal for int() with base 10: 'NaN'")

    monkeypatch.setattr(v.exchange, "create_order", parse_fails)
    with pytest.raises(VenueError) as err:
        v.place_order(OrderRequest(symbol=SWAP, side="buy", qty=D("0.01"), type="limit", client_order_id="c1",
                                   price=D("50000")))
    assert err.value.reason is R.UNKNOWN_OUTCOME and err.value.venue_code == BAD_ANSWER
    # the id counts as used: a resend first looks it up
    canned.route("GET", "trade/order", ok([order_row(clOrdId="c1", sz="1", accFillSz="0", state="live")]))
    with pytest.raises(VenueError) as err:
        v.place_order(OrderRequest(symbol=SWAP, side="buy", qty=D("0.01"), type="limit", client_order_id="c1",
                                   price=D("50000")))
    assert err.value.reason is R.DUPLICATE_CLIENT_ID


def test_a_server_time_of_2099_or_text_does_not_escape() -> None:
    v, canned = venue()
    canned.route("GET", "public/time", ok([{"ts": "abc"}]))
    with pytest.raises(VenueError) as err:
        v.now_ms()
    assert err.value.venue_code == BAD_ANSWER


def test_every_ccxt_call_has_a_bounded_wait() -> None:
    exchange = make_exchange("okx", None, None)
    assert exchange.timeout == 10_000  # ccxt's requests timeout (ms): a hung venue call ends as UNKNOWN_OUTCOME
    assert make_exchange("binance-pm", None, None, timeout_ms=2_500).timeout == 2_500
