from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from crypto.fakex.server import FakeExchange


def make_okx(fx: FakeExchange, timeout_ms: int = 10_000) -> ccxt.okx:
    okx = ccxt.okx({**fx.credentials.as_ccxt(), "enableRateLimit": False, "timeout": timeout_ms})
    okx.urls["api"]["rest"] = fx.url
    return okx


@pytest.fixture()
def fx() -> Iterator[FakeExchange]:
    with FakeExchange.start(seed=7, scenario="calm") as handle:
        yield handle


@pytest.fixture()
def okx(fx: FakeExchange) -> ccxt.okx:
    client = make_okx(fx)
    client.load_markets()
    return client
