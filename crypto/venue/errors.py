"""ccxt exceptions and venue error codes -> ``VenueError(reason=VenueReason...)``: the one translation.

Order of the decision, most specific first:

1. the venue's own code, read from the response body ccxt puts in the exception text (OKX: the order's
   ``sCode`` or the top ``code``; Binance: ``code``). ccxt maps some codes to classes too coarse for the
   OMS (OKX 51016 "duplicated clOrdId" and 51121 "not a multiple of the lot" are both ``InvalidOrder``);
2. a phrase of the venue's message (Binance answers -2010/-1013 for several filters and tells them apart
   only in ``msg``: "Filter failure: LOT_SIZE", "Duplicate order sent.");
3. the ccxt exception class.

Transport failures are split by whether the request may have reached the venue: a connection that
could not be opened (refused, connect timeout) is ``NETWORK`` (surely not sent); anything after the
request left (read timeout, connection dropped mid-response, OKX 50004) is ``UNKNOWN_OUTCOME``: the
caller looks the order up by its client id before it retries with the same id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ccxt
import requests

from core.oms.reasons import VenueReason
from crypto.venue.types import VenueError

R = VenueReason

# Venue codes. Sources: OKX v5 error code table, Binance spot/futures/papi error codes, cross-checked with
# the exception tables in ccxt 4.5.90 okx.py / binance.py (see docs/crypto.md, "Venue layer").
OKX_CODES: dict[str, VenueReason] = {
    "50004": R.UNKNOWN_OUTCOME,  # endpoint request timeout: "does not indicate success or failure"
    "50011": R.RATE_LIMIT,  # request too frequent
    "50061": R.RATE_LIMIT,  # sub-account rate limit
    "51113": R.RATE_LIMIT,  # market-price liquidation requests too frequent
    "58102": R.RATE_LIMIT,  # transfers too frequent
    "50013": R.VENUE_ERROR,  # system busy
    "51008": R.INSUFFICIENT_FUNDS,
    "51119": R.INSUFFICIENT_FUNDS,
    "51127": R.INSUFFICIENT_FUNDS,
    "51131": R.INSUFFICIENT_FUNDS,
    "51502": R.INSUFFICIENT_FUNDS,
    "58350": R.INSUFFICIENT_FUNDS,
    "59200": R.INSUFFICIENT_FUNDS,
    "51016": R.DUPLICATE_CLIENT_ID,  # duplicated clOrdId (ccxt: InvalidOrder)
    "51011": R.DUPLICATE_CLIENT_ID,  # duplicated order id
    "51121": R.LOT_SIZE,  # order size not a multiple of the lot (ccxt: InvalidOrder)
    "51007": R.MIN_QTY,  # at least 1 contract
    "51020": R.MIN_QTY,  # order amount below the min available amount
    "51100": R.MIN_QTY,  # below the min tradable amount
    "51120": R.MIN_QTY,  # order quantity is less than {0}
    "51118": R.MIN_NOTIONAL,  # total amount should exceed the min amount per order
    "51205": R.REDUCE_ONLY_REJECTED,  # reduce-only is not available
    "51169": R.REDUCE_ONLY_REJECTED,  # no position in this direction to reduce or close
    "51133": R.REDUCE_ONLY_REJECTED,
    "51139": R.REDUCE_ONLY_REJECTED,
    "51400": R.ORDER_NOT_FOUND,  # cancel: order does not exist
    "51401": R.ORDER_NOT_FOUND,  # cancel: already canceled
    "51402": R.ORDER_NOT_FOUND,  # cancel: already completed
    "51503": R.ORDER_NOT_FOUND,
    "51509": R.ORDER_NOT_FOUND,
    "51603": R.ORDER_NOT_FOUND,  # order does not exist
    "59102": R.LEVERAGE_REFUSED,  # leverage exceeds the maximum
    "59105": R.LEVERAGE_REFUSED,  # leverage can not be less than {0}
    "59104": R.LEVERAGE_REFUSED,
    "59000": R.MARGIN_MODE_CONFLICT,  # settings failed: positions or open orders exist
    "59100": R.MARGIN_MODE_CONFLICT,  # open positions: cancel before changing leverage
    "59101": R.MARGIN_MODE_CONFLICT,  # pending orders on isolated positions
    "51000": R.INVALID_ORDER,  # parameter {0} error
    "51006": R.INVALID_ORDER,  # price out of the limit
}

BINANCE_CODES: dict[str, VenueReason] = {
    "-1003": R.RATE_LIMIT,  # too many requests
    "-1015": R.RATE_LIMIT,  # too many new orders
    "-1008": R.VENUE_ERROR,  # server busy
    "-1021": R.VENUE_ERROR,  # timestamp outside recvWindow: resync and retry
    "-1022": R.AUTH,  # signature not valid
    "-2014": R.AUTH,  # API-key format invalid
    "-2015": R.AUTH,  # invalid API-key, IP, or permissions
    "-2018": R.INSUFFICIENT_FUNDS,  # balance is insufficient
    "-2019": R.INSUFFICIENT_FUNDS,  # margin is insufficient
    "-4116": R.DUPLICATE_CLIENT_ID,  # DUPLICATED_CLIENT_ORDER_ID (ccxt: InvalidOrder)
    "-4164": R.MIN_NOTIONAL,  # UM: order's notional must be no smaller than N
    "-4014": R.TICK_SIZE,  # UM: price not increased by tick size
    "-4023": R.LOT_SIZE,  # UM: quantity not increased by step size
    "-5022": R.POST_ONLY_WOULD_TAKE,  # UM GTX: could not be executed as maker
    "-2021": R.INVALID_ORDER,  # stop would immediately trigger (ccxt: OrderImmediatelyFillable)
    "-2022": R.REDUCE_ONLY_REJECTED,
    "-4118": R.REDUCE_ONLY_REJECTED,  # REDUCE_ONLY_MARGIN_CHECK_FAILED
    "-2011": R.ORDER_NOT_FOUND,  # cancel rejected: unknown order sent
    "-2013": R.ORDER_NOT_FOUND,  # order does not exist
    "-4028": R.LEVERAGE_REFUSED,  # UM: leverage not valid
    "-4047": R.MARGIN_MODE_CONFLICT,  # margin type cannot be changed: open orders
    "-4048": R.MARGIN_MODE_CONFLICT,  # margin type cannot be changed: position exists
}

# Phrases of a venue message, checked (case-insensitively, in this order) when the code alone is too
# coarse: Binance -2010 NEW_ORDER_REJECTED and -1013 filter failures carry the reason only in ``msg``.
MESSAGE_PHRASES: tuple[tuple[str, VenueReason], ...] = (
    ("duplicate", R.DUPLICATE_CLIENT_ID),
    ("immediately match and take", R.POST_ONLY_WOULD_TAKE),
    ("could not be executed as maker", R.POST_ONLY_WOULD_TAKE),
    ("post only", R.POST_ONLY_WOULD_TAKE),  # OKX 51019 per NautilusTrader's OKX adapter; ccxt names it otherwise
    ("post-only", R.POST_ONLY_WOULD_TAKE),
    ("min_notional", R.MIN_NOTIONAL),
    ("filter failure: notional", R.MIN_NOTIONAL),
    ("lot_size", R.LOT_SIZE),
    ("price_filter", R.TICK_SIZE),
    ("insufficient", R.INSUFFICIENT_FUNDS),
    ("reduceonly", R.REDUCE_ONLY_REJECTED),
    ("reduce only", R.REDUCE_ONLY_REJECTED),
    ("reduce-only", R.REDUCE_ONLY_REJECTED),
)

# ccxt classes, most specific first (a subclass must come before its base).
CLASS_REASONS: tuple[tuple[type[BaseException], VenueReason], ...] = (
    (ccxt.RateLimitExceeded, R.RATE_LIMIT),
    (ccxt.DDoSProtection, R.RATE_LIMIT),
    (ccxt.OnMaintenance, R.VENUE_ERROR),
    (ccxt.ExchangeNotAvailable, R.VENUE_ERROR),
    (ccxt.InvalidNonce, R.VENUE_ERROR),
    (ccxt.AuthenticationError, R.AUTH),
    (ccxt.InsufficientFunds, R.INSUFFICIENT_FUNDS),
    (ccxt.DuplicateOrderId, R.DUPLICATE_CLIENT_ID),
    (ccxt.OrderNotFound, R.ORDER_NOT_FOUND),
    (ccxt.OrderImmediatelyFillable, R.POST_ONLY_WOULD_TAKE),
    (ccxt.InvalidOrder, R.INVALID_ORDER),
    (ccxt.BadRequest, R.INVALID_ORDER),
    (ccxt.ArgumentsRequired, R.INVALID_ORDER),
    (ccxt.NotSupported, R.INVALID_ORDER),
)

# Texts of a transport failure that happened before any byte of the request left: safe to resend.
_NOT_SENT_MARKERS = ("Failed to establish a new connection", "Connection refused", "ConnectTimeout",
                     "Name or service not known", "No route to host")

_HTTP_429 = re.compile(r" (?:GET|POST|PUT|DELETE) \S+ 429 ")

CODE_TABLES: dict[str, dict[str, VenueReason]] = {"okx": OKX_CODES, "binance": BINANCE_CODES}


def venue_code_and_message(venue: str, text: str) -> tuple[str, str]:
    """The venue's own error code and message, from the JSON body ccxt embeds in its exception text."""
    body = _json_body(text)
    if not isinstance(body, dict):
        return "", ""
    if venue == "okx":
        for item in body.get("data") or []:
            if isinstance(item, dict) and str(item.get("sCode", "0")) not in ("0", ""):
                return str(item["sCode"]), str(item.get("sMsg", ""))
        code = str(body.get("code", ""))
        return ("" if code == "0" else code), str(body.get("msg", ""))
    raw_code = body.get("code")
    return ("" if raw_code is None else str(raw_code)), str(body.get("msg", ""))


