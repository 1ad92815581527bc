"""Build a ``Venue`` on an unmodified ccxt exchange class, pointed at a real venue or at the local exchange.

Names: ``okx`` and ``binance-pm`` talk to the real venues; ``okx-fake`` and ``binance-pm-fake`` (or any name
with a ``url``) talk to a server on that URL, usually ``crypto.fakex`` on loopback. Pointing ccxt
elsewhere is done the way ccxt's own users do it: by rewriting the instance's URL table
(``exchange.urls['api']``). OKX reads one key (``rest``: the host; ccxt appends ``/api/v5/...``);
Binance reads one key per API family (``public`` = ``/api/v3``, ``fapiPublic`` = ``/fapi/v1``, ``papi`` =
``/papi/v1``, ``sapi`` = ``/sapi/v1``, ...), so every family keeps its path and gets the new host.

Credentials are a pydantic model read from the environment or a JSON file; secrets are ``SecretStr`` and
never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from core.oms.reasons import VenueReason
from crypto.venue.ccxt_venue import CcxtVenue
from crypto.venue.types import VenueError

# Our venue name -> (ccxt class id, portfolio margin).
VENUE_KINDS: dict[str, tuple[str, bool]] = {
    "okx": ("okx", False),
    "okx-fake": ("okx", False),
    "binance-pm": ("binance", True),
    "binance-pm-fake": ("binance", True),
}

# Only the markets the engine trades: loading options, futures and inverse books costs requests and time.
_MARKET_TYPES = {"okx": ["spot", "swap"], "binance": ["spot", "linear"]}


class VenueCredentials(BaseModel):
    """API credentials of one venue account. ``passphrase`` is OKX's third secret (ccxt ``password``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: SecretStr
    secret: SecretStr
    passphrase: SecretStr | None = None

    @classmethod
    def from_env(cls, prefix: str, environ: dict[str, str] | None = None) -> VenueCredentials:
        """Read ``{PREFIX}_API_KEY``, ``{PREFIX}_SECRET`` and optional ``{PREFIX}_PASSPHRASE``."""
        env = os.environ if environ is None else environ
        values: dict[str, str] = {}
        for field in ("api_key", "secret", "passphrase"):
            value = env.get(f"{prefix}_{field.upper()}")
            if value:
                values[field] = value
        return cls._validated(values, f"environment {prefix}_*")

    @classmethod
    def from_file(cls, path: Path) -> VenueCredentials:
        """A JSON object ``{"api_key": ..., "secret": ..., "passphrase": ...}``."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise VenueError(reason=VenueReason.AUTH, message=f"credentials file {path}: {type(exc).__name__}",
                             venue_code="CONFIG") from None
        return cls._validated(data if isinstance(data, dict) else {}, f"file {path}")

    @classmethod
    def _validated(cls, values: dict[str, Any], source: str) -> VenueCredentials:
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Name the fields only: a pydantic error would echo the input, secrets included.
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise VenueError(reason=VenueReason.AUTH, venue_code="CONFIG",
                             message=f"credentials from {source}: bad or missing {', '.join(fields)}") from None

    def ccxt_config(self) -> dict[str, str]:
        config = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.passphrase is not None:
            config["password"] = self.passphrase.get_secret_value()
        return config


def point_at(exchange: ccxt.Exchange, url: str) -> None:
    """Rewrite every API URL of ``exchange`` to the host of ``url``, keeping each family's path."""
    target = urlsplit(url)
    if not target.scheme or not target.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    base = f"{target.scheme}://{target.netloc}"
    api = exchange.urls["api"]
    for key, value in list(api.items()):
        if isinstance(value, str):
            path = urlsplit(value.replace("{hostname}", "placeholder")).path
            api[key] = base + path


def make_exchange(name: str, url: str | None, credentials: VenueCredentials | None,
                  timeout_ms: int = 10_000) -> ccxt.Exchange:
    """The unmodified ccxt class for ``name``, configured (options only) and pointed at ``url``."""
    if name not in VENUE_KINDS:
        raise ValueError(f"unknown venue {name!r}; known: {', '.join(sorted(VENUE_KINDS))}")
    ccxt_id, portfolio_margin = VENUE_KINDS[name]
    if name.endswith("-fake") and url is None:
        raise ValueError(f"venue {name!r} needs the local exchange's url")
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": timeout_ms}
    if credentials is not None:
        config.update(credentials.ccxt_config())
    exchange: ccxt.Exchange = getattr(ccxt, ccxt_id)(config)
    exchange.options["fetchMarkets"] = {**exchange.options.get("fetchMarkets", {}),
                                        "types": _MARKET_TYPES[ccxt_id]}
    # Currencies come from the markets: the private currency list (withdrawal networks) is not needed.
    exchange.has["fetchCurrencies"] = False
    if ccxt_id == "okx":
        # One order per request (trade/order), not the batch endpoint: one clOrdId, one answer, one error.
        exchange.options["createOrder"] = "privatePostTradeOrder"
    if portfolio_margin:
        exchange.options["portfolioMargin"] = True
        # open_orders() without a symbol asks each papi book; ccxt would otherwise refuse with a warning.
        exchange.options["fetchOpenOrders"] = {**exchange.options.get("fetchOpenOrders", {}),
                                               "warnWithoutSymbol": False}
        exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    if url is not None:
        point_at(exchange, url)
    return exchange


def make_venue(name: str, url: str | None = None, credentials: VenueCredentials | None = None, *,
               timeout_ms: int = 10_000, precheck: bool = True) -> CcxtVenue:
    """A ``Venue`` for ``name`` (``okx``, ``okx-fake``, ``binance-pm``, ``binance-pm-fake``).

    ``precheck`` refuses an order that breaks the market's filters (tick, min size, min notional) before
    it is sent; switch it off to let the venue itself refuse (the contract suite does both).
    """
    exchange = make_exchange(name, url, credentials, timeout_ms=timeout_ms)
    return CcxtVenue(exchange, name=VENUE_KINDS[name][0], precheck=precheck)
