"""The parameter sweep of issue 13: 200 points of 5 years x 2 symbols, reference mode, on each engine.

    python bench/bench_sweep.py [--days 1210] [--dir /tmp/gb-sweep] [--out bench/results/sweep.json]

Generates the two files the way a user would (``gridbridge data synth``, seeds 1 and 2; kept in ``--dir``
and reused), then runs ``gridbridge backtest sweep`` over 20 ``atr_grid_factor`` x 10 ``grid_step_floor``
values three times, each as its own process timed from start to exit:

* ``--engine local --jobs 2`` (forked processes),
* ``--engine dask --jobs 1`` (a loopback LocalCluster of one worker),
* ``--engine dask --jobs 2`` (two workers),

checks that the three ``sweep.csv`` are identical byte for byte, and prints the wall times, seconds per
point and the scaling from one Dask worker to two. ``--engines`` picks a subset (e.g. ``local2``).
The load average before and after each run is recorded: the figures mean little on a busy machine.
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
GRIDBRIDGE = str(Path(sys.executable).with_name("gridbridge"))
CODES = ("512890.SH", "159201.SZ")
FACTORS = "atr_grid_factor=0.22:0.60:0.02"  # 20 values
FLOORS = "grid_step_floor=0.0006:0.0015:0.0001"  # 10 values
ENGINES = {
    "local2": ("local", 2),
    "dask1": ("dask", 1),
    "dask2": ("dask", 2),
}


def _load() -> float:
    return os.getloadavg()[0]


def synth(work: Path, days: int) -> dict[str, str]:
    paths = {}
    for k, code in enumerate(CODES):
        path = work / f"{code.split('.')[0]}_{days}d.csv"
        if not path.exists():
            subprocess.run([GRIDBRIDGE, "data", "synth", "--code", code, "--days", str(days), "--seed", str(1 + k),
                            "--out", str(path)], check=True, capture_output=True)  # fmt: skip
        paths[code] = str(path)
    return paths


def run_sweep(paths: dict[str, str], engine: str, jobs: int, out: Path) -> dict:
    cmd = [GRIDBRIDGE, "backtest", "sweep", "--mode", "reference", "--symbol", ",".join(paths),
           "--grid", FACTORS, "--grid", FLOORS, "--engine", engine, "--jobs", str(jobs), "--out", str(out)]  # fmt: skip
    for code, path in paths.items():
        cmd += ["--data", f"{code}={path}"]
    load_before = _load()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rows = (out / "sweep.csv").read_text().count("\n") - 1
    return {"engine": engine, "workers": jobs, "seconds": seconds, "points": rows,
            "seconds_per_point": seconds / rows, "load_before": load_before, "load_after": _load(),
            "summary": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=1210, help="trading days per symbol (1210: five years)")
    ap.add_argument("--dir", default="/tmp/gb-sweep", help="where the generated CSVs and sweep outputs go")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    ap.add_argument("--out", help="write the figures as JSON")
    args = ap.parse_args(argv)
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = synth(work, args.days)
    chosen = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in chosen if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engines {unknown}; choose from {list(ENGINES)}")

    fig: dict = {"python": platform.python_version(), "cpus": os.cpu_count(), "days": args.days,
                 "grid": [FACTORS, FLOORS], "runs": []}  # fmt: skip
    tables = {}
    for name in chosen:
        engine, jobs = ENGINES[name]
        out = work / name
        r = run_sweep(paths, engine, jobs, out)
        fig["runs"].append({"name": name, **r})
        tables[name] = (out / "sweep.csv").read_bytes()
        print(f"{name:<7} {engine:<6} {jobs} worker(s): {r['seconds']:7.1f} s  {r['points']} points  "
              f"{r['seconds_per_point']:.3f} s/point  load {r['load_before']:.1f} -> {r['load_after']:.1f}",
              flush=True)  # fmt: skip
    same = len(set(tables.values())) == 1
    fig["tables_identical"] = same
    print("sweep.csv identical across engines:", "yes" if same else f"NO ({', '.join(tables)})")
    by = {r["name"]: r for r in fig["runs"]}
    if "dask1" in by and "dask2" in by:
        fig["dask_scaling_1_to_2"] = by["dask1"]["seconds"] / by["dask2"]["seconds"]
        print(f"Dask 1 -> 2 workers: {by['dask1']['seconds']:.1f} s -> {by['dask2']['seconds']:.1f} s "
              f"(x{fig['dask_scaling_1_to_2']:.2f})")  # fmt: skip
    best = min(r["seconds"] for r in fig["runs"])
    fig["target_met"] = best <= 60.0
    print(f"target 200 points of 5 y x 2 symbols <= 60 s: {'met' if fig['target_met'] else 'NOT met'} "
          f"(best {best:.1f} s)")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(fig, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
