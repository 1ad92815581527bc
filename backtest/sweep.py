"""Parameter sweep over ATR_GRID_FACTOR x GRID_STEP_FLOOR on all cores (multiprocessing)."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os

from backtest.engine import run
from backtest.metrics import run_metrics
from marketdata.bars import Bars
from settings.grid import GridParams

_DATA: dict[str, Bars] = {}
_PARAMS: dict[str, GridParams] = {}
_MODE = "reference"


def _init(data, params, mode):
    global _DATA, _PARAMS, _MODE
    _DATA, _PARAMS, _MODE = data, params, mode


def _one(point: tuple[float, float]) -> dict:
    factor, floor = point
    params = {
        c: p.model_copy(update={"atr_grid_factor": factor, "grid_step_floor": floor})
        for c, p in _PARAMS.items()
    }
    m = run_metrics(run(_DATA, params, _MODE))
    tot = m["total"]
    return {
        "atr_grid_factor": factor,
        "grid_step_floor": floor,
        "alpha": tot["alpha"],
        "trades": tot["trades"],
        "trades_per_year": tot["trades_per_year"],
        "max_drawdown": tot["max_drawdown"],
        "all_layers_open": tot["all_layers_open"],
        "peak_utilization": tot.get("peak_utilization", 0.0),
    }


def sweep(
    data: dict[str, Bars],
    params: dict[str, GridParams],
    factors: list[float],
    floors: list[float],
    mode: str = "reference",
    jobs: int | None = None,
    progress: bool = False,
) -> list[dict]:
    """Every (factor, floor) pair, one backtest each, spread over ``jobs`` processes (default: all cores)."""
    points = list(itertools.product(factors, floors))
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(points) == 1:
        _init(data, params, mode)
        it = map(_one, points)
        results = list(_wrap(it, len(points), progress))
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(jobs, initializer=_init, initargs=(data, params, mode)) as pool:
            results = list(_wrap(pool.imap(_one, points), len(points), progress))
    return results


def _wrap(it, total, progress):
    if not progress:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="sweep", unit="run")