def to_venue_error(exc: BaseException, venue: str) -> VenueError:
    """One ccxt (or transport) exception -> a ``VenueError`` in the core vocabulary."""
    text = str(exc)
    code, message = venue_code_and_message(venue, text)
    details = {"ccxt": type(exc).__name__}
    reason = CODE_TABLES.get(venue, {}).get(code) if code else None
    if reason is None and _HTTP_429.search(text):
        # ccxt's okx maps HTTP 429 to ExchangeNotAvailable (ccxt issue 9612); it is the venue's rate limit.
        reason = R.RATE_LIMIT
    if reason is None and message:
        reason = _reason_from_phrase(message)
    if reason is None and isinstance(exc, ccxt.RequestTimeout):
        reason = R.NETWORK if _never_sent(exc) else R.UNKNOWN_OUTCOME
    if reason is None:
        reason = next((r for cls, r in CLASS_REASONS if isinstance(exc, cls)), None)
    if reason is None and isinstance(exc, (ccxt.NetworkError, requests.RequestException)):
        reason = R.NETWORK if _never_sent(exc) else R.UNKNOWN_OUTCOME
    if reason is None and not code and isinstance(exc, ccxt.ExchangeError):
        reason = _reason_from_phrase(text)
    return VenueError(reason=reason or R.VENUE_ERROR, message=message or text[:500], venue_code=code,
                      details=details)


