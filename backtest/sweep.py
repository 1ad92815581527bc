"""Parameter sweep: one backtest per point of a grid of ``GridParams`` values, on local processes or Dask.

``run_point`` is the whole work of one point (pure: the job and the point in, one result row out), so every
engine returns the same rows; ``sweep`` puts them back in point order whatever order they finished in.
The local engine forks a process pool that inherits the bars; the Dask engine is ``backtest.sweep_dask``.
"""

from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backtest.engine import _periods, run
from backtest.fastind import compute_indicators
from backtest.metrics import run_metrics
from backtest.risk import BacktestRisk
from backtest.sweep_axes import Axis, Point, apply_point, combine_axes, grid_points
from mac.grid.indicators import IndicatorPeriods
from mac.grid.risk_policy import risk_policy_from_config
from marketdata.bars import Bars
from settings.config import GridbridgeConfig
from settings.grid import GridParams, Mode
from shared_schema.atomic_io import atomic_write_bytes

Engine = Literal["local", "dask"]
METRICS = (
    "alpha",
    "trades",
    "trades_per_year",
    "max_drawdown",
    "max_drawdown_pct",
    "all_layers_open",
    "peak_utilization",
)
OnResult = Callable[[int, dict], None]  # (point index, row), called as each point's row arrives


@dataclass(frozen=True)
class SweepJob:
    """What every point shares: the bars, each symbol's resolved parameters, the mode and the config (its
    fee model and, in realistic mode, its risk thresholds, as ``gridbridge backtest`` runs them)."""

    data: Mapping[str, Bars]
    params: Mapping[str, GridParams]
    mode: Mode
    config: GridbridgeConfig
    use_risk: bool = True


def run_point(job: SweepJob, point: Point) -> dict:
    """One backtest of ``job`` with the point's values set; the row: the point's values, then ``METRICS``."""
    params = apply_point(job.params, point)
    job, cache = _served(job)
    risk = None
    if job.use_risk and job.mode == "realistic":
        risk = BacktestRisk(config=job.config.risk, policy=risk_policy_from_config(job.config.node))
    indicators = {code: _indicators(cache, code, bars, params[code]) for code, bars in job.data.items()}
    result = run(dict(job.data), params, job.mode, risk=risk, config=job.config, indicators=indicators)
    total = run_metrics(result)["total"]
    row: dict = dict(point)
    row.update({k: total.get(k, 0.0) for k in METRICS})
    return row


# Per process, for the job it serves (a worker serves one sweep's job; a new job starts afresh):
# * the bars in aligned memory. Dask hands a scattered job's arrays to the tasks in the pickle buffers they
#   arrived in, which are not aligned; numpy copies an unaligned array on every ``searchsorted`` (1.5 ms
#   instead of 1.5 us for five years of minutes), which made a point ten times slower on a worker than in
#   the local engine. One aligned copy per process, same values;
# * the indicators per (symbol, periods). They depend on the bars and the indicator periods alone, so the
#   points of a sweep over grid factors, floors, costs or pool settings share them; a point that sweeps a
#   period gets its own.
_PROCESS: dict[str, Any] = {}


def _served(job: SweepJob) -> tuple[SweepJob, dict[tuple[str, IndicatorPeriods], dict[str, np.ndarray]]]:
    if _PROCESS.get("job") is not job:
        _PROCESS.clear()
        data = {code: _aligned(bars) for code, bars in job.data.items()}
        _PROCESS.update(job=job, served=replace(job, data=data), indicators={})
    return _PROCESS["served"], _PROCESS["indicators"]


def _aligned(bars: Bars) -> Bars:
    columns = (bars.t, bars.o, bars.h, bars.l, bars.c, bars.v)
    if all(a.flags.aligned for a in columns):
        return bars
    return Bars(*(np.require(a, requirements=("A", "C")) for a in columns))


def _indicators(cache: dict, code: str, bars: Bars, params: GridParams) -> dict[str, np.ndarray]:
    periods = _periods(params)
    key = (code, periods)
    ind = cache.get(key)
    if ind is None:
        ind = cache[key] = compute_indicators(bars.h, bars.l, bars.c, periods)
    return ind


def sweep(
    job: SweepJob,
    axes: Sequence[Axis],
    engine: Engine = "local",
    jobs: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    on_result: OnResult | None = None,
) -> list[dict]:
    """Every point of ``axes`` (``backtest.sweep_axes``), one backtest each, as rows in point order.

    ``engine="local"``: ``jobs`` processes (default: all cores). ``engine="dask"``: the cluster at
    ``scheduler``, or a LocalCluster of ``jobs`` worker processes on loopback. Every point is validated
    before any runs (``SweepError``). ``on_result(index, row)`` sees each row as it arrives."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1 (got {jobs})")
    if engine not in ("local", "dask"):
        raise ValueError(f"unknown engine {engine!r}")
    if engine == "local" and scheduler is not None:
        raise ValueError("--scheduler needs --engine dask")
    points = grid_points(combine_axes(axes))
    for point in points:
        apply_point(job.params, point)
    bar = _progress_bar(len(points)) if progress else None

    def arrived(index: int, row: dict) -> None:
        if bar is not None:
            bar.update(1)
        if on_result is not None:
            on_result(index, row)

    try:
        if engine == "dask":
            from backtest.sweep_dask import run_on_dask

            rows = run_on_dask(job, points, scheduler, jobs, arrived)
        else:
            rows = _run_local(job, points, jobs, arrived)
    finally:
        if bar is not None:
            bar.close()
    return [rows[i] for i in range(len(points))]


# The pool's workers get the job once, at fork (or pickled once each under spawn), never per point.
_JOB: SweepJob | None = None


def _init_worker(job: SweepJob) -> None:
    global _JOB
    _JOB = job


def _point_in_worker(task: tuple[int, Point]) -> tuple[int, dict]:
    index, point = task
    assert _JOB is not None, "the pool initializer sets the job"
    return index, run_point(_JOB, point)


def _run_local(job: SweepJob, points: list[Point], jobs: int | None, arrived: OnResult) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    jobs = min(jobs or os.cpu_count() or 1, len(points))
    if jobs <= 1:
        for index, point in enumerate(points):
            rows[index] = run_point(job, point)
            arrived(index, rows[index])
        return rows
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(job,)) as pool:
        for index, row in pool.imap_unordered(_point_in_worker, list(enumerate(points))):
            rows[index] = row
            arrived(index, row)
    return rows


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="sweep", unit="point")


def write_sweep_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """One row per point: the swept axes in the order given, then ``METRICS``."""
    path = Path(path)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())  # replaces a link at ``path``, never writes through it
    return path
