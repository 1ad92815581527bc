"""``backtest.synth.split_adjusted``: an unadjusted share split in a daily file is found and the earlier rows
are divided by its ratio; ordinary days, big but not split-like moves, are left alone."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from backtest.synth import generate_conditioned, split_adjusted
from marketdata.bars import load_daily

D0 = date(2021, 10, 18)


def _rows(*ohlc):
    return [(D0 + timedelta(days=i), *r) for i, r in enumerate(ohlc)]


def test_a_two_for_one_split_rescales_the_earlier_rows():
    rows = _rows((1.60, 1.65, 1.59, 1.64), (1.64, 1.66, 1.62, 1.639), (0.87, 0.87, 0.791, 0.801), (0.80, 0.81, 0.79, 0.80))
    adjusted, found = split_adjusted(rows)
    assert found == [(D0 + timedelta(days=2), 2)]
    assert adjusted[0][1:] == (0.8, 0.825, 0.795, 0.82)
    assert adjusted[1][1:] == (0.82, 0.83, 0.81, 0.82)  # 1.639 / 2 = 0.8195, to the nearest tick
    assert adjusted[2:] == rows[2:]


def test_ordinary_and_limit_moves_are_left_alone():
    rows = _rows((1.0, 1.01, 0.99, 1.0), (0.9, 0.91, 0.9, 0.9), (0.95, 0.99, 0.95, 0.99), (1.05, 1.09, 1.05, 1.089))
    assert split_adjusted(rows) == (rows, [])
    # a 1.6x gap that is no whole ratio (1.6 is 20 % from 2): not a split
    odd = _rows((1.6, 1.6, 1.6, 1.6), (1.0, 1.0, 1.0, 1.0))
    assert split_adjusted(odd) == (odd, [])


def test_three_for_one_and_two_splits_compound():
    rows = _rows((6.0, 6.0, 6.0, 6.0), (3.0, 3.0, 3.0, 3.0), (1.0, 1.0, 1.0, 1.0))
    adjusted, found = split_adjusted(rows)
    assert [r for _, r in found] == [2, 3]
    assert [r[4] for r in adjusted] == [1.0, 1.0, 1.0]


FISH = Path(__file__).resolve().parents[3] / "shared/data/etf_daily/fish_512890.csv"


@pytest.mark.skipif(not FISH.exists(), reason="the shared daily file is not here")
def test_the_512890_file_has_one_split_and_the_minutes_follow_the_adjusted_rows():
    daily = load_daily(FISH)
    adjusted, found = split_adjusted(daily)
    assert found == [(date(2021, 10, 25), 2)]
    closes = [r[4] for r in adjusted]
    assert max(abs(b / a - 1) for a, b in zip(closes, closes[1:], strict=False)) < 0.11
    i = next(k for k, r in enumerate(daily) if r[0] == date(2021, 10, 21))
    bars = generate_conditioned("512890.SH", adjusted[i - 1 : i + 3], seed=1)
    assert bars.c[239 + 240] == pytest.approx(0.82) and bars.o[2 * 240] == pytest.approx(0.87)


def _biggest_move(closes) -> float:
    return max(abs(y / x - 1) for x, y in zip(closes[:-1], closes[1:], strict=True))


@pytest.mark.skipif(not FISH.exists(), reason="the shared daily file is not here")
def test_data_synth_split_adjust_flag_takes_the_split_out_and_says_so(tmp_path: Path, capsys) -> None:
    from gridbridge.cli import main
    from marketdata.bars import load_bars

    plain, adjusted = tmp_path / "plain.csv", tmp_path / "adjusted.csv"
    common = ["data", "synth", "--code", "512890.SH", "--daily", str(FISH), "--days", "3000", "--seed", "1"]
    assert main([*common, "--out", str(plain)]) == 0
    assert "split-adjusted" not in capsys.readouterr().out
    assert main([*common, "--split-adjust", "--out", str(adjusted)]) == 0
    assert "split-adjusted: 2021-10-25 looks like a 2-for-1 share split" in capsys.readouterr().out
    a, b = load_bars(plain), load_bars(adjusted)
    assert _biggest_move(a.c) > 0.4  # the split, replayed as a real one-minute move
    assert _biggest_move(b.c) < 0.11  # nothing beyond the daily limit once it is taken out
