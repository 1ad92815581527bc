"""Canned OKX v5 responses (shapes from the OKX docs) served to an unmodified ccxt ``okx`` through its
``fetch`` hook: the adapter's requests can be read back without any server."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

INSTRUMENTS = {
    "SPOT": [{"instType": "SPOT", "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", "settleCcy": "",
              "ctVal": "", "lotSz": "0.00000001", "minSz": "0.00001", "tickSz": "0.1", "lever": "10",
              "state": "live", "uly": "", "maxMktSz": "1000000", "maxLmtSz": "9999999999"}],
    "SWAP": [{"instType": "SWAP", "instId": "BTC-USDT-SWAP", "baseCcy": "", "quoteCcy": "", "settleCcy": "USDT",
              "ctVal": "0.01", "ctValCcy": "BTC", "ctType": "linear", "lotSz": "0.01", "minSz": "0.01",
              "tickSz": "0.1", "lever": "100", "state": "live", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
              "maxLmtSz": "100000"},
             {"instType": "SWAP", "instId": "ETH-USDT-SWAP", "baseCcy": "", "quoteCcy": "", "settleCcy": "USDT",
              "ctVal": "0.1", "ctValCcy": "ETH", "ctType": "linear", "lotSz": "0.01", "minSz": "0.01",
              "tickSz": "0.01", "lever": "100", "state": "live", "uly": "ETH-USDT", "instFamily": "ETH-USDT",
              "maxLmtSz": "100000"}],
}


def ok(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {"code": "0", "msg": "", "data": data}


class CannedOkx:
    """Answers by path; records every request as (method, path, query or body)."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.routes: dict[tuple[str, str], Any] = {}

    def route(self, method: str, path: str, response: Any) -> None:
        self.routes[(method, path)] = response

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parts = urlsplit(url)
        path = parts.path.removeprefix("/api/v5/")
        if method == "GET":
            args: dict[str, Any] = {k: v[0] for k, v in parse_qs(parts.query).items()}
        else:
            args = json.loads(body) if body else {}
        self.requests.append((method, path, args))
        if (method, path) == ("GET", "public/instruments"):
            return ok(INSTRUMENTS.get(args["instType"], []))
        if (method, path) == ("GET", "account/config") and (method, path) not in self.routes:
            return ok([{"uid": "1", "acctLv": "2", "posMode": "net_mode"}])
        if (method, path) == ("GET", "account/trade-fee"):  # OKX regular tier; charged fees are negative
            spot = args["instType"] == "SPOT"
            return ok([{"instType": args["instType"], "level": "Lv1",
                        "maker": "-0.0008" if spot else "-0.0003", "taker": "-0.001" if spot else "-0.0006",
                        "makerU": "" if spot else "-0.0002", "takerU": "" if spot else "-0.0005"}])
        response = self.routes.get((method, path))
        if response is None:
            raise AssertionError(f"no canned answer for {method} {path}")
        answer = response(args) if callable(response) else response
        # ccxt's own fetch runs handle_errors on every answer; so does this hook.
        self.exchange.handle_errors(200, "OK", url, method, {}, json.dumps(answer), answer, headers, body)
        return answer

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        return [args for m, p, args in self.requests if (m, p) == (method, path)]
