"""ccxt exceptions and venue codes -> VenueError reasons, driven through ccxt's own error handling."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import ccxt
import pytest

from core.oms.reasons import VenueReason
from crypto.venue.errors import mapped_errors, to_venue_error, venue_code_and_message
from crypto.venue.types import VenueError

R = VenueReason


def okx_order_body(s_code: str, s_msg: str = "") -> dict[str, object]:
    return {"code": "1", "msg": "All operations failed",
            "data": [{"clOrdId": "abc1", "ordId": "", "sCode": s_code, "sMsg": s_msg, "tag": ""}]}


OKX_CASES = [
    (okx_order_body("51016", "Duplicated clOrdId"), R.DUPLICATE_CLIENT_ID),
    (okx_order_body("51121", "Order quantity must be a multiple of the lot size."), R.LOT_SIZE),
    (okx_order_body("51008", "Order failed. Insufficient USDT margin in account"), R.INSUFFICIENT_FUNDS),
    (okx_order_body("51119"), R.INSUFFICIENT_FUNDS),
    (okx_order_body("51020", "Your order should meet or exceed the minimum order amount."), R.MIN_QTY),
    (okx_order_body("51205", "Reduce Only is not available."), R.REDUCE_ONLY_REJECTED),
    (okx_order_body("51400"), R.ORDER_NOT_FOUND),
    ({"code": "51603", "msg": "Order does not exist", "data": []}, R.ORDER_NOT_FOUND),
    ({"code": "50011", "msg": "Too Many Requests", "data": []}, R.RATE_LIMIT),
    ({"code": "50113", "msg": "Invalid Sign", "data": []}, R.AUTH),
    ({"code": "50111", "msg": "Invalid OK-ACCESS-KEY", "data": []}, R.AUTH),
    ({"code": "50004", "msg": "API endpoint request timeout", "data": []}, R.UNKNOWN_OUTCOME),
    ({"code": "59102", "msg": "Leverage exceeds the maximum leverage.", "data": []}, R.LEVERAGE_REFUSED),
    ({"code": "59000", "msg": "Settings failed. Close positions first", "data": []}, R.MARGIN_MODE_CONFLICT),
    ({"code": "51001", "msg": "Instrument ID does not exist", "data": []}, R.INVALID_ORDER),
    ({"code": "99999", "msg": "something new", "data": []}, R.VENUE_ERROR),
]

BINANCE_CASES = [
    ({"code": -1003, "msg": "Too many requests."}, R.RATE_LIMIT),
    ({"code": -2019, "msg": "Margin is insufficient."}, R.INSUFFICIENT_FUNDS),
    ({"code": -2018, "msg": "Balance is insufficient."}, R.INSUFFICIENT_FUNDS),
    ({"code": -2010, "msg": "Account has insufficient balance for requested action."}, R.INSUFFICIENT_FUNDS),
    ({"code": -4116, "msg": "ClientOrderId is duplicated."}, R.DUPLICATE_CLIENT_ID),
    ({"code": -2010, "msg": "Duplicate order sent."}, R.DUPLICATE_CLIENT_ID),
    ({"code": -1013, "msg": "Filter failure: LOT_SIZE"}, R.LOT_SIZE),
    ({"code": -1013, "msg": "Filter failure: NOTIONAL"}, R.MIN_NOTIONAL),
    ({"code": -1013, "msg": "Filter failure: MIN_NOTIONAL"}, R.MIN_NOTIONAL),
    ({"code": -1013, "msg": "Filter failure: PRICE_FILTER"}, R.TICK_SIZE),
    ({"code": -4164, "msg": "Order's notional must be no smaller than 5 (unless you choose reduce only)."},
     R.MIN_NOTIONAL),
    ({"code": -4014, "msg": "Price not increased by tick size."}, R.TICK_SIZE),
    ({"code": -5022, "msg": "Due to the order could not be executed as maker, the Post Only order will be "
                            "rejected."}, R.POST_ONLY_WOULD_TAKE),
    ({"code": -2010, "msg": "Order would immediately match and take."}, R.POST_ONLY_WOULD_TAKE),
    ({"code": -2022, "msg": "ReduceOnly Order is rejected."}, R.REDUCE_ONLY_REJECTED),
    ({"code": -2013, "msg": "Order does not exist."}, R.ORDER_NOT_FOUND),
    ({"code": -2011, "msg": "Unknown order sent."}, R.ORDER_NOT_FOUND),
    ({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, R.AUTH),
    ({"code": -1022, "msg": "Signature for this request is not valid."}, R.AUTH),
    ({"code": -2021, "msg": "Order would immediately trigger."}, R.INVALID_ORDER),
]


def raised_by_ccxt(exchange: ccxt.Exchange, body: dict[str, object], status: int = 200,
                   url: str = "https://x/api/v5/trade/order") -> BaseException:
    """Run ccxt's own handle_errors (and its HTTP status table) on a response body; return what it raises."""
    text = json.dumps(body)
    try:
        exchange.handle_errors(status, "", url, "POST", {}, text, body, None, None)
        exchange.handle_http_status_code(status, "", url, "POST", text)
    except ccxt.BaseError as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {text}")


@pytest.mark.parametrize(("body", "reason"), OKX_CASES, ids=[str(c[0]) for c in OKX_CASES])
def test_okx_codes_map_to_reasons(body: dict[str, object], reason: VenueReason) -> None:
    exc = raised_by_ccxt(ccxt.okx(), body)
    err = to_venue_error(exc, "okx")
    assert err.reason is reason, (type(exc).__name__, str(exc))


