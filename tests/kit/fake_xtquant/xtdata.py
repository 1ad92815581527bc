"""Fake ``xtquant.xtdata`` over the fake terminal's synthetic market.

Real xtdata talks to the local MiniQMT; this one reads the terminal folder named by ``$FAKE_XTQUANT_DIR``
(or ``set_terminal_dir``). Bars are ``backtest.synth.generate`` minutes; only bars whose end is at or
before the terminal's market time exist, as for a live terminal. As in QMT, ``get_market_data_ex`` returns
nothing for a code that was neither subscribed nor downloaded. Ticks come from the exchange's current
touch. Only the ``1m`` period is served.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from shared_schema.types import ms_to_datetime
from tests.kit.fake_xtquant.terminal import FakeTerminal, china_ts, synth_tape

ENV_DIR = "FAKE_XTQUANT_DIR"

_terminal_dir: Path | None = None
_subscribed: dict[int, tuple[str, str]] = {}
_downloaded: set[tuple[str, str]] = set()
_seq = itertools.count(1)
calls: list[tuple[str, tuple]] = []  # what was asked, for tests


def set_terminal_dir(folder: Path | str | None) -> None:
    global _terminal_dir
    _terminal_dir = Path(folder) if folder else None
    _subscribed.clear()
    _downloaded.clear()
    calls.clear()


def _terminal() -> FakeTerminal:
    folder = _terminal_dir or (Path(os.environ[ENV_DIR]) if os.environ.get(ENV_DIR) else None)
    if folder is None:
        raise RuntimeError(f"fake xtdata: no terminal folder (set ${ENV_DIR} or call set_terminal_dir)")
    return FakeTerminal(folder)


def _hang_point(name: str) -> None:
    """A frozen MiniQMT: block while the terminal has this call (or "*") hung (``FakeTerminal.hang``)."""
    term = _terminal()
    while name in (hung := term.hung_calls()) or "*" in hung:
        time.sleep(0.02)


def _check_period(period: str) -> None:
    if period != "1m":
        raise ValueError(f"fake xtdata serves the 1m period only, not {period!r}")


def subscribe_quote(stock_code: str, period: str = "1d", start_time: str = "", end_time: str = "", count: int = 0,
                    callback: Any = None) -> int:
    calls.append(("subscribe_quote", (stock_code, period, count)))
    seq = next(_seq)
    _subscribed[seq] = (stock_code, period)
    return seq


def unsubscribe_quote(seq: int) -> None:
    _subscribed.pop(seq, None)


def download_history_data(stock_code: str, period: str, start_time: str = "", end_time: str = "",
                          incrementally: Any = None) -> None:
    calls.append(("download_history_data", (stock_code, period, start_time, end_time)))
    _check_period(period)
    _downloaded.add((stock_code, period))


def _parse_bound(text: str | int, end: bool) -> int | None:
    if text in ("", None):
        return None
    if isinstance(text, int):
        return text
    s = str(text)
    if len(s) == 8:
        s += "235959" if end else "000000"
    ts = pd.Timestamp(s).tz_localize("Asia/Shanghai")
    return int(ts.timestamp() * 1000)


def get_market_data_ex(field_list: list[str] | None = None, stock_list: list[str] | None = None, period: str = "1d",
                       start_time: str = "", end_time: str = "", count: int = -1, dividend_type: str = "none",
                       fill_data: bool = True) -> dict[str, pd.DataFrame]:
    _hang_point("get_market_data_ex")
    calls.append(("get_market_data_ex", (tuple(stock_list or ()), period, start_time, end_time, count)))
    _check_period(period)
    snap = _terminal().snapshot()
    market = snap["market"]
    tape = synth_tape(market["synth"])
    now_ms = market["time_ms"] if market["cursor"] >= 0 else tape.times[-1]
    lo, hi = _parse_bound(start_time, False), _parse_bound(end_time, True)
    subscribed = {code for code, p in _subscribed.values() if p == period}
    out: dict[str, pd.DataFrame] = {}
    for code in stock_list or ():
        if code not in tape.bars or (code not in subscribed and (code, period) not in _downloaded):
            out[code] = pd.DataFrame()
            continue
        b = tape.bars[code]
        mask = b.t <= now_ms
        if lo is not None:
            mask &= b.t >= lo
        if hi is not None:
            mask &= b.t <= hi
        idx = [i for i, keep in enumerate(mask.tolist()) if keep]
        if count is not None and count > 0:
            idx = idx[-count:]
        frame = pd.DataFrame({
            "time": b.t[idx].astype("int64"), "open": b.o[idx], "high": b.h[idx], "low": b.l[idx], "close": b.c[idx],
            "volume": b.v[idx], "amount": b.v[idx] * b.c[idx],
            "preClose": [tape.prev_close(code, i) for i in idx],
            "suspendFlag": 0,
        }, index=[china_ts(int(t)) for t in b.t[idx].tolist()])
        out[code] = frame[field_list] if field_list else frame
    return out


def get_full_tick(code_list: list[str]) -> dict[str, dict[str, Any]]:
    _hang_point("get_full_tick")
    calls.append(("get_full_tick", tuple(code_list)))
    snap = _terminal().snapshot()
    market = snap["market"]
    out: dict[str, dict[str, Any]] = {}
    for code in code_list:
        touch = market["touch"].get(code)
        if touch is None:
            continue
        t_ms = market["time_ms"]
        day_open = day_high = day_low = touch["last"]
        volume = touch.get("volume", 0.0)
        if market.get("synth") and code in synth_tape(market["synth"]).bars:
            b = synth_tape(market["synth"]).bars[code]
            day = ms_to_datetime(t_ms).date()
            today = [i for i, t in enumerate(b.t.tolist()) if t <= t_ms and ms_to_datetime(t).date() == day]
            if today:
                day_open = float(b.o[today[0]])
                day_high = float(b.h[today].max())
                day_low = float(b.l[today].min())
                volume = float(b.v[today].sum())
        out[code] = {
            "time": t_ms, "timetag": china_ts(t_ms, "%Y%m%d %H:%M:%S"), "lastPrice": touch["last"],
            "open": day_open, "high": day_high, "low": day_low, "lastClose": touch["prev_close"],
            "amount": volume * touch["last"], "volume": volume, "pvolume": volume * 100, "stockStatus": 0,
            "openInt": 13, "lastSettlementPrice": 0.0,
            "askPrice": [touch["ask"]] + [round(touch["ask"] + 0.001 * k, 3) for k in range(1, 5)],
            "bidPrice": [touch["bid"]] + [round(touch["bid"] - 0.001 * k, 3) for k in range(1, 5)],
            "askVol": [1000] * 5, "bidVol": [1000] * 5, "transactionNum": 0,
        }
    return out
