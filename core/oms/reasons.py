"""Why a venue refused or could not confirm an order: one vocabulary for every market.

Adapters (xtquant, ccxt) map their own error codes and exception classes onto these; the OMS, the risk
state machine and the audit log only ever see these strings. ``UNKNOWN_OUTCOME`` is not a refusal: the
request may have been accepted (a timeout, a lost response), so the caller looks the order up by its
client id before it retries with the same id.
"""

from __future__ import annotations

from enum import Enum


class VenueReason(str, Enum):
    RATE_LIMIT = "RATE_LIMIT"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"
    LOT_SIZE = "LOT_SIZE"
    TICK_SIZE = "TICK_SIZE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    MIN_QTY = "MIN_QTY"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    REDUCE_ONLY_REJECTED = "REDUCE_ONLY_REJECTED"
    LEVERAGE_REFUSED = "LEVERAGE_REFUSED"
    MARGIN_MODE_CONFLICT = "MARGIN_MODE_CONFLICT"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    AUTH = "AUTH"
    INVALID_ORDER = "INVALID_ORDER"
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"  # timeout / lost response: look up by client id, then retry same id
    NETWORK = "NETWORK"  # the request surely did not reach the venue (connection refused)
    VENUE_ERROR = "VENUE_ERROR"  # anything else the venue said

    @property
    def retryable(self) -> bool:
        """Worth the same request again later (after backoff, and after a lookup for UNKNOWN_OUTCOME)."""
        return self in (VenueReason.RATE_LIMIT, VenueReason.UNKNOWN_OUTCOME, VenueReason.NETWORK,
                        VenueReason.VENUE_ERROR)
