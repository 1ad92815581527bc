"""The fake MiniQMT terminal: one folder that every fake ``XtQuantTrader`` and ``xtdata`` talks to.

Design (the simplest one that stays faithful across processes): the terminal's books live in
``terminal.json`` in a folder (the ``userdata_mini`` path the trader is built with). Every API call is a
transaction under ``terminal.lock`` (filelock): load, change, write atomically. Nothing runs in the
background of the terminal itself; the market moves only when the test (the "exchange") calls
``FakeTerminal.set_touch``/``replay_step``, and matching happens inside that transaction, so a run is
deterministic given the calls. Pushes are appended to an event log in the same file; each trader session
has a worker thread that delivers the log entries meant for it to its registered callback, asynchronously,
as xtquant's own worker thread does. A session that connects later does not get earlier pushes (as in QMT:
that is why a reconnect must re-query).

Fault knobs (``set_faults``) reproduce what users of QMT bridges report: missing callbacks, duplicated and
reordered pushes, a disconnect in the middle of a burst, ``None`` from queries, ``order_stock_async``
returning -1 while the order is live, an insufficient-funds rejection with no callback at all, refused
reconnects, and partial fills (limited liquidity per market step). ``hang`` makes named trader calls
block (a dead or frozen MiniQMT: the real library's sync calls wait on a future with no timeout) until
``release``; a released call then completes late, as a request that reached the terminal would.

The counter's order checks (``counter_problem``) refuse what a real counter refuses: a price off the
0.001 tick, a BUY that is not whole lots of 100, an order outside the accepting hours (09:15-11:30,
13:00-15:00 on weekdays, China time) or outside the daily limit (previous close +/-10%, half up to the
tick). A refused order is junk: status 57 with the message, an ``on_order_error`` push, as the counter does.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock

from shared_schema.types import CST, ms_to_datetime
from tests.kit.fake_xtquant import xtconstant as xc

STATE_FILE = "terminal.json"
LOCK_FILE = "terminal.lock"
HANG_FILE = "hang.json"  # trader method names that block until released; "*" = every call
DEFAULT_ACCOUNT = "FAKE001"

OPEN_STATUSES = (xc.ORDER_UNREPORTED, xc.ORDER_WAIT_REPORTING, xc.ORDER_REPORTED, xc.ORDER_PART_SUCC,
                 xc.ORDER_REPORTED_CANCEL, xc.ORDER_PARTSUCC_CANCEL)
FINAL_STATUSES = (xc.ORDER_PART_CANCEL, xc.ORDER_CANCELED, xc.ORDER_SUCCEEDED, xc.ORDER_JUNK)

DEFAULT_FAULTS: dict[str, Any] = {
    "silent_remarks": [],  # no push at all for these remarks (orders still show in queries)
    "duplicate": False,  # every push delivered twice
    "reorder": False,  # each delivery batch delivered newest first
    "disconnect_after_pushes": None,  # drop every session after this many more pushes
    "query_none": 0,  # the next N queries return None
    "minus_one_next": 0,  # the next N order_stock_async return -1 although the order goes live
    "silent_insufficient_funds": False,  # a BUY without funds vanishes: no push, not in queries
    "refuse_connect": 0,  # the next N connect() calls return -1
    "liquidity": None,  # max shares one order fills per market step (partial fills)
    "refuse_before_counter": 0,  # the next N orders: QMT refuses them itself (async response order_id -1 + error)
    "blank_response_next": 0,  # the next N orders: async response with order_id 0, no message, nothing live
}

# Local workers per folder, woken at once after a transaction in this process (other processes poll).
_LOCAL_WORKERS: dict[str, weakref.WeakSet] = {}
_LOCAL_LOCK = threading.Lock()


def register_worker(folder: Path, worker: Any) -> None:
    with _LOCAL_LOCK:
        _LOCAL_WORKERS.setdefault(str(Path(folder).resolve()), weakref.WeakSet()).add(worker)


def wake_workers(folder: Path) -> None:
    with _LOCAL_LOCK:
        workers = list(_LOCAL_WORKERS.get(str(Path(folder).resolve()), ()))
    for worker in workers:
        worker.wake()


def _fen(yuan: Decimal) -> int:
    return int(yuan.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)


def _value_fen(price_milli: int, shares: int) -> int:
    # price in thousandths of a yuan x shares = thousandths; fen = thousandths / 10, half up
    return (price_milli * shares + 5) // 10


@dataclass(frozen=True)
class Touch:
    bid: float
    ask: float
    last: float
    prev_close: float
    volume: float = 0.0


class FakeTerminal:
    """The books of one simulated QMT terminal in ``folder``, plus the exchange's controls for tests."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STATE_FILE
        self._lock = FileLock(str(self.folder / LOCK_FILE))

    # ------------------------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        folder: Path,
        cash: Decimal | str = "1000000",
        positions: dict[str, int] | None = None,
        account_id: str = DEFAULT_ACCOUNT,
        commission_rate: str = "0.0001",
        commission_min: str = "0",
        synth: dict[str, Any] | None = None,
    ) -> FakeTerminal:
        """A fresh terminal: cash, base positions (sellable today), optional synthetic market to replay.

        ``synth`` = ``{"codes": [...], "days": n, "seed": s, "start": "YYYY-MM-DD"}`` makes ``replay_step``
        walk ``backtest.synth.generate`` bars and lets the fake ``xtdata`` serve them."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "account_id": account_id,
            "config": {"commission_rate": str(commission_rate), "commission_min": str(commission_min)},
            "cash_fen": _fen(Decimal(str(cash))),
            "positions": {c: {"volume": v, "can_use": v, "cost_fen": 0} for c, v in (positions or {}).items()},
            "orders": [],
            "trades": [],
            "events": [],
            "sessions": {},
            "next_order_id": 1,
            "next_trade_id": 1,
            "market": {"time_ms": 0, "step": 0, "day": "", "touch": {}, "synth": synth, "cursor": -1},
            "faults": dict(DEFAULT_FAULTS),
            "counters": {"order_stock_async": 0, "connects": 0},
        }
        term = cls(folder)
        with term._lock:
            term._write(state)
        return term

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_bytes())

    def _write(self, state: dict[str, Any]) -> None:
        # Atomic replace without fsync: readers (other processes' workers) never see half a file.
        tmp = self.path.with_name(f".tmp-{STATE_FILE}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(json.dumps(state, separators=(",", ":")).encode())
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        """Load the books under the terminal lock and write them back (always) when the block ends."""
        with self._lock:
            state = self._read()
            yield state
            self._write(state)
        wake_workers(self.folder)

    def snapshot(self) -> dict[str, Any]:
        """A consistent read without the lock (the file is replaced atomically)."""
        return self._read()

    def signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    # ---------------------------------------------------------------------------------- test controls

    def set_faults(self, **faults: Any) -> None:
        unknown = set(faults) - set(DEFAULT_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault knobs {sorted(unknown)}")
        with self.transaction() as state:
            state["faults"].update(faults)

    def hang(self, *calls: str) -> None:
        """Every trader (in any process) blocks in these calls (method names, or "*") until ``release``.

        Kept in its own small file, outside the books and their lock, so a hung call holds nothing."""
        tmp = self.folder / f".tmp-{HANG_FILE}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps(sorted(set(calls))))
        os.replace(tmp, self.folder / HANG_FILE)

    def release(self) -> None:
        """The terminal answers again: hung calls go on (late) and new calls no longer block."""
        with contextlib.suppress(FileNotFoundError):
            (self.folder / HANG_FILE).unlink()

    def hung_calls(self) -> frozenset[str]:
        try:
            return frozenset(json.loads((self.folder / HANG_FILE).read_text()))
        except (FileNotFoundError, ValueError):
            return frozenset()

    def drop_connections(self) -> None:
        """The terminal restarts or the link breaks: every live session gets ``on_disconnected``."""
        with self.transaction() as state:
            _drop_all(state)

    def set_touch(self, code: str, bid: float, ask: float, when: datetime, last: float | None = None,
                  prev_close: float | None = None, volume: float = 0.0) -> None:
        """The exchange's best bid/ask for ``code`` at ``when``; open orders meet it once."""
        with self.transaction() as state:
            self._set_touches(state, {code: Touch(bid, ask, last or ask, prev_close or last or ask, volume)}, when)

    def replay_step(self) -> datetime | None:
        """Advance the synthetic market one minute bar (every configured code); None at the end."""
        with self.transaction() as state:
            market = state["market"]
            tape = synth_tape(market["synth"])
            nxt = market["cursor"] + 1
            if nxt >= len(tape.times):
                return None
            market["cursor"] = nxt
            t_ms = tape.times[nxt]
            touches = {code: tape.touch_at(code, t_ms) for code in tape.bars}
            when = ms_to_datetime(t_ms)
            self._set_touches(state, {c: t for c, t in touches.items() if t is not None}, when)
            return when

    def _set_touches(self, state: dict[str, Any], touches: dict[str, Touch], when: datetime) -> None:
        market = state["market"]
        day = when.date().isoformat()
        if market["day"] and market["day"] != day:
            _roll_day(state)
        market["day"] = day
        market["time_ms"] = int(when.timestamp() * 1000)
        market["step"] += 1
        for code, t in touches.items():
            market["touch"][code] = {"bid": t.bid, "ask": t.ask, "last": t.last, "prev_close": t.prev_close,
                                     "volume": t.volume}
        for order in state["orders"]:
            if order["code"] in touches and order["status"] in OPEN_STATUSES:
                _match(state, order)

    # --------------------------------------------------------------------------------- truth for tests

    def orders(self) -> list[dict[str, Any]]:
        return self.snapshot()["orders"]

    def trades(self) -> list[dict[str, Any]]:
        return self.snapshot()["trades"]

    def orders_by_remark(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for o in self.orders():
            out.setdefault(o["remark"], []).append(o)
        return out

    def filled_value_fen(self, remark: str) -> int:
        return sum(t["amount_fen"] for t in self.trades() if t["remark"] == remark)

    def cash_out_fen(self, remark: str) -> int:
        """What a BUY took from the account: value plus commission (the vault's ``used`` for its lot)."""
        return sum(t["amount_fen"] + t["commission_fen"] for t in self.trades() if t["remark"] == remark)

    def sessions(self) -> dict[str, Any]:
        return self.snapshot()["sessions"]

    def market_time(self) -> datetime | None:
        t = self.snapshot()["market"]["time_ms"]
        return ms_to_datetime(t) if t else None


# ------------------------------------------------------------------------------------- book keeping


def _drop_all(state: dict[str, Any]) -> None:
    at = len(state["events"])
    for sess in state["sessions"].values():
        if sess["dropped_at"] is None:
            sess["dropped_at"] = at


def emit(state: dict[str, Any], kind: str, data: dict[str, Any], session: int | None = None) -> None:
    """Append one push to the log, unless its remark is configured silent (a missing callback)."""
    faults = state["faults"]
    if data.get("order_remark") and data["order_remark"] in faults["silent_remarks"]:
        return
    state["events"].append({"kind": kind, "acc": state["account_id"], "session": session, "data": data})
    left = faults.get("disconnect_after_pushes")
    if left is not None:
        left -= 1
        faults["disconnect_after_pushes"] = left if left > 0 else None
        if left <= 0:
            _drop_all(state)


def order_push(state: dict[str, Any], order: dict[str, Any]) -> None:
    emit(state, "order", order_fields(state, order))


def order_fields(state: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``xttype.XtOrder`` for one order."""
    avg = round(o["traded_value_fen"] / 100 / o["traded_volume"], 4) if o["traded_volume"] else 0.0
    return {
        "account_id": state["account_id"], "stock_code": o["code"], "order_id": o["order_id"],
        "order_sysid": o["sysid"], "order_time": o["order_time"], "order_type": o["order_type"],
        "order_volume": o["volume"], "price_type": o["price_type"], "price": o["price_milli"] / 1000,
        "traded_volume": o["traded_volume"], "traded_price": avg, "order_status": o["status"],
        "status_msg": o["status_msg"], "strategy_name": o["strategy"], "order_remark": o["remark"],
        "direction": xc.DIRECTION_FLAG_LONG, "offset_flag": o["order_type"], "secu_account": "A000000001",
        "instrument_name": o["code"],
    }


def trade_fields(state: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": state["account_id"], "stock_code": t["code"], "order_type": t["order_type"],
        "traded_id": t["traded_id"], "traded_time": t["time"], "traded_price": t["price_milli"] / 1000,
        "traded_volume": t["volume"], "traded_amount": t["amount_fen"] / 100, "order_id": t["order_id"],
        "order_sysid": t["sysid"], "strategy_name": t["strategy"], "order_remark": t["remark"],
        "direction": xc.DIRECTION_FLAG_LONG, "offset_flag": t["order_type"], "commission": t["commission_fen"] / 100,
        "secu_account": "A000000001", "instrument_name": t["code"],
    }


def fee_fen(state: dict[str, Any], value_fen: int) -> int:
    cfg = state["config"]
    fee = (Decimal(value_fen) * Decimal(cfg["commission_rate"])).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(int(fee), _fen(Decimal(cfg["commission_min"])))


def frozen_fen(state: dict[str, Any]) -> int:
    total = 0
    for o in state["orders"]:
        if o["status"] in OPEN_STATUSES and o["order_type"] == xc.STOCK_BUY:
            value = _value_fen(o["price_milli"], o["volume"] - o["traded_volume"])
            total += value + fee_fen(state, value)
    return total


def sellable(state: dict[str, Any], code: str) -> int:
    pos = state["positions"].get(code)
    if pos is None:
        return 0
    reserved = sum(o["volume"] - o["traded_volume"] for o in state["orders"]
                   if o["code"] == code and o["order_type"] == xc.STOCK_SELL and o["status"] in OPEN_STATUSES)
    return max(0, pos["can_use"] - reserved)


# The hours a counter takes orders (China time, weekdays): the opening call auction and the two sessions.
ACCEPTING_HOURS = ((time(9, 15), time(11, 30)), (time(13, 0), time(15, 0)))
LOT = 100
LIMIT_RATIO = Decimal("0.10")


def counter_problem(state: dict[str, Any], stock_code: str, order_type: int, volume: int, price: float) -> str | None:
    """What a real counter says when it refuses the order on market rules, or None when they pass.

    Messages follow the counters' own wording (English, with the Chinese a QMT user sees)."""
    milli = Decimal(str(price)) * 1000
    if milli != milli.to_integral_value():
        return f"price {price} is not on the 0.001 tick (委托价格不符合最小价格变动单位)"
    if order_type == xc.STOCK_BUY and volume % LOT:
        return f"buy volume {volume} is not a multiple of {LOT} (买入数量必须为{LOT}的整数倍)"
    t_ms = state["market"]["time_ms"]
    if t_ms:  # before the first touch the fake has no clock: no hours to check
        local = ms_to_datetime(t_ms).astimezone(CST)
        now = local.time()
        if local.weekday() >= 5 or not any(start <= now < end for start, end in ACCEPTING_HOURS):
            return f"{local:%a %H:%M:%S} is outside the hours orders are taken (当前时间不允许委托)"
    touch = state["market"]["touch"].get(stock_code)
    if touch and touch.get("prev_close"):
        low, high = limit_prices(touch["prev_close"])
        if not low <= Decimal(str(price)) <= high:
            return f"price {price} is outside today's limits [{low}, {high}] (委托价格超出涨跌停价格)"
    return None


def limit_prices(prev_close: float) -> tuple[Decimal, Decimal]:
    """The exchange's daily limits: previous close -/+ 10%, each rounded half up to the 0.001 tick."""
    prev = Decimal(str(prev_close))
    tick = Decimal("0.001")
    return ((prev * (1 - LIMIT_RATIO)).quantize(tick, rounding=ROUND_HALF_UP),
            (prev * (1 + LIMIT_RATIO)).quantize(tick, rounding=ROUND_HALF_UP))


def _match(state: dict[str, Any], order: dict[str, Any]) -> None:
    """One meeting of an open order with the current touch: a BUY fills when ask <= limit, a SELL when
    bid >= limit, at the touch, up to the configured liquidity per step."""
    market = state["market"]
    touch = market["touch"].get(order["code"])
    if touch is None or order["last_step"] >= market["step"] or order["status"] not in (
        xc.ORDER_REPORTED, xc.ORDER_PART_SUCC
    ):
        return
    order["last_step"] = market["step"]
    buy = order["order_type"] == xc.STOCK_BUY
    px = touch["ask"] if buy else touch["bid"]
    px_milli = round(px * 1000)
    if px <= 0 or (buy and px_milli > order["price_milli"]) or (not buy and px_milli < order["price_milli"]):
        return
    qty = order["volume"] - order["traded_volume"]
    liquidity = state["faults"].get("liquidity")
    if liquidity:
        qty = min(qty, int(liquidity))
    pos = state["positions"].setdefault(order["code"], {"volume": 0, "can_use": 0, "cost_fen": 0})
    if not buy:
        qty = min(qty, pos["volume"])
    if qty <= 0:
        return
    value = _value_fen(px_milli, qty)
    fee = fee_fen(state, value)
    if buy:
        state["cash_fen"] -= value + fee
        pos["volume"] += qty  # bought today: not sellable before tomorrow (T+1)
        pos["cost_fen"] += value + fee
    else:
        cost = pos["cost_fen"] * qty // pos["volume"] if pos["volume"] else 0
        state["cash_fen"] += value - fee
        pos["volume"] -= qty
        pos["can_use"] -= qty
        pos["cost_fen"] -= cost
    order["traded_volume"] += qty
    order["traded_value_fen"] += value
    order["fees_fen"] += fee
    trade = {
        "traded_id": f"T{state['next_trade_id']:08d}", "order_id": order["order_id"], "sysid": order["sysid"],
        "code": order["code"], "order_type": order["order_type"], "volume": qty, "price_milli": px_milli,
        "amount_fen": value, "commission_fen": fee, "time": market["time_ms"] // 1000, "remark": order["remark"],
        "strategy": order["strategy"],
    }
    state["next_trade_id"] += 1
    state["trades"].append(trade)
    order["status"] = xc.ORDER_SUCCEEDED if order["traded_volume"] >= order["volume"] else xc.ORDER_PART_SUCC
    emit(state, "trade", trade_fields(state, trade))
    order_push(state, order)


def _roll_day(state: dict[str, Any]) -> None:
    """The close: the exchange cancels what is still open; yesterday's buys become sellable (T+1)."""
    for order in state["orders"]:
        if order["status"] in OPEN_STATUSES:
            order["status"] = xc.ORDER_PART_CANCEL if order["traded_volume"] else xc.ORDER_CANCELED
            order["status_msg"] = "cancelled at the close"
            order_push(state, order)
    for pos in state["positions"].values():
        pos["can_use"] = pos["volume"]


# ---------------------------------------------------------------------------------- synthetic market


@dataclass
class SynthTape:
    bars: dict[str, Any]  # code -> marketdata.bars.Bars
    times: list[int]
    index: dict[str, dict[int, int]]

    def touch_at(self, code: str, t_ms: int) -> Touch | None:
        i = self.index[code].get(t_ms)
        if i is None:
            return None
        b = self.bars[code]
        o, c = float(b.o[i]), float(b.c[i])
        # As the paper producer does: up bars last traded at the ask, down bars at the bid.
        ask, bid = (c, round(c - 0.001, 3)) if c >= o else (round(c + 0.001, 3), c)
        return Touch(bid=bid, ask=ask, last=c, prev_close=self.prev_close(code, i), volume=float(b.v[i]))

    def prev_close(self, code: str, i: int) -> float:
        b = self.bars[code]
        day = ms_to_datetime(int(b.t[i])).date()
        j = i
        while j >= 0 and ms_to_datetime(int(b.t[j])).date() == day:
            j -= 1
        return float(b.c[j]) if j >= 0 else float(b.o[0])


_TAPES: dict[str, SynthTape] = {}


def synth_tape(synth: dict[str, Any] | None) -> SynthTape:
    """The generated bars of a terminal's configured market (cached per process)."""
    if not synth:
        raise ValueError("this fake terminal has no synthetic market (create it with synth=...)")
    key = json.dumps(synth, sort_keys=True)
    tape = _TAPES.get(key)
    if tape is None:
        from backtest.synth import generate

        start = date.fromisoformat(synth.get("start", "2026-01-05"))
        bars = {code: generate(code, int(synth["days"]), int(synth["seed"]) + n, start=start)
                for n, code in enumerate(synth["codes"])}
        times = sorted({int(t) for b in bars.values() for t in b.t.tolist()})
        index = {code: {int(t): i for i, t in enumerate(b.t.tolist())} for code, b in bars.items()}
        tape = _TAPES[key] = SynthTape(bars, times, index)
    return tape


def china_ts(t_ms: int, fmt: str = "%Y%m%d%H%M%S") -> str:
    return datetime.fromtimestamp(t_ms / 1000, tz=CST).strftime(fmt)
