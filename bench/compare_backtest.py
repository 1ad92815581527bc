"""gridbridge against a plain-Python loop and the original pandas ``iloc`` script, whole process each, on the
same generated files, in one go; prints the times, the ratios and whether the trades agree.

    python bench/compare_backtest.py [--days 1210] [--dir /tmp/gb-compare] [--out bench/results/compare.json]

Every contender runs as its own process (``python -c``/the ``gridbridge`` CLI), so each time includes the
interpreter, the imports and reading the CSV, the way a user meets it:

* gridbridge, reference and realistic, one symbol and both (``gridbridge backtest``); its own
  measurement of the run (indicators + loop) is read from ``metrics.json``, and the loop alone is timed
  in-process (the run less the vectorised indicators);
* a plain-Python loop of the reference rules (``tests/mac/naive_reference.py``: lists, indicators
  recomputed on every bar), CSV read with the ``csv`` module;
* the original pandas style (``bench_backtest.pandas_reference``: ``df.iloc[i]`` per bar), 512890 only (it
  has no cooling-off, which 159201's defaults use);
* ``gridbridge --help`` and ``gridbridge status`` on a shared folder made for it in ``--dir``: the executor's
  ``shared_pool.json``, an ``order_result.json`` of a year of results (2,322 signals, from
  ``bench_dashboard.generate``) and an ``executor_lease.json`` of a live owner.

The plain loop and pandas run 512890 (cooling off by default), where all three must make the same trades.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from settings.grid import default_params  # noqa: E402

PY = sys.executable
GRIDBRIDGE = str(Path(PY).with_name("gridbridge"))
CODES = ("512890.SH", "159201.SZ")
FIRST = CODES[0]

NAIVE = """
import csv, sys, time
sys.path.insert(0, {root!r})
from decimal import Decimal
from tests.mac.naive_reference import naive_reference
t, h, lo, c = [], [], [], []
with open({path!r}, newline="") as fh:
    for row in csv.DictReader(fh):
        t.append(int(row["time"])); h.append(float(row["high"])); lo.append(float(row["low"]))
        c.append(float(row["close"]))
trades, cash, lots = naive_reference(t, h, lo, c, {factor!r}, {floor!r}, {tp!r}, {sell_factor!r}, False)
alpha = cash + sum(x[0] for x in lots) * Decimal(repr(c[-1]))
print(len(trades), float(alpha))
"""

PANDAS = """
import sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
import pandas as pd
from bench_backtest import pandas_reference
df = pd.read_csv({path!r}).rename(columns=str.lower)
print(pandas_reference(df, {factor!r}, {floor!r}, {tp!r}, {sell_factor!r}), "-")
"""

LOOP = """
import sys, time
sys.path.insert(0, {root!r})
from backtest.engine import _periods, run_reference
from backtest.fastind import compute_indicators
from marketdata.bars import load_bars
from settings.grid import default_params
bars = {{c: load_bars(p) for c, p in {paths!r}.items()}}
best_run, best_ind = 1e9, 1e9
for _ in range(3):
    run = ind = 0.0
    for code, b in bars.items():
        p = default_params(code, "reference")
        t0 = time.perf_counter(); compute_indicators(b.h, b.l, b.c, _periods(p)); t1 = time.perf_counter()
        run_reference(b, p); t2 = time.perf_counter()
        ind += t1 - t0; run += t2 - t1
    best_run, best_ind = min(best_run, run), min(best_ind, ind)
print(sum(len(b) for b in bars.values()), best_run, best_ind)
"""


def wall(cmd: list[str]) -> tuple[float, str]:
    """Whole-process wall time of ``cmd`` and its stdout."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return time.perf_counter() - t0, out


def best_of(n: int, cmd: list[str]) -> tuple[float, str]:
    runs = [wall(cmd) for _ in range(n)]
    return min(r[0] for r in runs), runs[0][1]


def status_folder(work: Path) -> Path:
    """A shared folder for ``gridbridge status``: pool, a year of results, a live executor's lease."""
    from datetime import datetime, timezone

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_dashboard import generate

    from shared_schema.atomic_io import atomic_write_model
    from shared_schema.lease import LEASE_FILE, LeaseFile

    shared, state = work / "status_shared", work / "status_state"
    if not (shared / LEASE_FILE).exists():
        shared.mkdir(parents=True, exist_ok=True)
        state.mkdir(parents=True, exist_ok=True)
        generate(shared, state, 242)
        now = datetime.now(timezone.utc)
        atomic_write_model(shared / LEASE_FILE, LeaseFile(
            owner_id="bench-owner-0001", host="bench", pid=os.getpid(), state_id="bench-state", state_dir=str(state),
            shared_dir=str(shared), started_at=now, heartbeat_at=now, stale_after_s=1e9))  # fmt: skip
    return shared


