"""One bar as a light tuple for hot loops: no numpy or pandas import, so the live node stays quick to start."""

from __future__ import annotations

from typing import NamedTuple


class BarTuple(NamedTuple):
    """A light bar (same field names as ``shared_schema.models.Bar``) for hot loops."""

    t: int
    o: float
    h: float
    l: float  # noqa: E741
    c: float
