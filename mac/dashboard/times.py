"""Time on the dashboard's axes: epoch ms and aware datetimes to naive China time (what plotly draws)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from shared_schema.types import CST


def ms_to_naive_cst(ms: Any) -> Any:
    """Epoch ms (scalar or array) to naive China-time datetimes for chart axes."""
    return pd.to_datetime(np.asarray(ms, dtype="int64") + 8 * 3_600_000, unit="ms") if np.ndim(ms) else \
        pd.Timestamp(int(ms) + 8 * 3_600_000, unit="ms")


def to_naive_cst(ts: datetime | None) -> pd.Timestamp | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=CST)
    return pd.Timestamp(ts.astimezone(CST).replace(tzinfo=None))


def parse_ts(text: Any) -> datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=CST)

