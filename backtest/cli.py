"""``gridbridge backtest ...`` and ``gridbridge data synth ...``: ``register(subparsers)`` adds them.

    backtest --symbol CODE|both --data CSV | --data CODE=CSV ... [--mode reference|realistic]
             [--config JSON] --out DIR [--report] [--progress] [--no-risk]
    backtest sweep --symbol CODE|both --data ... --out DIR [--grid NAME=START:STOP:STEP|NAME=V1,V2 ...]
             [--factors 0.28,0.32] [--floors 0.0008,0.001] [--engine local|dask] [--scheduler ADDRESS]
             [--jobs N] [--x NAME] [--y NAME]
    data synth --code CODE --days N --seed S --out CSV [--daily CSV [--split-adjust]]

``--config`` is a whole gridbridge config file, or a plain JSON object of grid overrides (the shape of its
``grid`` section: top-level keys apply to every symbol, a symbol code key (``"512890.SH": {...}``) to that
symbol only). The parameters are resolved as the node resolves them (``settings.resolve.grid_params``: the
tuned defaults, the ``vault`` section, then the ``grid`` overrides), so the backtest's vault runs on the
config's physical pool; a whole file also gives the risk thresholds (``risk``), the DEGRADED policy
(``node``), the gate (``gate``) and the fee model (``executor``).

Realistic mode runs the account risk machine (``--no-risk`` turns it off) and writes ``audit.jsonl`` (the
events the executor would write) and ``gate.json`` (the ETF gate thresholds and the data's holidays), so a
replay regression is

    gridbridge gate --audit DIR/audit.jsonl --gate-config DIR/gate.json --stage run --run-mode backtest \
        --from T0 --to T1
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from backtest.engine import RunResult, run
from backtest.metrics import run_metrics
from marketdata.bars import Bars, load_bars
from settings.config import ConfigError, GridbridgeConfig, load_config
from settings.grid import GridParams, Mode
from settings.resolve import grid_params_by_code

if TYPE_CHECKING:
    from backtest.risk import BacktestRisk

SYMBOLS = ("512890.SH", "159201.SZ")
_ALIASES = {"512890": "512890.SH", "159201": "159201.SZ"}


def _code(text: str) -> str:
    return _ALIASES.get(text, text)


def _symbols(arg: str) -> list[str]:
    return list(SYMBOLS) if arg == "both" else [_code(s) for s in arg.split(",")]


def _data_paths(codes: list[str], items: list[str]) -> dict[str, str]:
    paths: dict[str, str] = {}
    plain = [i for i in items if "=" not in i]
    for item in items:
        if "=" in item:
            code, path = item.split("=", 1)
            paths[_code(code)] = path
    if plain:
        if len(plain) != 1 or len(codes) != 1:
            raise SystemExit("--data CSV without CODE= works for one symbol; use --data CODE=CSV per symbol")
        paths[codes[0]] = plain[0]
    missing = [c for c in codes if c not in paths]
    if missing:
        raise SystemExit(f"no --data for {missing}")
    return {c: paths[c] for c in codes}


def load_run_config(path: str | None) -> GridbridgeConfig:
    """The config of ``--config``: a whole gridbridge config file (it names one of the config's sections),
    a plain file of grid overrides (read as the ``grid`` section of the default config), or the defaults.
    Raises ``ConfigError``."""
    if path is None:
        return GridbridgeConfig()
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} is not a JSON object")
    if set(raw) & set(GridbridgeConfig.model_fields):  # no grid parameter is named like a section
        return load_config(Path(path))
    try:
        return GridbridgeConfig(grid=raw)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise ConfigError(f"config {path} is invalid: {exc}") from exc


def load_risk(cfg: GridbridgeConfig) -> BacktestRisk:
    """Risk thresholds (``risk``) and the grid's DEGRADED policy (``node``) of a gridbridge config."""
    from backtest.risk import BacktestRisk  # only realistic runs load the risk machine
    from mac.grid.risk_policy import risk_policy_from_config

    return BacktestRisk(config=cfg.risk, policy=risk_policy_from_config(cfg.node))


def run_backtest(
    data: dict[str, Bars], mode: Mode, cfg: GridbridgeConfig, use_risk: bool = True, progress: bool = False
) -> RunResult:
    """One backtest of ``data`` under ``cfg``: every symbol's parameters resolved from it (vault included),
    its fee model, and in realistic mode its account risk machine unless ``use_risk`` is off."""
    params = grid_params_by_code(cfg, list(data), mode)
    risk = load_risk(cfg) if use_risk and mode == "realistic" else None
    return run(data, params, mode, progress=progress, risk=risk, config=cfg)


def _load(args) -> tuple[dict[str, Bars], GridbridgeConfig]:
    codes = _symbols(args.symbol)
    data = {c: load_bars(p) for c, p in _data_paths(codes, args.data).items()}
    try:
        return data, load_run_config(args.config)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc


def write_trades(result, path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["time", "code", "side", "price", "shares", "reason"])
        for t in result.trades:
            w.writerow([t.t, t.code, t.side, f"{t.price_milli / 1000:.3f}", t.shares, t.reason])


def cmd_backtest(args) -> int:
    if getattr(args, "backtest_cmd", None) == "sweep":
        return cmd_sweep(args)
    if not args.data or not args.out:
        raise SystemExit("backtest needs --data and --out")
    data, gcfg = _load(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = run_backtest(data, args.mode, gcfg, use_risk=not args.no_risk, progress=args.progress)
    elapsed = time.perf_counter() - t0
    metrics = run_metrics(result)
    metrics["run_seconds"] = elapsed
    metrics["bars"] = sum(len(b) for b in data.values())
    write_trades(result, out / "trades.csv")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    if result.risk is not None and result.risk.audit is not None:
        from backtest.risk import replay_gate_config

        times = np.concatenate([b.t for b in data.values()])
        write_audit(result, out, replay_gate_config(gcfg.gate, times))
    if args.report:
        from backtest.report import write_report

        write_report(result, out / "report.html", metrics)
    tot = metrics["total"]
    print(
        f"{args.mode}: {metrics['bars']} bars in {elapsed:.2f}s, trades {tot['trades']}, alpha {tot['alpha']:.2f}"
    )
    if "risk" in metrics:
        r = metrics["risk"]
        print(f"risk: final {r['final_state']}, {r['transitions']} transitions; "
              f"gate: gridbridge gate --audit {out / 'audit.jsonl'} --gate-config {out / 'gate.json'} "
              f"--stage run --run-mode backtest --from {r['period_from']} --to {r['period_to']}")  # fmt: skip
    return 0


def write_audit(result, out: Path, gate) -> None:
    """``audit.jsonl`` (what the executor would have written) and ``gate.json`` (the ETF gate config with
    the replay's holidays, ``backtest.risk.replay_gate_config``)."""
    from core.audit import AuditWriter

    path = out / "audit.jsonl"
    path.unlink(missing_ok=True)
    with AuditWriter(path, fsync=False) as writer:
        writer.extend(result.risk.audit)
    (out / "gate.json").write_text(gate.model_dump_json(indent=2))


def cmd_sweep(args) -> int:
    from backtest.sweep import SweepJob, sweep, write_sweep_csv
    from backtest.sweep_axes import SweepError, axes_from_options
    from backtest.sweep_heatmap import choose_axes, write_heatmap

    data, gcfg = _load(args)
    params: dict[str, GridParams] = grid_params_by_code(gcfg, list(data), args.mode)
    try:
        axes = axes_from_options(args.grid, args.factors, args.floors)
        names = [a.name for a in axes]
        x, y = choose_axes(names, args.x, args.y)
        job = SweepJob(data=data, params=params, mode=args.mode, config=gcfg)
        rows = sweep(job, axes, engine=args.engine, jobs=args.jobs, scheduler=args.scheduler, progress=True)
    except (SweepError, ValueError) as exc:
        raise SystemExit(f"sweep: {exc}") from exc
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_sweep_csv(rows, out / "sweep.csv")
    write_heatmap(rows, names, x, y, out / "sweep_heatmap.html")
    best = max(rows, key=lambda r: r["alpha"])
    where = ", ".join(f"{n} {best[n]}" for n in names)
    print(f"{len(rows)} runs ({args.engine}); best alpha {best['alpha']:.2f} at {where}; "
          f"{out / 'sweep.csv'}, {out / 'sweep_heatmap.html'}")  # fmt: skip
    return 0


def cmd_synth(args) -> int:
    from backtest.synth import generate, generate_conditioned, split_adjusted
    from marketdata.bars import load_daily, write_bars_csv

    code = _code(args.code)
    if args.daily:
        daily = load_daily(args.daily)
        if args.days:
            daily = daily[-args.days :]
        if args.split_adjust:
            daily, splits = split_adjusted(daily)
            for day, ratio in splits:
                print(f"split-adjusted: {day.isoformat()} looks like a {ratio}-for-1 share split; "
                      f"earlier rows divided by {ratio}")
        bars = generate_conditioned(code, daily, args.seed)
    else:
        bars = generate(code, args.days, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_bars_csv(bars, args.out)
    print(f"wrote {len(bars)} bars to {args.out}")
    return 0


def _add_run_options(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--symbol", default="both", help="CODE, CODE,CODE or both")
    p.add_argument("--data", action="append", default=[], required=required, help="CSV, or CODE=CSV (repeat)")
    p.add_argument("--mode", choices=["reference", "realistic"], default="realistic")
    p.add_argument("--config", help="gridbridge config JSON, or a JSON of grid overrides")
    p.add_argument("--out", required=required, help="output folder")


def register(subparsers) -> None:
    """Add ``backtest`` (with ``sweep``) and ``data synth`` to a main CLI's subparsers."""
    p = subparsers.add_parser("backtest", help="run the grid over bars (reference or realistic mode)")
    _add_run_options(p, required=False)
    p.add_argument("--report", action="store_true", help="also write report.html (plotly)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument("--no-risk", action="store_true", help="realistic mode without the account risk machine")
    p.set_defaults(func=cmd_backtest)
    sub = p.add_subparsers(dest="backtest_cmd")
    s = sub.add_parser("sweep", help="sweep grid parameters (local processes or a Dask cluster)")
    _add_run_options(s, required=True)
    s.add_argument("--grid", action="append", default=[], metavar="NAME=START:STOP:STEP|NAME=V1,V2",
                   help="an axis over a GridParams field (repeat); the stop is included when on the grid")
    s.add_argument("--factors", help="shorthand for --grid atr_grid_factor=V1,V2 (default without --grid: "
                   "0.24,0.28,0.32,0.36,0.40)")
    s.add_argument("--floors", help="shorthand for --grid grid_step_floor=V1,V2 (default without --grid: "
                   "0.0008,0.001,0.0012,0.0015)")
    s.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local processes, or Dask (a loopback LocalCluster unless --scheduler)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://host:8786")
    s.add_argument("--jobs", type=int, default=None,
                   help="local processes or LocalCluster workers (default: all cores)")
    s.add_argument("--x", help="heat map x axis (default: the first swept axis)")
    s.add_argument("--y", help="heat map y axis (default: the second swept axis)")
    s.set_defaults(func=cmd_sweep, mode="reference")

    d = subparsers.add_parser("data", help="market data tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    g = dsub.add_parser("synth", help="write synthetic 1-minute bars (QMT-like CSV, time in epoch ms)")
    g.add_argument("--code", required=True)
    g.add_argument("--days", type=int, default=242)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True)
    g.add_argument("--daily", help="daily OHLC CSV to condition on (minutes aggregate to its days)")
    g.add_argument("--split-adjust", action="store_true",
                   help="with --daily: take unadjusted share splits out of the daily rows first (each one found "
                        "is printed); without it a split day is replayed as the real move it looks like")
    g.set_defaults(func=cmd_synth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridbridge")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
