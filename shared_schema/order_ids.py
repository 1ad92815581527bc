"""Pieces of the client_order_id formats that both machines mint (pure, standard library only).

The node's grid ids and the executor's reduction ids are short base-36 ASCII, because QMT keeps the id in
``order_remark`` and public simulators cut remarks at 24 characters.
"""

from __future__ import annotations

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def base36(n: int) -> str:
    """``n >= 0`` in upper-case base 36 (``0`` for zero)."""
    if n < 0:
        raise ValueError("base36 takes n >= 0")
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out))
