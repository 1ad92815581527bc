"""Compact, never-reused client_order_ids, generated purely from a persisted sequence.

Format: ``<prefix><time36><counter36>``, ASCII alphanumerics only, at most 24 characters (QMT's
``order_remark`` and most crypto venues' client ids fit). The counter strictly increases and the caller
persists the returned ``IdSequence`` (journal) before using the id; the time part (ms, base 36, never
going backwards within a sequence) keeps ids unique even if a crash loses the last counter.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from shared_schema.order_ids import base36

MAX_LEN = 24
MAX_PREFIX = 8
TIME_WIDTH = 8  # 36**8 ms reaches 2059


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


def next_client_order_id(seq: IdSequence, now_ms: int) -> tuple[IdSequence, str]:
    """The next id and the sequence to persist; time is passed in (epoch milliseconds)."""
    ms = max(now_ms, seq.last_ms)  # a clock stepping back must not reorder or collide
    counter = seq.counter + 1
    # base 36 in lower case: this format's ids predate the shared upper-case helper and must not change
    client_order_id = f"{seq.prefix}{base36(ms).lower().rjust(TIME_WIDTH, '0')}{base36(counter).lower()}"
    if len(client_order_id) > MAX_LEN:
        raise ValueError("client_order_id space exhausted for this prefix; start a new sequence")
    return replace(seq, counter=counter, last_ms=ms), client_order_id
