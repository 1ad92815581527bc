"""The callback queue: xtquant calls back on its own worker thread; the executor's thread reads a queue.

Each callback only copies the fields the adapter needs into a thread-safe queue, tagged with the session
generation it belongs to (an old session's news is told apart); nothing blocks or queries on xtquant's
thread. ``CallbackQueue.drain`` hands the copies to the adapter (``xtquant_broker``), which folds them into
its order tracks and emits ``OrderUpdate`` events.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from typing import Any

ORDER_FIELDS = ("order_id", "order_sysid", "stock_code", "order_type", "order_volume", "price", "traded_volume",
                "traded_price", "order_status", "status_msg", "order_remark", "strategy_name")
TRADE_FIELDS = ("traded_id", "order_id", "order_sysid", "stock_code", "order_type", "traded_volume", "traded_price",
                "traded_amount", "commission", "order_remark")
_RESP_FIELDS = ("seq", "order_id", "order_remark", "error_msg", "strategy_name")
_ERROR_FIELDS = ("order_id", "error_id", "error_msg", "order_remark")
_CANCEL_RESP_FIELDS = ("seq", "order_id", "order_sysid", "cancel_result", "error_msg")
_CANCEL_ERROR_FIELDS = ("order_id", "order_sysid", "error_id", "error_msg")

RawEvent = tuple[int, str, dict[str, Any] | None]
"""(session generation, kind, the copied fields); ``disconnected`` carries no fields."""


def copy_fields(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    """The named attributes of an xtquant object (missing ones as None): plain data, safe across threads."""
    return {name: getattr(obj, name, None) for name in names}


def make_callback_class(base: type) -> type:
    """A ``XtQuantTraderCallback`` subclass that only enqueues copies of what it is given."""

    class QueueingCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, sink: queue.SimpleQueue[RawEvent], generation: int) -> None:
            super().__init__()
            self._sink = sink
            self._generation = generation

        def _put(self, kind: str, data: dict[str, Any] | None) -> None:
            self._sink.put((self._generation, kind, data))

        def on_disconnected(self) -> None:
            self._put("disconnected", None)

        def on_stock_order(self, order: Any) -> None:
            self._put("order", copy_fields(order, ORDER_FIELDS))

        def on_stock_trade(self, trade: Any) -> None:
            self._put("trade", copy_fields(trade, TRADE_FIELDS))

        def on_order_error(self, order_error: Any) -> None:
            self._put("order_error", copy_fields(order_error, _ERROR_FIELDS))

        def on_cancel_error(self, cancel_error: Any) -> None:
            self._put("cancel_error", copy_fields(cancel_error, _CANCEL_ERROR_FIELDS))

        def on_order_stock_async_response(self, response: Any) -> None:
            self._put("async_resp", copy_fields(response, _RESP_FIELDS))

        def on_cancel_order_stock_async_response(self, response: Any) -> None:
            self._put("cancel_resp", copy_fields(response, _CANCEL_RESP_FIELDS))

        def on_account_status(self, status: Any) -> None:
            self._put("account_status", copy_fields(status, ("account_id", "status")))

    return QueueingCallback


class CallbackQueue:
    """The queue between xtquant's worker thread (``callback``) and the adapter's thread (``drain``)."""

    def __init__(self, callback_base: type) -> None:
        self._raw: queue.SimpleQueue[RawEvent] = queue.SimpleQueue()
        self._callback_class = make_callback_class(callback_base)

    def callback(self, generation: int) -> Any:
        """A callback object for the session of ``generation`` (register it on that session's trader)."""
        return self._callback_class(self._raw, generation)

    def drain(self) -> Iterator[RawEvent]:
        """Everything queued so far, oldest first; never blocks."""
        while True:
            try:
                yield self._raw.get_nowait()
            except queue.Empty:
                return
