"""Fake ``xtquant.xttrader``: the same class and method names and signatures, over ``FakeTerminal``.

``XtQuantTrader(path, session)`` treats ``path`` (MiniQMT's ``userdata_mini``) as the terminal's folder.
Requests are transactions on the terminal's books; answers to the async calls and every order/trade push
are delivered later by this trader's own worker thread, like the library's single-thread executor.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.kit.fake_xtquant import xtconstant as xc
from tests.kit.fake_xtquant import xttype
from tests.kit.fake_xtquant.terminal import (
    FakeTerminal,
    counter_problem,
    emit,
    fee_fen,
    frozen_fen,
    order_fields,
    order_push,
    register_worker,
    sellable,
    trade_fields,
)
from tests.kit.fake_xtquant.terminal import _match as match_order
from tests.kit.fake_xtquant.terminal import _value_fen as value_fen

POLL_S = 0.005


class XtQuantTraderCallback:
    """The callback base class, method for method as in xtquant."""

    def on_connected(self) -> None: ...

    def on_disconnected(self) -> None: ...

    def on_account_status(self, status: Any) -> None: ...

    def on_stock_asset(self, asset: Any) -> None: ...

    def on_stock_order(self, order: Any) -> None: ...

    def on_stock_trade(self, trade: Any) -> None: ...

    def on_stock_position(self, position: Any) -> None: ...

    def on_order_error(self, order_error: Any) -> None: ...

    def on_cancel_error(self, cancel_error: Any) -> None: ...

    def on_order_stock_async_response(self, response: Any) -> None: ...

    def on_cancel_order_stock_async_response(self, response: Any) -> None: ...


_BUILDERS = {
    "order": lambda d: xttype.XtOrder(**d),
    "trade": lambda d: xttype.XtTrade(**d),
    "order_error": lambda d: xttype.XtOrderError(**d),
    "cancel_error": lambda d: xttype.XtCancelError(**d),
    "async_resp": lambda d: xttype.XtOrderResponse(**d),
    "cancel_resp": lambda d: xttype.XtCancelOrderResponse(**d),
}
_METHODS = {
    "order": "on_stock_order",
    "trade": "on_stock_trade",
    "order_error": "on_order_error",
    "cancel_error": "on_cancel_error",
    "async_resp": "on_order_stock_async_response",
    "cancel_resp": "on_cancel_order_stock_async_response",
}


class XtQuantTrader:
    def __init__(self, path: str, session: int, callback: XtQuantTraderCallback | None = None) -> None:
        self.terminal = FakeTerminal(Path(path))
        self.session = int(session)
        self.callback = callback
        self.connected = False
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._cursor = 0
        self._delivered = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._disconnect_delivered = False
        self._last_sig: tuple[int, int, int] | None = None
        self.timeout: int | None = None  # what set_timeout was given

    # ----------------------------------------------------------------------------------- lifecycle

    def register_callback(self, callback: XtQuantTraderCallback) -> None:
        self.callback = callback

    def set_relaxed_response_order_enabled(self, enabled: bool) -> None:
        pass

    def set_timeout(self, timeout: int = 0) -> None:
        """As in xtquant (it goes to the native client); the fake only records it: hung calls stay hung."""
        self.timeout = timeout

    def _hang_point(self, name: str) -> None:
        """A frozen terminal: block while the test has this call (or "*") hung, then go on, late."""
        while True:
            hung = self.terminal.hung_calls()
            if name not in hung and "*" not in hung:
                return
            time.sleep(POLL_S * 4)

    def start(self) -> None:
        register_worker(self.terminal.folder, self)
        self._thread = threading.Thread(target=self._run, name=f"fake-xttrader-{self.session}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def connect(self) -> int:
        self._hang_point("connect")
        with self.terminal.transaction() as state:
            state["counters"]["connects"] += 1
            if state["faults"]["refuse_connect"] > 0:
                state["faults"]["refuse_connect"] -= 1
                return -1
            known = state["sessions"].get(str(self.session))
            if known is not None:
                return -1  # a session id is good for one connection: reconnect with a new one
            state["sessions"][str(self.session)] = {"start": len(state["events"]), "dropped_at": None,
                                                    "accounts": []}
            self._cursor = len(state["events"])
        self.connected = True
        return 0

    def subscribe(self, account: Any) -> int:
        self._hang_point("subscribe")
        with self.terminal.transaction() as state:
            sess = self._live_session(state)
            if sess is None or account.account_id != state["account_id"]:
                return -1
            if account.account_id not in sess["accounts"]:
                sess["accounts"].append(account.account_id)
        return 0

    def unsubscribe(self, account: Any) -> int:
        with self.terminal.transaction() as state:
            sess = self._live_session(state)
            if sess is None:
                return -1
            if account.account_id in sess["accounts"]:
                sess["accounts"].remove(account.account_id)
        return 0

    def _live_session(self, state: dict[str, Any]) -> dict[str, Any] | None:
        sess = state["sessions"].get(str(self.session))
        if not self.connected or sess is None or sess["dropped_at"] is not None:
            return None
        return sess

    def _next_seq(self) -> int:
        with self._seq_lock:
            self._seq += 1
            return self._seq

    # -------------------------------------------------------------------------------------- orders

    def order_stock_async(self, account: Any, stock_code: str, order_type: int, order_volume: int,
                          price_type: int, price: float, strategy_name: str = "", order_remark: str = "") -> int:
        self._hang_point("order_stock_async")
        seq = self._next_seq()
        with self.terminal.transaction() as state:
            state["counters"]["order_stock_async"] += 1
            if self._live_session(state) is None or account.account_id != state["account_id"]:
                return -1
            faults = state["faults"]
            minus_one = faults["minus_one_next"] > 0
            if minus_one:
                faults["minus_one_next"] -= 1
            if faults["refuse_before_counter"] > 0 or faults["blank_response_next"] > 0:
                return self._answer_without_order(state, seq, strategy_name, order_remark)
            price_milli = round(float(price) * 1000)
            volume = int(order_volume)
            problem = None
            if price_type != xc.FIX_PRICE or volume <= 0 or price_milli <= 0:
                problem = "invalid order parameters"
            elif (refused := counter_problem(state, stock_code, order_type, volume, price)) is not None:
                problem = refused
            elif order_type == xc.STOCK_BUY:
                need = value_fen(price_milli, volume)
                if need + fee_fen(state, need) > state["cash_fen"] - frozen_fen(state):
                    if faults["silent_insufficient_funds"]:
                        # The reported pitfall: the rejection never comes back, and the order is nowhere.
                        return -1 if minus_one else seq
                    problem = "insufficient funds (资金不足)"
            elif order_type == xc.STOCK_SELL:
                if volume > sellable(state, stock_code):
                    problem = "insufficient sellable volume (可用股份不足)"
            else:
                problem = f"unsupported order type {order_type}"
            order_id = state["next_order_id"]
            state["next_order_id"] += 1
            order = {
                "order_id": order_id, "sysid": f"{900000 + order_id}", "code": stock_code, "order_type": order_type,
                "volume": volume, "price_milli": price_milli, "price_type": price_type, "remark": order_remark,
                "strategy": strategy_name, "status": xc.ORDER_UNREPORTED, "status_msg": "", "traded_volume": 0,
                "traded_value_fen": 0, "fees_fen": 0, "order_time": state["market"]["time_ms"] // 1000,
                "last_step": -1, "session": self.session, "seq": -1 if minus_one else seq,
            }
            state["orders"].append(order)
            if not minus_one:
                emit(state, "async_resp", {"account_id": state["account_id"], "order_id": order_id,
                                           "strategy_name": strategy_name, "order_remark": order_remark,
                                           "error_msg": "", "seq": seq}, session=self.session)
            order_push(state, order)
            if problem is not None:
                order["status"] = xc.ORDER_JUNK
                order["status_msg"] = problem
                order_push(state, order)
                emit(state, "order_error", {"account_id": state["account_id"], "order_id": order_id,
                                            "error_id": -61, "error_msg": problem, "strategy_name": strategy_name,
                                            "order_remark": order_remark})
            else:
                order["status"] = xc.ORDER_REPORTED
                order_push(state, order)
                match_order(state, order)  # a marketable limit order trades at once
        return -1 if minus_one else seq

    def _answer_without_order(self, state: dict[str, Any], seq: int, strategy_name: str, order_remark: str) -> int:
        """QMT answers the request itself and nothing reaches the counter: either a refusal (order_id -1 with
        its error, then ``on_order_error``) or a blank answer (order_id 0, no message) that says nothing."""
        faults, acc = state["faults"], state["account_id"]
        if faults["refuse_before_counter"] > 0:
            faults["refuse_before_counter"] -= 1
            message = "order refused by the terminal before the counter (委托失败)"
            emit(state, "async_resp", {"account_id": acc, "order_id": -1, "strategy_name": strategy_name,
                                       "order_remark": order_remark, "error_msg": message, "seq": seq},
                 session=self.session)
            emit(state, "order_error", {"account_id": acc, "order_id": -1, "error_id": -1, "error_msg": message,
                                        "strategy_name": strategy_name, "order_remark": order_remark})
        else:
            faults["blank_response_next"] -= 1
            emit(state, "async_resp", {"account_id": acc, "order_id": 0, "strategy_name": strategy_name,
                                       "order_remark": order_remark, "error_msg": "", "seq": seq},
                 session=self.session)
        return seq

    def order_stock(self, account: Any, stock_code: str, order_type: int, order_volume: int, price_type: int,
                    price: float, strategy_name: str = "", order_remark: str = "") -> int:
        self.order_stock_async(account, stock_code, order_type, order_volume, price_type, price, strategy_name,
                               order_remark)
        snap = self.terminal.snapshot()
        mine = [o for o in snap["orders"] if o["session"] == self.session]
        return mine[-1]["order_id"] if mine else -1

    def cancel_order_stock_async(self, account: Any, order_id: int) -> int:
        self._hang_point("cancel_order_stock_async")
        return self._cancel(account, lambda o: o["order_id"] == order_id)

    def cancel_order_stock_sysid_async(self, account: Any, market: Any, sysid: str) -> int:
        self._hang_point("cancel_order_stock_sysid_async")
        return self._cancel(account, lambda o: o["sysid"] == sysid)

    def cancel_order_stock(self, account: Any, order_id: int) -> int:
        return 0 if self.cancel_order_stock_async(account, order_id) > 0 else -1

    def _cancel(self, account: Any, pick: Any) -> int:
        seq = self._next_seq()
        with self.terminal.transaction() as state:
            if self._live_session(state) is None:
                return -1
            order = next((o for o in state["orders"] if pick(o)), None)
            acc = state["account_id"]
            if order is None or order["status"] not in (xc.ORDER_REPORTED, xc.ORDER_PART_SUCC):
                oid = order["order_id"] if order else -1
                sysid = order["sysid"] if order else ""
                emit(state, "cancel_resp", {"account_id": acc, "cancel_result": -1, "order_id": oid,
                                            "order_sysid": sysid, "seq": seq, "error_msg": "order not cancellable"},
                     session=self.session)
                emit(state, "cancel_error", {"account_id": acc, "order_id": oid, "market": 0, "order_sysid": sysid,
                                             "error_id": -1, "error_msg": "order not cancellable"})
                return seq
            emit(state, "cancel_resp", {"account_id": acc, "cancel_result": 0, "order_id": order["order_id"],
                                        "order_sysid": order["sysid"], "seq": seq, "error_msg": ""},
                 session=self.session)
            # Pending first (51 / 52: not cancelled yet), then the exchange's confirmation (54 / 53).
            filled = order["traded_volume"] > 0
            order["status"] = xc.ORDER_PARTSUCC_CANCEL if filled else xc.ORDER_REPORTED_CANCEL
            order_push(state, order)
            order["status"] = xc.ORDER_PART_CANCEL if filled else xc.ORDER_CANCELED
            order["status_msg"] = "cancelled on request"
            order_push(state, order)
        return seq

    # ------------------------------------------------------------------------------------- queries

    def _query(self, account: Any) -> dict[str, Any] | None:
        """The books for a query, or None (failed or empty, as xtquant says) when the fault asks."""
        state = self.terminal.snapshot()  # queries read; only a fault countdown needs the lock
        if self._live_session(state) is None or account.account_id != state["account_id"]:
            return None
        if state["faults"]["query_none"] > 0:
            with self.terminal.transaction() as locked:
                locked["faults"]["query_none"] = max(0, locked["faults"]["query_none"] - 1)
            return None
        return state

    def query_stock_orders(self, account: Any, cancelable_only: bool = False) -> list[Any] | None:
        self._hang_point("query_stock_orders")
        state = self._query(account)
        if state is None:
            return None
        orders = [o for o in state["orders"] if not cancelable_only or o["status"] in (xc.ORDER_REPORTED, xc.ORDER_PART_SUCC)]
        return [xttype.XtOrder(**order_fields(state, o)) for o in orders]

    def query_stock_order(self, account: Any, order_id: int) -> Any | None:
        orders = self.query_stock_orders(account)
        return next((o for o in orders or () if o.order_id == order_id), None)

    def query_stock_trades(self, account: Any) -> list[Any] | None:
        self._hang_point("query_stock_trades")
        state = self._query(account)
        if state is None:
            return None
        return [xttype.XtTrade(**trade_fields(state, t)) for t in state["trades"]]

    def query_stock_positions(self, account: Any) -> list[Any] | None:
        self._hang_point("query_stock_positions")
        state = self._query(account)
        if state is None:
            return None
        out = []
        for code, p in sorted(state["positions"].items()):
            touch = state["market"]["touch"].get(code, {})
            last = float(touch.get("last", 0.0))
            avg = round(p["cost_fen"] / 100 / p["volume"], 4) if p["volume"] else 0.0
            out.append(xttype.XtPosition(
                state["account_id"], code, p["volume"], sellable(state, code), avg, round(last * p["volume"], 2),
                p["can_use"] - sellable(state, code), p["volume"] - p["can_use"], p["can_use"], avg,
                xc.DIRECTION_FLAG_LONG, last, 0.0, "A000000001", code,
            ))
        return out

    def query_stock_position(self, account: Any, stock_code: str) -> Any | None:
        return next((p for p in self.query_stock_positions(account) or () if p.stock_code == stock_code), None)

    def query_stock_asset(self, account: Any) -> Any | None:
        self._hang_point("query_stock_asset")
        state = self._query(account)
        if state is None:
            return None
        frozen = frozen_fen(state)
        market_value = sum(
            round(float(state["market"]["touch"].get(c, {}).get("last", 0.0)) * 1000) * p["volume"] // 10
            for c, p in state["positions"].items()
        )
        return xttype.XtAsset(state["account_id"], (state["cash_fen"] - frozen) / 100, frozen / 100,
                              market_value / 100, (state["cash_fen"] + market_value) / 100,
                              (state["cash_fen"] - frozen) / 100)

    # ---------------------------------------------------------------------------------- push worker

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            if self._stopping.is_set() or not self.connected or self._disconnect_delivered:
                continue
            sig = self.terminal.signature()
            if sig == self._last_sig:
                continue
            self._last_sig = sig
            try:
                state = self.terminal.snapshot()
            except (OSError, ValueError):
                self._last_sig = None  # a rare unlucky read on a slow share: try again
                continue
            self._deliver(state)

    def _deliver(self, state: dict[str, Any]) -> None:
        sess = state["sessions"].get(str(self.session))
        if sess is None:
            return
        end = len(state["events"]) if sess["dropped_at"] is None else sess["dropped_at"]
        batch = [
            e for e in state["events"][self._cursor:end]
            if (e["session"] == self.session) or (e["session"] is None and e["acc"] in sess["accounts"])
        ]
        faults = state["faults"]
        if faults.get("reorder"):
            batch.reverse()
        for event in batch:
            for _ in range(2 if faults.get("duplicate") else 1):
                self._dispatch(event)
        dropped = sess["dropped_at"] is not None
        if dropped and self.callback is not None:
            self.callback.on_disconnected()
        with self._delivered:
            self._cursor = max(self._cursor, end)
            if dropped:
                self.connected = False
                self._disconnect_delivered = True
            self._delivered.notify_all()

    def _dispatch(self, event: dict[str, Any]) -> None:
        if self.callback is None:
            return
        obj = _BUILDERS[event["kind"]](event["data"])
        getattr(self.callback, _METHODS[event["kind"]])(obj)

    def wait_delivered(self, timeout: float = 5.0) -> bool:
        """Test helper: block until every push logged so far for this session was handed to the callback
        (or the session was dropped and ``on_disconnected`` delivered)."""
        snap = self.terminal.snapshot()
        target = len(snap["events"])
        sess = snap["sessions"].get(str(self.session))
        dropped = sess is not None and sess["dropped_at"] is not None
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._delivered:
            while not (self._disconnect_delivered or (not dropped and (self._cursor >= target or not self.connected))):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._delivered.wait(min(left, 0.05))
                self._wake.set()
        return True
