"""Venue-neutral rejection reasons; each dialect maps them to its own error codes in one table."""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    BAD_PARAM = "BAD_PARAM"  # a missing or malformed field
    TICK_SIZE = "TICK_SIZE"  # price not a multiple of the tick
    LOT_SIZE = "LOT_SIZE"  # quantity not a multiple of the lot
    MIN_SIZE = "MIN_SIZE"  # quantity under the instrument minimum
    MIN_NOTIONAL = "MIN_NOTIONAL"  # price x quantity under the instrument minimum (0 = none)
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"  # balance or margin
    DUPLICATE_CLIENT_ID = "DUPLICATE_CLIENT_ID"  # a live order already has this client id
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_ALREADY_CANCELED = "ORDER_ALREADY_CANCELED"
    ORDER_ALREADY_FILLED = "ORDER_ALREADY_FILLED"
    REDUCE_ONLY_NO_POSITION = "REDUCE_ONLY_NO_POSITION"  # nothing to reduce in that direction
    REDUCE_ONLY_SAME_SIDE = "REDUCE_ONLY_SAME_SIDE"  # the order would increase the position
    REDUCE_ONLY_SPOT = "REDUCE_ONLY_SPOT"  # reduce-only on a cash spot order
    MARGIN_MODE_MISMATCH = "MARGIN_MODE_MISMATCH"  # order tdMode differs from the position's mode
    LEVERAGE_INVALID = "LEVERAGE_INVALID"
    LEVERAGE_WITH_ORDERS = "LEVERAGE_WITH_ORDERS"  # mode change refused with a position or orders
    NO_POSITION = "NO_POSITION"  # margin add/reduce on a flat or cross position
    MARGIN_REDUCE_TOO_LARGE = "MARGIN_REDUCE_TOO_LARGE"
    UNKNOWN_ACCOUNT = "UNKNOWN_ACCOUNT"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"  # an amendment that would make a post-only order cross


class Reject(Exception):  # noqa: N818 - a refusal, not a crash: the dialect turns it into a venue error body
    """The engine refused a request; ``reason`` is neutral, ``detail`` a short human text."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail
