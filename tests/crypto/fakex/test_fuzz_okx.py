"""Every bad request gets a machine-readable OKX answer, never an internal error (fuzzed through ccxt)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ccxt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.fakex.okx_routes import _ROUTES
from crypto.fakex.server import FakeExchange
from tests.crypto.fakex.conftest import make_okx

VALUES = ["", "x", "-1", "0", "1e400", "1e999999", "-1e-999999", "NaN", "Infinity", "1.5", "0.00000001", "BTC-USDT-SWAP", "BTC-USDT",
          "ETH-USDT-SWAP", "true", "false", "ANY", "cross", "isolated", "cash", "buy", "sell", "limit", "market",
          "post_only", "ioc", "fok", "conditional", "trigger", "oco", "6", "18", "1H", "5m", "7Q", "net", "long",
          "add", "reduce", "USDT", "BTC", "a" * 40]
KEYS = ["instId", "instType", "tdMode", "side", "ordType", "sz", "px", "clOrdId", "ordId", "reduceOnly", "lever",
        "mgnMode", "posSide", "posMode", "type", "amt", "ccy", "from", "to", "clientId", "transId", "bar", "limit",
        "after", "before", "begin", "end", "triggerPx", "slTriggerPx", "tpTriggerPx", "orderPx", "slOrdPx",
        "tpOrdPx", "algoId", "algoClOrdId", "newSz", "newPx", "tgtCcy", "instFamily", "state", "cxlOnFail"]
ROUTES = sorted(_ROUTES)
params = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=9)


@pytest.fixture(scope="module")
def venue() -> Iterator[tuple[FakeExchange, ccxt.okx]]:
    with FakeExchange.start(seed=3, scenario="calm") as fx:
        for _, path in ROUTES:
            fx.set_rate_limit(path, 10**9, 1000)
        okx = make_okx(fx)
        okx.load_markets()
        okx.create_order("BTC/USDT:USDT", "market", "buy", 5, None, {"marginMode": "isolated"})
        yield fx, okx


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(ROUTES), params, st.booleans())
def test_no_request_gets_an_internal_error(venue: tuple[FakeExchange, ccxt.okx], route: tuple[str, str],
                                           body: dict[str, Any], as_list: bool) -> None:
    _, okx = venue
    method, path = route
    api = ["private" if _ROUTES[route].private else "public"]
    payload: Any = [body] if as_list and method == "POST" else body
    try:
        okx.request(path, api, method, payload)
    except ccxt.ExchangeError as exc:
        text = str(exc)
        assert '"code":"50000"' not in text and "Internal Server Error" not in text, text
        assert '"code":"' in text, text  # an OKX body with its code, which ccxt mapped