@pytest.mark.parametrize(("body", "reason"), BINANCE_CASES, ids=[str(c[0]) for c in BINANCE_CASES])
def test_binance_codes_map_to_reasons(body: dict[str, object], reason: VenueReason) -> None:
    exchange = ccxt.binance({"options": {"portfolioMargin": True}})
    exc = raised_by_ccxt(exchange, body, status=400, url="https://papi.binance.com/papi/v1/um/order")
    err = to_venue_error(exc, "binance")
    assert err.reason is reason, (type(exc).__name__, str(exc))
    if "{" in str(exc):  # ccxt keeps the body except for messages it matched broadly
        assert err.venue_code == str(body["code"])


def test_okx_code_and_message_read_from_the_order_row() -> None:
    text = "okx " + json.dumps(okx_order_body("51016", "Duplicated clOrdId"))
    assert venue_code_and_message("okx", text) == ("51016", "Duplicated clOrdId")


def test_http_429_with_a_plain_text_body_is_rate_limit() -> None:
    exchange = ccxt.okx()
    url = "https://x/api/v5/trade/order"
    with pytest.raises(ccxt.BaseError) as info:
        exchange.handle_errors(429, "Too Many Requests", url, "POST", {}, "Too Many Requests", None, None, None)
        exchange.handle_http_status_code(429, "Too Many Requests", url, "POST", "Too Many Requests")
    assert to_venue_error(info.value, "okx").reason is R.RATE_LIMIT


@pytest.mark.parametrize(("exc", "reason"), [
    (ccxt.RateLimitExceeded("x"), R.RATE_LIMIT),
    (ccxt.DDoSProtection("x"), R.RATE_LIMIT),
    (ccxt.AuthenticationError("x"), R.AUTH),
    (ccxt.PermissionDenied("x"), R.AUTH),
    (ccxt.InsufficientFunds("x"), R.INSUFFICIENT_FUNDS),
    (ccxt.DuplicateOrderId("x"), R.DUPLICATE_CLIENT_ID),
    (ccxt.OrderNotFound("x"), R.ORDER_NOT_FOUND),
    (ccxt.InvalidOrder("x"), R.INVALID_ORDER),
    (ccxt.BadSymbol("x"), R.INVALID_ORDER),
    (ccxt.OnMaintenance("x"), R.VENUE_ERROR),
    (ccxt.ExchangeError("x"), R.VENUE_ERROR),
    (ccxt.RequestTimeout("x"), R.UNKNOWN_OUTCOME),
    (ccxt.NetworkError("x"), R.UNKNOWN_OUTCOME),
])
def test_ccxt_classes_map_to_reasons(exc: BaseException, reason: VenueReason) -> None:
    assert to_venue_error(exc, "okx").reason is reason


def test_mapped_errors_lets_no_ccxt_exception_out() -> None:
    with pytest.raises(VenueError) as info, mapped_errors("okx"):
        raise ccxt.InsufficientFunds("okx " + json.dumps(okx_order_body("51008")))
    assert info.value.reason is R.INSUFFICIENT_FUNDS
    assert info.value.venue_code == "51008"
    assert isinstance(info.value.__cause__, ccxt.InsufficientFunds)


# --- transport: real sockets on loopback ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[tuple[int, threading.Event, str]]:
    """A server that reads the request then, by mode, drops the connection or never answers."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()
    mode = {"value": "drop"}

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.recv(65536)
            if mode["value"] == "drop":
                conn.close()
            else:
                stop.wait(5)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = int(listener.getsockname()[1])
    yield port, stop, mode  # type: ignore[misc]
    stop.set()
    thread.join(timeout=5)
    listener.close()


def _okx_at(port: int, timeout_ms: int = 3000) -> ccxt.okx:
    exchange = ccxt.okx({"apiKey": "k", "secret": "s", "password": "p", "timeout": timeout_ms})
    exchange.urls["api"]["rest"] = f"http://127.0.0.1:{port}"
    return exchange


def test_connection_refused_is_network() -> None:
    exchange = _okx_at(_free_port())
    with pytest.raises(VenueError) as info, mapped_errors("okx"):
        exchange.privatePostTradeOrder({"instId": "BTC-USDT", "clOrdId": "a1"})
    assert info.value.reason is R.NETWORK


def test_response_lost_after_the_request_left_is_unknown_outcome(silent_server) -> None:  # type: ignore[no-untyped-def]
    port, _, mode = silent_server
    mode["value"] = "drop"
    with pytest.raises(VenueError) as info, mapped_errors("okx"):
        _okx_at(port).privatePostTradeOrder({"instId": "BTC-USDT", "clOrdId": "a1"})
    assert info.value.reason is R.UNKNOWN_OUTCOME


def test_read_timeout_is_unknown_outcome(silent_server) -> None:  # type: ignore[no-untyped-def]
    port, _, mode = silent_server
    mode["value"] = "hang"
    with pytest.raises(VenueError) as info, mapped_errors("okx"):
        _okx_at(port, timeout_ms=300).privatePostTradeOrder({"instId": "BTC-USDT", "clOrdId": "a1"})
    assert info.value.reason is R.UNKNOWN_OUTCOME
    assert info.value.details["ccxt"] == "RequestTimeout"


def test_venue_error_survives_generator_context_managers() -> None:
    # contextlib assigns __traceback__ when a VenueError passes through a @contextmanager unchanged.
    with pytest.raises(VenueError) as info, mapped_errors("okx"):
        raise VenueError(reason=R.AUTH, message="refused")
    assert info.value.reason is R.AUTH
