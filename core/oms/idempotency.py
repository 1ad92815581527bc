"""Compact, never-reused client_order_ids, generated purely from a persisted sequence.

Format: ``<prefix><time36><counter36>``, ASCII alphanumerics only, at most 24 characters (QMT's
``order_remark`` and most crypto venues' client ids fit). The counter strictly increases and the caller
persists the returned ``IdSequence`` (journal) before using the id; the time part (ms, base 36, never
going backwards within a sequence) keeps ids unique even if a crash loses the last counter.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, replace
from typing import NewType

ClientOrderId = NewType("ClientOrderId", str)

MAX_LEN = 24
MAX_PREFIX = 8
TIME_WIDTH = 8  # 36**8 ms reaches 2059
_ALPHABET = string.digits + string.ascii_lowercase


def to_base36(value: int) -> str:
    if value < 0:
        raise ValueError("base36 of a negative number")
    digits = []
    while True:
        value, rem = divmod(value, 36)
        digits.append(_ALPHABET[rem])
        if value == 0:
            return "".join(reversed(digits))


@dataclass(frozen=True)
class IdSequence:
    """Persisted generator state: ``prefix`` names the issuer (node/strategy), ``counter`` the last id."""

    prefix: str
    counter: int = 0
    last_ms: int = 0

    def __post_init__(self) -> None:
        if (
            not (1 <= len(self.prefix) <= MAX_PREFIX)
            or not self.prefix.isascii()
            or not self.prefix.isalnum()
        ):
            raise ValueError(f"prefix must be 1-{MAX_PREFIX} ASCII alphanumerics")


def next_client_order_id(seq: IdSequence, now_ms: int) -> tuple[IdSequence, ClientOrderId]:
    """The next id and the sequence to persist; time is passed in (epoch milliseconds)."""
    ms = max(now_ms, seq.last_ms)  # a clock stepping back must not reorder or collide
    counter = seq.counter + 1
    coid = f"{seq.prefix}{to_base36(ms).rjust(TIME_WIDTH, '0')}{to_base36(counter)}"
    if len(coid) > MAX_LEN:
        raise ValueError("client_order_id space exhausted for this prefix; start a new sequence")
    return replace(seq, counter=counter, last_ms=ms), ClientOrderId(coid)
