from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from backtest.engine import run_reference
from backtest.synth import generate
from settings.grid import default_params
from tests.mac.naive_reference import naive_reference

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_CASES = {
    "512890.SH": ("reference_512890_seed7.csv", 7),
    "159201.SZ": ("reference_159201_seed7.csv", 7),
}
GOLDEN_DAYS = 30


def _engine_trades(code, bars, **overrides):
    res = run_reference(bars, default_params(code, "reference", **overrides)).symbols[code]
    rows = [(t.t, t.side, t.price_milli / 1000, t.shares, t.reason) for t in res.trades]
    return rows, res.state


def _naive(code, bars, float_stop=False, max_loss=15000.0):
    p = default_params(code)
    return naive_reference(
        bars.t.tolist(), bars.h.tolist(), bars.l.tolist(), bars.c.tolist(),
        p.atr_grid_factor, p.grid_step_floor, p.sell_profit_threshold, p.sell_threshold_factor, p.cooling,
        float_stop, max_loss,
    )  # fmt: skip


@pytest.mark.parametrize("code", ["512890.SH", "159201.SZ"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reference_matches_independent_implementation_trade_for_trade(code, seed):
    bars = generate(code, 25, seed=seed)
    rows, state = _engine_trades(code, bars)
    naive_rows, naive_cash, naive_lots = _naive(code, bars)
    assert len(rows) > 10
    assert rows == naive_rows
    assert state.cash == naive_cash
    assert [lot.shares for lot in state.lots] == [x[0] for x in naive_lots]


def test_reference_float_stop_matches_independent_implementation():
    bars = generate("159201.SZ", 40, seed=4)
    rows, state = _engine_trades("159201.SZ", bars, float_stop=True, max_cycle_float_loss=1500.0)
    naive_rows, naive_cash, _ = _naive("159201.SZ", bars, True, 1500.0)
    assert any(r[4] == "FLOAT_STOP" for r in rows)
    assert rows == naive_rows and state.cash == naive_cash


def _golden_rows(code):
    name, seed = GOLDEN_CASES[code]
    bars = generate(code, GOLDEN_DAYS, seed=seed)
    res = run_reference(bars, default_params(code, "reference")).symbols[code]
    return [
        [str(t.t), t.code, t.side, f"{t.price_milli / 1000:.3f}", str(t.shares), t.reason] for t in res.trades
    ], res


@pytest.mark.parametrize("code", sorted(GOLDEN_CASES))
def test_reference_trade_list_is_pinned_by_golden_file(code):
    rows, res = _golden_rows(code)
    with open(GOLDEN / GOLDEN_CASES[code][0], newline="") as fh:
        golden = list(csv.reader(fh))
    assert golden[0] == ["time", "code", "side", "price", "shares", "reason"]
    assert rows == golden[1:]


def test_reference_alpha_is_final_equity():
    code = "512890.SH"
    bars = generate(code, 10, seed=9)
    res = run_reference(bars, default_params(code, "reference")).symbols[code]
    cash = Decimal(0)
    for t in res.trades:
        value = t.price * t.shares
        cash += (value if t.side == "SELL" else -value) - Decimal("0.0001") * value
    assert cash == res.state.cash


if __name__ == "__main__":  # regenerate: python -m tests.backtest.test_reference_mode
    for code, (name, _) in GOLDEN_CASES.items():
        rows, _ = _golden_rows(code)
        with open(GOLDEN / name, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["time", "code", "side", "price", "shares", "reason"])
            w.writerows(rows)
        print(name, len(rows))
