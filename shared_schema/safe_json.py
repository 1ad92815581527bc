"""One bounded JSON loader for everything read from a shared folder or a state file.

``json.loads`` trusts its input: 200,000 nested ``[`` raise ``RecursionError`` (not a ``ValueError``, so
the usual ``except ValueError`` lets it through and the process dies), a 5,000-digit integer raises, and a
35-digit number literal is silently rounded to the nearest float (so ``1.10000000000000000000000000000000001``
would pass a tick check as ``1.1``). ``safe_loads`` bounds all three: the size before parsing, the nesting
depth after it, and number literals that a float cannot hold exactly are kept as ``Decimal`` for the schema
to refuse. Every refusal is a ``JsonRefused`` (a ``ValueError``) carrying a machine-readable ``code``.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting accepted. The contract's files nest at most 5 deep; 64 leaves room and stays far below
the interpreter's recursion limit for every later step (validation, hashing, dumping)."""

MAX_BYTES = 16 * 1024 * 1024
"""Largest document accepted by default (a signal file with thousands of entries is well below 1 MB)."""

MAX_INT_DIGITS = 40
"""Integer literals longer than this are kept as ``Decimal`` (no schema accepts them; none may raise)."""

JSON_TOO_DEEP = "JSON_TOO_DEEP"
JSON_TOO_LARGE = "JSON_TOO_LARGE"
JSON_INVALID = "JSON_INVALID"


class JsonRefused(ValueError):
    """The document is refused as a whole; ``code`` says why (``JSON_TOO_DEEP``, ``JSON_TOO_LARGE``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _exact_float(text: str) -> float | Decimal:
    value = float(text)
    try:
        if value == value and abs(value) != float("inf") and Decimal(repr(value)) == Decimal(text):
            return value
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the JSON scanner only hands over valid number text
        return value


def _bounded_int(text: str) -> int | Decimal:
    digits = len(text) - (1 if text.startswith("-") else 0)
    return int(text) if digits <= MAX_INT_DIGITS else Decimal(text)


def depth_of(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children if isinstance(child, dict | list))
    return deepest


def safe_loads(data: bytes | str, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse JSON with bounds on size and nesting; refuse with ``JsonRefused``, never with ``RecursionError``.

    Number literals that a float represents exactly come back as ``float``/``int`` as with ``json.loads``;
    longer ones come back as ``Decimal`` so that a strict schema refuses them instead of a rounded value.
    """
    size = len(data)
    if size > max_bytes:
        raise JsonRefused(JSON_TOO_LARGE, f"document of {size} bytes is over the {max_bytes}-byte bound")
    try:
        obj = json.loads(data, parse_float=_exact_float, parse_int=_bounded_int)
    except RecursionError:
        raise JsonRefused(JSON_TOO_DEEP, f"document nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JsonRefused(JSON_INVALID, f"not valid JSON: {exc}") from exc
    if depth_of(obj) > max_depth:
        raise JsonRefused(JSON_TOO_DEEP, f"document nests deeper than {max_depth} levels")
    return obj