def reason_for_code(venue: str, code: str, message: str) -> VenueError:
    """A refusal the venue reported inside a successful answer (a row's code, not an HTTP error)."""
    reason = CODE_TABLES.get(venue, {}).get(code) or _reason_from_phrase(message) or R.VENUE_ERROR
    return VenueError(reason=reason, message=message, venue_code=code)


@contextmanager
def mapped_errors(venue: str) -> Iterator[None]:
    """Run a ccxt call; any ccxt or transport exception leaves as a ``VenueError``."""
    try:
        yield
    except VenueError:
        raise
    except (ccxt.BaseError, requests.RequestException) as exc:
        raise to_venue_error(exc, venue) from exc


def _reason_from_phrase(message: str) -> VenueReason | None:
    lowered = message.lower()
    return next((r for phrase, r in MESSAGE_PHRASES if phrase in lowered), None)


def _never_sent(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain is short: ccxt -> requests -> urllib3
        if seen is None:
            return False
        if isinstance(seen, (requests.exceptions.ConnectTimeout, ConnectionRefusedError)):
            return True
        if any(marker in str(seen) or marker in type(seen).__name__ for marker in _NOT_SENT_MARKERS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _json_body(text: str) -> Any:
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(text[start:end + 1])
    except ValueError:
        return None