def gridbridge(paths: dict[str, str], mode: str, out: Path, repeat: int) -> dict:
    cmd = [GRIDBRIDGE, "backtest", "--mode", mode, "--out", str(out), "--symbol", ",".join(paths)]
    for code, path in paths.items():
        cmd += ["--data", f"{code}={path}"]
    seconds, _ = best_of(repeat, cmd)
    metrics = json.loads((out / "metrics.json").read_text())
    total = metrics["total"]
    return {"seconds": seconds, "run_seconds": metrics["run_seconds"], "bars": metrics["bars"],
            "trades": total["trades"], "alpha": total["alpha"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=1210, help="trading days per symbol (1210: five years)")
    ap.add_argument("--dir", default="/tmp/gb-compare", help="where the generated CSVs and outputs go")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the gridbridge runs")
    ap.add_argument("--skip-slow", action="store_true", help="leave out the plain loop and pandas")
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args(argv)
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, code in enumerate(CODES):
        path = work / f"{code.split('.')[0]}_{args.days}d.csv"
        if not path.exists():
            subprocess.run([GRIDBRIDGE, "data", "synth", "--code", code, "--days", str(args.days),
                            "--seed", str(1 + k), "--out", str(path)], check=True, capture_output=True)  # fmt: skip
        paths[code] = str(path)
    one = {FIRST: paths[FIRST]}

    fig: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "days": args.days, "rows": []}
    rows = fig["rows"]

    def row(what: str, r: dict) -> None:
        rows.append({"what": what, **r})

    row("gridbridge reference, 512890", gridbridge(one, "reference", work / "ref1", args.repeat))
    row("gridbridge reference, both", gridbridge(paths, "reference", work / "ref2", args.repeat))
    row("gridbridge realistic, 512890", gridbridge(one, "realistic", work / "real1", args.repeat))
    row("gridbridge realistic, both", gridbridge(paths, "realistic", work / "real2", args.repeat))
    _, out = wall([PY, "-c", LOOP.format(root=str(ROOT), paths=paths)])
    n, loop_run, loop_ind = out.split()
    fig["loop"] = {"bars": int(n), "run_seconds": float(loop_run), "indicator_seconds": float(loop_ind),
                   "loop_bars_per_second": int(n) / (float(loop_run) - float(loop_ind))}  # fmt: skip
    help_s, _ = best_of(args.repeat, [GRIDBRIDGE, "--help"])
    fig["help_seconds"] = help_s
    shared = status_folder(work)
    status_s, status_out = best_of(args.repeat, [GRIDBRIDGE, "status", "--shared-dir", str(shared)])
    fig["status_seconds"] = status_s
    fig["status_first_line"] = status_out.splitlines()[0] if status_out else ""
    fig["load_average"] = os.getloadavg()

    p = default_params(FIRST, "reference")
    consts = {"factor": p.atr_grid_factor, "floor": p.grid_step_floor, "tp": p.sell_profit_threshold,
              "sell_factor": p.sell_threshold_factor}  # fmt: skip
    if not args.skip_slow:
        s, out = wall([PY, "-c", NAIVE.format(root=str(ROOT), path=paths[FIRST], **consts)])
        trades, alpha = out.split()
        row("plain-Python loop, 512890", {"seconds": s, "trades": int(trades), "alpha": float(alpha)})
        s, out = wall([PY, "-c", PANDAS.format(root=str(ROOT), bench=str(ROOT / "bench"), path=paths[FIRST],
                                                **consts)])  # fmt: skip
        row("pandas iloc script, 512890", {"seconds": s, "trades": int(out.split()[0]), "alpha": None})

    ref1 = rows[0]["seconds"]
    print(f"{args.days} trading days per symbol, {rows[1]['bars']:,} bars for both; whole process, best of "
          f"{args.repeat} for gridbridge; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'run':<32} {'seconds':>8} {'run s':>7} {'trades':>7} {'alpha':>12} {'vs gridbridge ref':>18}")
    for r in rows:
        alpha = "" if r.get("alpha") is None else f"{r['alpha']:,.2f}"
        run_s = f"{r['run_seconds']:.2f}" if "run_seconds" in r else ""
        print(f"{r['what']:<32} {r['seconds']:8.2f} {run_s:>7} {r['trades']:>7} {alpha:>12} "
              f"{r['seconds'] / ref1:17.1f}x")  # fmt: skip
    lp = fig["loop"]
    print(f"reference loop alone (in-process, both symbols, best of 3): {lp['run_seconds'] - lp['indicator_seconds']:.3f}s"
          f" = {lp['loop_bars_per_second'] / 1e6:.1f} M bars/s; indicators {lp['indicator_seconds']:.3f}s")  # fmt: skip
    print(f"gridbridge --help: {help_s:.2f}s")
    print(f"gridbridge status (pool, a year of results, a live lease): {status_s:.2f}s")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in fig["load_average"]))
    if not args.skip_slow:
        same = {r["trades"] for r in rows if "512890" in r["what"] and "realistic" not in r["what"]}
        print("512890 reference trades agree across all three:", "yes" if len(same) == 1 else f"NO {same}")
    targets = [
        ("reference, both, whole process <= 0.8 s", rows[1]["seconds"] <= 0.8),
        ("realistic, both, whole process <= 1.5 s", rows[3]["seconds"] <= 1.5),
        ("reference loop >= 10 M bars/s", lp["loop_bars_per_second"] >= 10e6),
        ("gridbridge --help <= 0.3 s", help_s <= 0.3),
        ("gridbridge status <= 0.3 s", status_s <= 0.3),
    ]
    for name, ok in targets:
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    fig["targets"] = dict(targets)
    if args.out:
        Path(args.out).write_text(json.dumps(fig, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
