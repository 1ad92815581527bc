from __future__ import annotations

import csv
import json
from datetime import date

import numpy as np

from backtest.cli import main
from backtest.synth import daily_rollup, daily_stats, generate, generate_conditioned
from marketdata.bars import load_bars


def test_synth_is_deterministic_and_shaped_like_the_market():
    a = generate("512890.SH", 120, seed=4)
    b = generate("512890.SH", 120, seed=4)
    assert np.array_equal(a.c, b.c) and np.array_equal(a.t, b.t)
    assert len(a) == 120 * 240
    ms = (a.t[:240] + 8 * 3_600_000) % 86_400_000 // 60_000
    assert ms[0] == 9 * 60 + 31 and ms[119] == 11 * 60 + 30 and ms[120] == 13 * 60 + 1 and ms[-1] == 15 * 60
    assert np.allclose(np.round(a.c * 1000), a.c * 1000) and (a.h >= np.maximum(a.o, a.c)).all()
    assert (a.l <= np.minimum(a.o, a.c)).all()
    stats = daily_stats(daily_rollup(a))
    assert 0.006 < stats["range"] < 0.02
    assert 0.003 < stats["close_to_close"] < 0.009
    assert 0.0003 < stats["gap"] < 0.003


def test_conditioned_minutes_aggregate_to_the_given_days():
    days = [(date(2026, 1, 5), 1.176, 1.177, 1.168, 1.173), (date(2026, 1, 6), 1.173, 1.185, 1.168, 1.174)]
    bars = generate_conditioned("512890.SH", days, seed=1)
    d = daily_rollup(bars)
    for k, (_, o, h, lo, c) in enumerate(days):
        assert (d["open"][k], d["high"][k], d["low"][k], d["close"][k]) == (o, h, lo, c)


def test_cli_synth_then_backtest_writes_trades_and_metrics(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert (
        main(["data", "synth", "--code", "512890.SH", "--days", "15", "--seed", "28", "--out", str(a)]) == 0
    )
    assert main(["data", "synth", "--code", "159201", "--days", "15", "--seed", "29", "--out", str(b)]) == 0
    assert len(load_bars(a)) == 15 * 240
    out = tmp_path / "run"
    rc = main(["backtest", "--symbol", "both", "--data", f"512890.SH={a}", "--data", f"159201.SZ={b}",
               "--out", str(out), "--report"])  # fmt: skip
    assert rc == 0
    rows = list(csv.reader(open(out / "trades.csv")))
    assert rows[0] == ["time", "code", "side", "price", "shares", "reason"] and len(rows) > 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["symbols"]) == {"512890.SH", "159201.SZ"} and "peak_utilization" in metrics["total"]
    assert (out / "report.html").stat().st_size > 1000
    ref = tmp_path / "ref"
    assert (
        main(
            ["backtest", "--symbol", "512890.SH", "--data", str(a), "--mode", "reference", "--out", str(ref)]
        )
        == 0
    )
    sw = tmp_path / "sw"
    assert main(["backtest", "sweep", "--symbol", "512890.SH", "--data", str(a), "--factors", "0.3,0.32",
                 "--floors", "0.001", "--jobs", "2", "--out", str(sw)]) == 0  # fmt: skip
    assert len(list(csv.reader(open(sw / "sweep.csv")))) == 3


def test_loader_reads_datetime_csv(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("datetime,open,high,low,close,volume\n2024-01-04 09:31:00,1.0,1.001,0.999,1.0,100\n")
    bars = load_bars(p)
    assert bars.t[0] == 1_704_331_860_000 and bars.c[0] == 1.0


def test_loader_reads_qmt_csv_and_parquet_to_the_same_bars(tmp_path):
    from marketdata.bars import write_bars_csv

    bars = generate("512890.SH", 2, 5)
    csv_path = tmp_path / "bars.csv"
    write_bars_csv(bars, csv_path)
    parquet_path = tmp_path / "bars.parquet"
    bars.to_frame().to_parquet(parquet_path)
    from_csv, from_parquet = load_bars(csv_path), load_bars(parquet_path)
    for a, b in ((from_csv, bars), (from_parquet, bars)):
        assert np.array_equal(a.t, b.t) and np.array_equal(a.c, b.c) and np.array_equal(a.h, b.h)
