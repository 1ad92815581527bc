"""The venue-neutral exchange model behind every dialect of the local exchange (OKX now, Binance PM next).

One module one job: ``instruments`` (catalogue and filters), ``paths`` (seeded price paths), ``book``
(synthetic depth and matching), ``funding`` (rate, schedule, payment), ``margin`` (liquidation price,
unrealised PnL), ``clock`` (the model's own time), ``errors`` (neutral rejection reasons), ``state``
(all state in one serialisable object), ``exchange`` (the one class that applies requests and time to the
state). Dialects translate their wire format to these calls and these reasons to their own codes.
"""

from crypto.fakex.engine.clock import ManualClock, ScaledClock
from crypto.fakex.engine.errors import Reason, Reject
from crypto.fakex.engine.exchange import Exchange, OrderSpec
from crypto.fakex.engine.instruments import Instrument, default_instruments

__all__ = [
    "Exchange",
    "Instrument",
    "ManualClock",
    "OrderSpec",
    "Reason",
    "Reject",
    "ScaledClock",
    "default_instruments",
]
