"""``gridbridge crypto e2e --venue okx-fake [--report DIR] [--orders N]``: the design's exchange checklist.

Starts the local exchange in this process (OKX v5 over HTTP on 127.0.0.1, a free port), runs the crypto
loop and every check of the checklist through real ccxt, kills a real engine process with SIGKILL
mid-order and restarts it, then feeds the run's audit log to the release gate with the crypto preset
(``gridbridge gate --preset crypto``, the same code). Writes ``report.json`` and ``report.md`` (and the
gate's ``gate.json``/``gate.md``) into the report folder. Exit 0 when every check and the gate pass.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from filelock import FileLock

from crypto.e2e.checklist import Check, Checklist, fake_venue
from crypto.execution.engine import AUDIT_FILE, JOURNAL_FILE, LOCK_FILE, STATE_FILES
from crypto.execution.statedir import AlreadyRunning, StateDirError, check_state_dir, claim

MIN_ORDERS = 500  # the checklist's floor for the place/cancel figures
RUN_LOCK = "e2e.lock"  # one checklist run per report folder and per state folder
ENGINE_NAMES = frozenset({*STATE_FILES, LOCK_FILE, RUN_LOCK, "control", "control_ack", "held.txt"})
EXIT_BUSY = 3  # another run (or an engine) holds the folder
MAX_ORDERS = 100_000  # ~3 h of probes at the local exchange's pace: more is a typo, not a checklist
MAX_BARS = 10_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def run_gate(audit: Path, start_ms: int, end_ms: int, out: Path) -> tuple[int, dict[str, Any], list[str]]:
    """``gridbridge gate`` (core.gate_cli) over the run's audit log with the crypto preset."""
    from core.gate_cli import main as gate_main

    argv = ["--audit", str(audit), "--from", _iso(start_ms), "--to", _iso(end_ms + 1000), "--preset", "crypto",
            "--stage", "run", "--run-mode", "paper", "--config-version", "e2e", "--strategy-version", "trend",
            "--out-json", str(out / "gate.json"), "--out-md", str(out / "gate.md")]
    with contextlib.redirect_stdout(io.StringIO()):
        code = gate_main(argv)
    data = json.loads((out / "gate.json").read_text()) if (out / "gate.json").exists() else {}
    return code, data, ["gridbridge", "gate", *argv]


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Crypto exchange checklist: **{report['verdict']}**", "",
             f"- Venue: {report['venue']} (local exchange, seed {report['seed']}, scenario {report['scenario']}), "
             f"ccxt {report['ccxt']}",
             f"- Orders in the place/cancel check: {report['orders']} (floor {MIN_ORDERS})",
             f"- Wall time: {report['wall_s']} s; model time {report['model_from']} -> {report['model_to']}", "",
             "| check | verdict | what happened | s |", "|---|---|---|---|"]
    for c in report["checks"]:
        lines.append(f"| {c['title']} | {'PASS' if c['passed'] else '**FAIL**'} | {c['detail']} | {c['seconds']} |")
    pc = next((c for c in report["checks"] if c["name"] == "place_cancel"), None)
    if pc is not None and pc["figures"]:
        f = pc["figures"]
        lines += ["", "## Place / cancel", "",
                  f"- place success {f['accepted']}/{f['sends']} ({f['place_success_rate']:.2%}), cancel success "
                  f"{f['cancel_ok']}/{f['cancels']} ({f['cancel_success_rate']:.2%})", "",
                  "| latency (ms) | n | mean | p50 | p90 | p99 | max |", "|---|---|---|---|---|---|---|"]
        for name in ("place_latency_ms", "cancel_latency_ms"):
            d = f[name]
            lines.append(f"| {name.split('_')[0]} | {d['n']} | {d['mean']} | {d['p50']} | {d['p90']} | {d['p99']} "
                         f"| {d['max']} |")
    g = report["gate"]
    lines += ["", f"## Gate (crypto preset): **{g.get('verdict', 'n/a')}**", "",
              f"`{' '.join(report['gate_command'])}`", ""]
    for key, value in (g.get("kris") or {}).items():
        lines.append(f"- {key}: {value}")
    lines += ["", "Fail reasons: " + (", ".join(g.get("fail_reasons") or []) or "none")]
    lines += ["", "## Figures per check", ""]
    for c in report["checks"]:
        lines.append(f"- **{c['name']}**: `{json.dumps(c['figures'], default=str)}`")
    if report["errors"]:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in report["errors"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="gridbridge crypto e2e", description=__doc__.splitlines()[0])
    p.add_argument("--venue", default="okx-fake", choices=["okx-fake"],
                   help="only the local exchange: the checklist injects faults and kills processes")
    p.add_argument("--report", type=Path, default=Path("crypto-e2e-report"))
    p.add_argument("--state", type=Path, help="the engine's state folder (journal, audit.jsonl, status.json, "
                   "control/); default REPORT/state. Emptied first: the report describes this run only")
    p.add_argument("--orders", type=int, default=MIN_ORDERS, help=f"place/cancel probes (floor {MIN_ORDERS})")
    p.add_argument("--bars", type=int, default=30, help="bars of the trend loop (one minute bar of model time per step)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scenario", default="trend", choices=["calm", "trend", "crash", "squeeze"])
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if not (1 <= args.orders <= MAX_ORDERS) or not (1 <= args.bars <= MAX_BARS):
        p.error(f"--orders must be in 1..{MAX_ORDERS} and --bars in 1..{MAX_BARS}")
    report_dir: Path = args.report
    state, kill_state = args.state or report_dir / "state", report_dir / "kill9-state"
    try:
        locks = claim_run(report_dir, state, kill_state)
    except AlreadyRunning as exc:
        print(f"gridbridge crypto e2e: {exc}: one checklist run per folder; wait for it or give another "
              "--report/--state", file=sys.stderr)
        return EXIT_BUSY
    except StateDirError as exc:
        print(f"gridbridge crypto e2e: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args, report_dir, state, kill_state)
    finally:
        for lock in locks:
            lock.release()


def claim_run(report_dir: Path, state: Path, kill_state: Path) -> list[FileLock]:
    """Lock the report folder and the state folder for this run (a second run on either is refused), then
    empty the two state folders, never through a link and never one that holds anything but an engine's
    files or that an engine (close-all, a kill -9 probe) holds right now."""
    locks = [claim(report_dir, RUN_LOCK, ("report.json", "report.md", "gate.json", "gate.md"))]
    try:
        if state.resolve() != report_dir.resolve():
            locks.append(claim(state, RUN_LOCK))
        for folder in (state, kill_state):
            check_state_dir(folder, STATE_FILES)
            if not folder.exists():
                continue
            if any(f.name not in ENGINE_NAMES for f in folder.iterdir()) and not (folder / JOURNAL_FILE).exists() \
                    and not (folder / AUDIT_FILE).exists():
                raise StateDirError(f"{folder} holds files that are not an engine's state: refusing to empty it")
            claim(folder, LOCK_FILE).release()  # an engine at work there -> AlreadyRunning, nothing deleted
            for child in folder.iterdir():  # a fresh run: the report describes this run only
                if child.name in (RUN_LOCK, LOCK_FILE):
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()  # a link is removed, never followed
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def _run(args: argparse.Namespace, report_dir: Path, state: Path, kill_state: Path) -> int:
    import ccxt

    from crypto.fakex.server import FakeExchange
    log = (lambda _m: None) if args.quiet else (lambda m: print(m, flush=True))
    wall = time.perf_counter()
    fx = FakeExchange.start(seed=args.seed, scenario=args.scenario,
                            balances={"trading": {"USDT": Decimal(100_000)}})
    # Small responses on a kept-alive connection otherwise wait ~40 ms for a delayed ACK (Nagle): real venues
    # answer with TCP_NODELAY, and so must the latency figures here. (Applies to connections opened from now.)
    handler = getattr(getattr(fx, "_server", None), "RequestHandlerClass", None)
    if handler is not None:
        handler.disable_nagle_algorithm = True
    try:
        log(f"local exchange on {fx.url}")
        run = Checklist(fx, fake_venue(fx.url), state, args.orders, args.bars, log)
        checks: list[Check] = run.run(kill_state)
    finally:
        fx.stop()
    code, gate, gate_cmd = run_gate(state / AUDIT_FILE, run.started_ms, run.ended_ms, report_dir)
    passed = all(c.passed for c in checks) and code == 0 and args.orders >= MIN_ORDERS
    report = {
        "verdict": "PASS" if passed else "FAIL", "venue": args.venue, "seed": args.seed, "scenario": args.scenario,
        "ccxt": ccxt.__version__, "orders": args.orders, "wall_s": round(time.perf_counter() - wall, 2),
        "model_from": _iso(run.started_ms), "model_to": _iso(run.ended_ms),
        "checks": [{"name": c.name, "title": c.title, "passed": c.passed, "detail": c.detail,
                    "figures": c.figures, "seconds": c.seconds} for c in checks],
        "gate": gate, "gate_exit": code, "gate_command": gate_cmd, "errors": run.errors,
        "notes": [] if args.orders >= MIN_ORDERS else [f"--orders {args.orders} is under the floor {MIN_ORDERS}"],
    }
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (report_dir / "report.md").write_text(render_markdown(report))
    log(f"{report['verdict']}: {sum(c.passed for c in checks)}/{len(checks)} checks, gate "
        f"{gate.get('verdict', 'n/a')}; report in {report_dir}/report.md ({report['wall_s']} s)")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


