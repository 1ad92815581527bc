"""The sweep: rows in point order whatever the engine, each row the backtest ``gridbridge backtest`` runs,
streamed with a progress bar; the CLI's CSV and heat map; and the heat map's choice of cells."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from backtest.cli import main, run_backtest
from backtest.engine import run
from backtest.metrics import run_metrics
from backtest.sweep import METRICS, SweepJob, _served, sweep, write_sweep_csv
from backtest.sweep_axes import SweepError, apply_point, parse_axis
from backtest.sweep_heatmap import best_cells, choose_axes, heatmap_figure
from backtest.synth import generate
from marketdata.bars import Bars, write_bars_csv
from settings.config import GridbridgeConfig
from settings.resolve import grid_params_by_code

CODES = ("512890.SH", "159201.SZ")


@pytest.fixture(scope="module")
def data():
    return {code: generate(code, 25, seed) for seed, code in enumerate(CODES, start=3)}


def _job(data, mode="reference", codes=CODES):
    cfg = GridbridgeConfig()
    return SweepJob(data={c: data[c] for c in codes}, params=grid_params_by_code(cfg, codes, mode), mode=mode,
                    config=cfg)  # fmt: skip


AXES = [parse_axis("atr_grid_factor=0.28:0.34:0.02"), parse_axis("cooling=true,false")]


def test_one_process_and_two_give_the_same_table(data, tmp_path):
    one = sweep(_job(data), AXES, jobs=1)
    two = sweep(_job(data), AXES, jobs=2)

    assert one == two
    assert [(r["atr_grid_factor"], r["cooling"]) for r in one] == [
        (f, c) for f in (0.28, 0.30, 0.32, 0.34) for c in (True, False)
    ]
    assert list(one[0]) == ["atr_grid_factor", "cooling", *METRICS]
    assert len({r["alpha"] for r in one}) > 1  # the axes reach the backtest


def test_a_point_is_the_backtest_gridbridge_backtest_runs(data):
    job = _job(data, "realistic", codes=("512890.SH",))
    own = job.params["512890.SH"]

    [row] = sweep(job, [parse_axis(f"atr_grid_factor={own.atr_grid_factor}")], jobs=1)

    single = run_metrics(run_backtest(dict(job.data), "realistic", job.config))["total"]
    assert row["alpha"] == single["alpha"] and row["trades"] == single["trades"]
    assert row["max_drawdown"] == single["max_drawdown"]


def test_rows_stream_to_the_caller_and_the_progress_bar(data, capsys):
    seen: list[int] = []

    rows = sweep(_job(data), AXES, jobs=2, progress=True, on_result=lambda i, row: seen.append(i))

    assert sorted(seen) == list(range(len(rows))) == list(range(8))
    assert "8/8" in capsys.readouterr().err


def test_an_invalid_point_fails_before_anything_runs(data):
    ran: list[int] = []

    with pytest.raises(SweepError, match="penalty_release must not exceed penalty_trigger"):
        sweep(_job(data), [parse_axis("penalty_release=0.8,0.95")], on_result=lambda i, r: ran.append(i))
    assert ran == []


@pytest.mark.parametrize("jobs", [0, -2])
def test_jobs_below_one_are_refused(data, jobs):
    with pytest.raises(ValueError, match="--jobs must be at least 1"):
        sweep(_job(data), AXES, jobs=jobs)


def test_the_scheduler_needs_the_dask_engine(data):
    with pytest.raises(ValueError, match="--scheduler needs --engine dask"):
        sweep(_job(data), AXES, scheduler="tcp://127.0.0.1:8786")


def test_csv_has_one_row_per_point_in_order(data, tmp_path):
    rows = sweep(_job(data), AXES, jobs=1)

    path = write_sweep_csv(rows, tmp_path / "sweep.csv")

    table = list(csv.DictReader(path.open()))
    assert [(r["atr_grid_factor"], r["cooling"]) for r in table][:3] == [("0.28", "True"), ("0.28", "False"),
                                                                        ("0.3", "True")]  # fmt: skip
    assert len(table) == 8 and float(table[5]["alpha"]) == rows[5]["alpha"]


# ------------------------------------------------------------------------------------------- the heat map


ROWS = [
    {"a": 1, "b": 10, "c": "x", "alpha": 5.0, "max_drawdown": 50.0},
    {"a": 1, "b": 10, "c": "y", "alpha": 7.0, "max_drawdown": 70.0},
    {"a": 1, "b": 20, "c": "x", "alpha": 3.0, "max_drawdown": 30.0},
    {"a": 1, "b": 20, "c": "y", "alpha": 3.0, "max_drawdown": 31.0},
    {"a": 2, "b": 10, "c": "x", "alpha": -1.0, "max_drawdown": 10.0},
    {"a": 2, "b": 10, "c": "y", "alpha": -2.0, "max_drawdown": 20.0},
]


def test_each_cell_is_the_point_of_best_alpha_over_the_other_axes():
    cells = best_cells(ROWS, "a", "b")

    assert cells[(1, 10)]["c"] == "y" and cells[(2, 10)]["c"] == "x"
    assert cells[(1, 20)]["max_drawdown"] == 30.0  # a tie keeps the first point
    assert (2, 20) not in cells


def test_heat_map_shows_alpha_and_drawdown_of_the_same_point_and_says_so():
    fig = heatmap_figure(ROWS, ["a", "b", "c"], "a", "b")

    alpha, drawdown = fig.data
    assert [list(r) for r in alpha.z] == [[7.0, -1.0], [3.0, None]]
    assert [list(r) for r in drawdown.z] == [[70.0, 10.0], [30.0, None]]
    assert alpha.x == ("1", "2") and alpha.y == ("10", "20")
    assert "best alpha over c" in fig.layout.title.text


def test_heat_map_of_one_axis_is_one_row():
    fig = heatmap_figure([r for r in ROWS if r["b"] == 10 and r["c"] == "x"], ["a"], "a", None)

    assert [list(r) for r in fig.data[0].z] == [[5.0, -1.0]] and "best alpha" not in fig.layout.title.text


def test_heat_map_axes_default_to_the_first_two_swept_and_must_be_swept():
    assert choose_axes(["a", "b", "c"], None, None) == ("a", "b")
    assert choose_axes(["a", "b", "c"], "c", None) == ("c", "a")
    assert choose_axes(["a", "b", "c"], None, "a") == ("b", "a")
    assert choose_axes(["a"], None, None) == ("a", None)
    with pytest.raises(SweepError, match="'z' is not swept; swept: a, b"):
        choose_axes(["a", "b"], "z", None)
    with pytest.raises(SweepError, match="both a"):
        choose_axes(["a", "b"], "a", "a")
    with pytest.raises(SweepError, match="no axis is left"):
        choose_axes(["a"], None, "a")


# ------------------------------------------------------------------------------------------------ the CLI


@pytest.fixture(scope="module")
def csv_files(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bars")
    paths = []
    for code in CODES:
        write_bars_csv(data[code], folder / f"{code}.csv")
        paths += ["--data", f"{code}={folder / f'{code}.csv'}"]
    return paths


def test_cli_writes_the_csv_and_an_offline_heat_map(csv_files, tmp_path, capsys):
    out = tmp_path / "out"

    code = main(["backtest", "sweep", *csv_files, "--grid", "atr_grid_factor=0.30:0.34:0.02",
                 "--grid", "grid_step_floor=0.0008,0.001", "--grid", "cooling=true,false", "--y", "cooling",
                 "--jobs", "1", "--out", str(out)])  # fmt: skip

    assert code == 0
    table = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(table) == 12 and list(table[0])[:3] == ["atr_grid_factor", "grid_step_floor", "cooling"]
    page = (out / "sweep_heatmap.html").read_text()
    assert 'src="plotly.min.js"' in page and "cdn.plot.ly" not in page
    assert "best alpha over grid_step_floor" in page and (out / "plotly.min.js").stat().st_size > 1_000_000
    assert "12 runs (local); best alpha" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "atr_grid_facter=0.3"], "unknown grid parameter 'atr_grid_facter'; sweepable: "),
        (["--factors", "0.3", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --engine dask"),
        (["--factors", "0.3", "--x", "cooling"], "'cooling' is not swept"),
    ],
)
def test_cli_refuses_a_bad_sweep_with_its_reason(csv_files, tmp_path, extra, message):
    with pytest.raises(SystemExit) as exit_:
        main(["backtest", "sweep", *csv_files, "--jobs", "1", "--out", str(tmp_path), *extra])

    assert message in str(exit_.value.code)
    assert not (tmp_path / "sweep.csv").exists()


def test_points_share_indicators_only_when_their_periods_match(data):
    """One process serves every point: the indicators it keeps per (symbol, periods) give each point exactly
    the fresh backtest of its parameters, and a swept period gets indicators of its own."""
    job = _job(data)
    axes = [parse_axis("atr_period=10,14"), parse_axis("atr_grid_factor=0.28,0.32")]
    rows = sweep(job, axes, jobs=1)
    for row in rows:
        point = (("atr_period", row["atr_period"]), ("atr_grid_factor", row["atr_grid_factor"]))
        fresh = run_metrics(run(dict(job.data), apply_point(job.params, point), "reference"))["total"]
        assert {k: row[k] for k in METRICS} == {k: fresh.get(k, 0.0) for k in METRICS}
    assert len({r["alpha"] for r in rows if r["atr_grid_factor"] == 0.28}) == 2  # the period reaches the run


def _unaligned(a: np.ndarray) -> np.ndarray:
    """``a`` in memory one byte off alignment, as Dask hands a scattered job's arrays to its tasks."""
    view = np.frombuffer(bytearray(a.nbytes + 1), dtype=a.dtype, offset=1, count=a.size)
    view[:] = a
    return view


def test_a_process_copies_unaligned_bars_once_and_the_rows_do_not_change(data):
    code = "512890.SH"
    b = data[code]
    odd = Bars(*(_unaligned(x) for x in (b.t, b.o, b.h, b.l, b.c, b.v)))
    assert not odd.t.flags.aligned and (odd.c == b.c).all()
    job, plain = _job({code: odd}, codes=(code,)), _job(data, codes=(code,))

    served, _ = _served(job)
    assert all(x.flags.aligned for x in (served.data[code].t, served.data[code].c))
    assert _served(job)[0] is served  # once per job, not per point
    assert sweep(job, AXES, jobs=1) == sweep(plain, AXES, jobs=1)
