"""The funding tape: deterministic, calibrated (interest, clamp, cap, shortened interval), round-trips, and
real ccxt history drops in."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest

from crypto.carry import tape as tp
from crypto.carry.data_cli import main as data_main


def test_same_seed_same_tape_other_seed_other_tape() -> None:
    a, b, c = tp.synth(days=3, seed=5), tp.synth(days=3, seed=5), tp.synth(days=3, seed=6)
    assert np.array_equal(a.spot_ticks, b.spot_ticks) and np.array_equal(a.funding_rate_e9, b.funding_rate_e9)
    assert not np.array_equal(a.spot_ticks, c.spot_ticks)


def test_calm_settles_every_8_hours_at_the_interest_rate() -> None:
    t = tp.synth(days=10, seed=1, regime="calm")
    assert t.funding_ts_ms.size == 30
    assert set(t.funding_interval_ms.tolist()) == {tp.DEFAULT_INTERVAL_MS}
    assert np.all(t.funding_ts_ms % tp.DEFAULT_INTERVAL_MS == 0)
    assert np.median(t.funding_rate_e9) == 100_000  # 0.01 % in 1e-9 units
    assert t.rate(0) == D("0.0001")


def test_squeeze_hits_the_cap_and_shortens_the_interval_one_level_at_a_time() -> None:
    t = tp.synth(days=30, seed=3, regime="squeeze")
    rates = t.funding_rate_e9
    cap = int(tp.OKX_BTC_CAP * 1e9)
    assert rates.max() == cap
    at_cap = np.flatnonzero(rates >= cap)
    first = at_cap[0]
    assert t.funding_interval_ms[first] == tp.DEFAULT_INTERVAL_MS
    assert t.funding_interval_ms[first + 1] == 4 * tp.HOUR_MS
    assert t.funding_interval_ms[first + 2] == 2 * tp.HOUR_MS
    assert t.funding_interval_ms[first + 3] == 1 * tp.HOUR_MS
    assert set(tp.INTERVAL_LEVELS_MS) <= set(t.funding_interval_ms.tolist())
    # Back inside the cap: the default interval returns.
    after = at_cap[-1] + 3  # (+1 is the last shortened one, +2 runs back to the 8-hour grid)
    assert t.funding_interval_ms[after] == tp.DEFAULT_INTERVAL_MS
    assert np.all(t.funding_ts_ms % tp.HOUR_MS == 0)
    eight = t.funding_interval_ms == tp.DEFAULT_INTERVAL_MS
    assert np.all(t.funding_ts_ms[eight] % tp.DEFAULT_INTERVAL_MS == 0)  # 00/08/16 UTC


def test_crash_tape_perp_rises_40_percent_in_a_day() -> None:
    t = tp.synth(days=20, seed=2, regime="crash")
    mark = t.mark_f()
    rise = np.max(mark[1440:] / mark[:-1440]) - 1
    assert 0.38 < rise < 0.45


def test_negative_regime_has_negative_spells() -> None:
    t = tp.synth(days=120, seed=4, regime="negative")
    assert (t.funding_rate_e9 < 0).sum() > 30


def test_save_load_round_trip(tmp_path: Path) -> None:
    t = tp.synth(days=2, seed=9, regime="mixed")
    path = tp.save(t, tmp_path / "t")
    assert path.suffix == ".npz"
    back = tp.load(path)
    assert np.array_equal(back.mark_ticks, t.mark_ticks) and back.meta == t.meta


def test_bad_files_rejected_with_codes(tmp_path: Path) -> None:
    with pytest.raises(tp.TapeError) as e:
        tp.load(tmp_path / "none.npz")
    assert e.value.code == "TAPE_NOT_FOUND"
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(tp.TapeError) as e:
        tp.load(tmp_path / "junk.npz")
    assert e.value.code == "TAPE_UNREADABLE"
    with pytest.raises(tp.TapeError) as e:
        tp.synth(regime="moon")
    assert e.value.code == "UNKNOWN_REGIME"


def test_ccxt_history_loader_and_drop_in(tmp_path: Path) -> None:
    start = tp.DEFAULT_START_MS
    rows = [{"info": {}, "symbol": "BTC/USDT:USDT", "fundingRate": 0.000123 * (i % 3 - 1),
             "timestamp": start + (i + 1) * tp.DEFAULT_INTERVAL_MS, "datetime": ""} for i in range(9)]
    hist = tmp_path / "h.json"
    hist.write_text(json.dumps(rows[4:] + rows[:5]))  # pages out of order, one duplicate
    ts, rates = tp.load_ccxt_funding_history(hist)
    assert ts.size == 9 and np.all(np.diff(ts) > 0) and rates[0] == -123_000
    out = tmp_path / "real.npz"
    assert data_main(["synth-funding", "--days", "3", "--seed", "1", "--out", str(out),
                      "--funding-history", str(hist)]) == 0
    t = tp.load(out)
    assert t.funding_ts_ms.size == 9 and t.rate(0) == D("-0.000123")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"timestamp": 1}]))
    with pytest.raises(tp.TapeError) as e:
        tp.load_ccxt_funding_history(bad)
    assert e.value.code == "HISTORY_ROW"
