"""The REAL ``xtquant.xttype`` classes (plain Python in the wheel), so the fake hands out the same objects."""

from xtquant.xttype import *  # noqa: F403
from xtquant.xttype import (  # noqa: F401  (named for readers and linters)
    StockAccount,
    XtAsset,
    XtCancelError,
    XtCancelOrderResponse,
    XtOrder,
    XtOrderError,
    XtOrderResponse,
    XtPosition,
    XtTrade,
)
