"""``gridbridge dry-run``: the whole system on one machine, as separate processes, on generated data.

The producer replays generated 1-minute bars on an accelerated clock, the executor trades them on the paper
broker with the real GlobalVault, and one node per ETF runs the grid. When the replay ends and every signal
has a final result, the run stops and is audited from its files: every signal has exactly one final result,
no client_order_id reached the venue twice, the vault's invariants hold, the reserve held at every layer-0
approval, and the vault equals the paper venue's books.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from backtest.synth import generate
from core.journal import Journal
from gridbridge.progress import ProgressPrinter, ProgressSource, ProgressWatch
from marketdata.bars import load_bars, write_bars_csv
from settings.config import GridbridgeConfig, load_config
from shared_schema.models import (
    DESIGN_SYMBOLS,
    POOL_FILE,
    RESULT_FILE,
    SIGNAL_FILE,
    PoolFile,
    ResultFile,
    symbol_key,
)
from windows.executor import JOURNAL_FILE, build_vault
from windows.executor_state import ExecutorState
from windows.journal_records import AllocRecord, SignalRecord, as_record
from windows.vault import VaultDecision

BASE_POSITION_CNY = 300_000


class DryRunError(RuntimeError):
    """The run cannot start as asked."""


@dataclass(frozen=True)
class DryRunOptions:
    shared_dir: Path | None = None
    days: int = 2
    speed: float = 600.0
    seed: int = 11
    base_config: Path | None = None
    settle_timeout_s: float = 60.0
    physical_pool: str | None = None  # a smaller pool shows the reserve and the step penalty sooner


def _gridbridge(*args: str) -> list[str]:
    return [sys.executable, "-m", "gridbridge.cli", *args]


def prepare(opts: DryRunOptions) -> tuple[Path, Path, Path, dict[str, Path]]:
    """Folders, config and bar files for a run; returns (shared, state, config path, bar files)."""
    root = Path(opts.shared_dir).resolve().parent if opts.shared_dir else Path(tempfile.mkdtemp(prefix="gridbridge-dry-"))
    shared = Path(opts.shared_dir) if opts.shared_dir else root / "shared"
    if shared.exists() and any(shared.iterdir()):
        raise DryRunError(f"{shared} is not empty: a dry run starts from a clean folder (pick a new --shared-dir)")
    state = root / (shared.name + "_executor_state")
    data = root / "bars"
    for folder in (shared, state, data):
        folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = json.loads(opts.base_config.read_text()) if opts.base_config else {}
    bars: dict[str, Path] = {}
    positions: dict[str, int] = {}
    grid = dict(config.get("grid", {}))
    for i, code in enumerate(DESIGN_SYMBOLS):
        series = generate(code, opts.days, opts.seed + i)
        path = data / f"{symbol_key(code)}.csv"
        write_bars_csv(series, path)
        bars[code] = path
        # A long-term base position is what makes intraday round trips possible under T+1.
        shares = int(BASE_POSITION_CNY / float(series.o[0]) / 100) * 100
        positions[code] = shares
        # One entry per symbol (the config refuses a code key beside its symbol key): the base config's
        # overrides under either key, then the base position.
        own = {**grid.pop(symbol_key(code), {}), **grid.get(code, {})}
        grid[code] = {**own, "base_position_shares": shares}
    paper = {"initial_cash": "1000000", "initial_positions": positions, **config.get("paper", {})}
    config.update({"paper": paper, "grid": grid})
    _scale_latency_budgets(config, opts.speed)
    if opts.physical_pool is not None:
        config["vault"] = {**config.get("vault", {}), "physical_pool": opts.physical_pool}
    config_path = root / "config.json"
    config_path.write_text(json.dumps(config, indent=1))
    return shared, state, config_path, bars


def run_dry_run(opts: DryRunOptions, progress: TextIO | None = None, progress_every_s: float = 5.0) -> dict[str, Any]:
    """Run the whole system on generated bars, then audit it. With ``progress``, the run's progress (market time
    replayed, signals, fills, utilisation) is shown there while it works (``gridbridge.progress``)."""
    shared, state, config_path, bars = prepare(opts)
    logs = shared.parent / "logs"
    logs.mkdir(exist_ok=True)
    cfg = ["--config", str(config_path)]
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, *args: str) -> None:
        log = open(logs / f"{name}.log", "ab")
        procs[name] = subprocess.Popen(_gridbridge(*args), stdout=log, stderr=subprocess.STDOUT)

    t0 = time.monotonic()
    try:
        start("executor", "executor", "--shared-dir", str(shared), "--state-dir", str(state), *cfg)
        for code in DESIGN_SYMBOLS:
            start(f"node-{symbol_key(code)}", "node", "--shared-dir", str(shared), "--symbol", code, *cfg)
        time.sleep(1.0)  # let them come up before the first quote
        bar_args = [a for code, path in bars.items() for a in ("--bars", f"{code}={path}")]
        start("producer", "producer", "--shared-dir", str(shared), *bar_args, "--speed", str(opts.speed), *cfg)
        with _watch(shared, bars, progress, progress_every_s):
            procs["producer"].wait()
            _settle(shared, opts.settle_timeout_s)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    summary = audit_run(shared, state)
    summary["gate"] = run_gate(state, shared.parent, config_path)
    summary.update({"days": opts.days, "speed": opts.speed, "seed": opts.seed, "wall_seconds": round(time.monotonic() - t0, 1),
                    "shared_dir": str(shared), "state_dir": str(state), "logs": str(logs), "config": str(config_path),
                    "exit_codes": {n: p.returncode for n, p in procs.items()}})
    summary["ok"] = summary["ok"] and all(code in (0, -15) for code in summary["exit_codes"].values())
    return summary


def _watch(shared: Path, bars: dict[str, Path], stream: TextIO | None, every_s: float) -> AbstractContextManager[Any]:
    """Progress shown on ``stream`` while the run works (nothing without a stream)."""
    if stream is None:
        return nullcontext()
    times = sorted({int(t) for path in bars.values() for t in load_bars(path).t})
    printer = ProgressPrinter(stream, times, every_s=every_s)
    return ProgressWatch(ProgressSource(shared), printer, poll_s=0.5 if printer.is_tty else min(1.0, every_s))


def run_gate(state: Path, out_dir: Path, config_path: Path) -> dict[str, Any]:
    """The release gate over this run's audit log, written next to the run as gate.json and gate.md."""
    from core.audit import read_log_events
    from core.gate import VersionSet, evaluate_gate, render_json, render_markdown

    events = list(read_log_events(state / "audit.jsonl"))  # every rotated segment, then the active file
    if not events:
        return {"verdict": "FAIL", "fail_reasons": ["NO_AUDIT_EVENTS"]}
    start, end = min(e.ts for e in events), max(e.ts for e in events)
    report = evaluate_gate(events, start, end + timedelta(seconds=1), VersionSet("dry-run", "grid", "local"),
                           load_config(config_path).gate)
    (out_dir / "gate.json").write_text(render_json(report), encoding="utf-8")
    (out_dir / "gate.md").write_text(render_markdown(report), encoding="utf-8")
    data = json.loads(render_json(report))
    return {"verdict": data["verdict"], "fail_reasons": data.get("fail_reasons", []), "report": str(out_dir / "gate.md")}


# Wall seconds a signal may take from the node to the executor in a dry run, whatever the speed.
DRY_RUN_LATENCY_BUDGET_S = 5.0


def _scale_latency_budgets(config: dict[str, Any], speed: float) -> None:
    """Market-time ages that stand for machine latency, scaled so a dry run at ``speed``x keeps the wall-time
    budget a live run has (120 s of market time is 0.2 s of wall time at 600x: a busy machine would expire
    the nodes' signals). Values the base config sets are kept; at 1x nothing changes."""
    budget = DRY_RUN_LATENCY_BUDGET_S * speed
    defaults = GridbridgeConfig()
    executor, node = dict(config.get("executor", {})), dict(config.get("node", {}))
    executor.setdefault("max_signal_age_s", max(defaults.executor.max_signal_age_s, budget))
    node.setdefault("signal_ttl_s", max(defaults.node.signal_ttl_s, budget))
    config.update({"executor": executor, "node": node})


def _settle(shared: Path, timeout: float) -> None:
    """Wait until every signal in the file has a final result and no order is open. ``timeout`` bounds a
    stretch without progress (the set of pending signals and open orders unchanged), not the whole wait."""
    deadline = time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while time.monotonic() < deadline:
        try:
            results = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())
            signals = json.loads((shared / SIGNAL_FILE).read_bytes()).get("signals", []) if (shared / SIGNAL_FILE).exists() else []
        except (OSError, ValueError):
            time.sleep(0.2)
            continue
        pending = [s for s in signals if not (s.get("signal_id") in results.results
                                              and results.results[s["signal_id"]].status.is_final)]
        if not pending and results.open_orders == 0:
            return
        mark = (tuple(sorted(str(s.get("signal_id")) for s in pending)), results.open_orders)
        if mark != last:
            last, deadline = mark, time.monotonic() + timeout
        time.sleep(0.2)


def audit_run(shared: Path, state: Path) -> dict[str, Any]:
    """Everything the run did, read back from its files, with the invariants checked."""
    problems: list[str] = []
    results = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())
    pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    # Replay the executor's journal into a fresh vault, checking the reserve at every first-layer approval
    # (layer 0, or a symbol with no open or pending lot) with the fee reserve counted.
    config_path = shared.parent / "config.json"
    config = load_config(config_path) if config_path.exists() else GridbridgeConfig()
    replay = ExecutorState(build_vault(config))
    reserve_floor = replay.vault.limits.reserve_floor_fen
    signal_ids: list[str] = []
    for line in Journal(state / JOURNAL_FILE).replay():
        record = as_record(line)
        if isinstance(record, AllocRecord) and record.decision is VaultDecision.APPROVED:
            before = replay.vault.committed()
            # A record without a fee predates fee counting: only layer 0 counted as a first layer then.
            first = record.layer_index == 0 or (record.fee_fen is not None
                                                and replay.vault.is_first_layer(record.symbol))
            if first and before + record.amount_fen + (record.fee_fen or 0) > reserve_floor:
                problems.append(f"first-layer approval {record.client_order_id} broke the reserve")
        if isinstance(record, SignalRecord):
            signal_ids.append(record.signal_id)
        replay.apply(record)
        broken = replay.vault.check_invariants()
        if broken:
            problems.append(f"vault invariants broken after {record.kind}: {broken[:2]}")
            break
    if len(signal_ids) != len(set(signal_ids)):
        problems.append("a signal_id was journaled twice")
    final = results.results
    not_final = [sid for sid in signal_ids if sid in final and not final[sid].status.is_final]
    if not_final:
        problems.append(f"{len(not_final)} signals without a final result: {not_final[:5]}")
    # The venue saw every client_order_id at most once, and the vault equals its books.
    placed = [json.loads(line) for line in (state / "paper" / "paper_orders.jsonl").read_text().splitlines()] \
        if (state / "paper" / "paper_orders.jsonl").exists() else []
    sent = Counter(p["client_order_id"] for p in placed)
    twice = [c for c, n in sent.items() if n > 1]
    if twice:
        problems.append(f"client_order_ids sent twice: {twice[:5]}")
    broker = json.loads((state / "paper" / "paper_broker_state.json").read_text())["orders"]
    for alloc in pool.allocations_159201 + pool.allocations_512890:
        order = broker.get(alloc.client_order_id)
        if order is not None and alloc.frozen == 0 and alloc.released_shares == 0:
            # used is cash out: the fill value plus the buy commission
            if to_fen_yuan(alloc.used) != order["filled_value_fen"] + order.get("fees_fen", 0):
                problems.append(f"{alloc.client_order_id}: vault used {alloc.used} != venue fill "
                                f"{order['filled_value_fen']} + fees {order.get('fees_fen', 0)} fen")
    statuses = Counter(r.status.value for r in final.values())
    reasons = Counter(r.reason.value for r in final.values() if r.reason is not None and r.status.value in ("REJECTED", "EXPIRED", "CANCELLED"))
    node_stats = _node_stats(shared)
    return {
        "ok": not problems,
        "problems": problems,
        "signals": len(signal_ids),
        "orders_sent": len(sent),
        "statuses": dict(statuses),
        "fills": statuses.get("FILLED", 0),
        "rejections_by_reason": dict(reasons),
        "peak_utilization": node_stats["peak_utilization"],
        "penalty_episodes": node_stats["penalty_episodes"],
        "alpha": {"159201.SZ": float(pool.acc_alpha_159201), "512890.SH": float(pool.acc_alpha_512890)},
        "final_utilization": pool.utilization,
        "node_events": node_stats["events"],
    }


def to_fen_yuan(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


def _node_stats(shared: Path) -> dict[str, Any]:
    peak = 0.0
    episodes = 0
    events: Counter = Counter()
    for code in DESIGN_SYMBOLS:
        path = shared / f"dashboard_state_{symbol_key(code)}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for point in data.get("history", []):
            peak = max(peak, point[1])
        counters = data.get("counters", {})
        episodes = max(episodes, counters.get("event_PENALTY_ON", 0))
        events.update({k: v for k, v in counters.items() if k.startswith(("event_", "blocked_"))})
    return {"peak_utilization": peak, "penalty_episodes": episodes, "events": dict(events)}


def print_summary(summary: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(summary, indent=1, default=str))
        return
    print(f"gridbridge dry run: {summary['days']} day(s) at {summary['speed']:g}x, seed {summary['seed']}, "
          f"{summary['wall_seconds']} s")
    print(f"  signals {summary['signals']}  orders sent {summary['orders_sent']}  fills {summary['fills']}  "
          f"statuses {summary['statuses']}")
    print(f"  rejections by reason: {summary['rejections_by_reason'] or 'none'}")
    print(f"  peak utilisation {summary['peak_utilization']:.1%}  penalty episodes {summary['penalty_episodes']}  "
          f"final utilisation {summary['final_utilization']:.1%}")
    print(f"  alpha: 159201.SZ {summary['alpha']['159201.SZ']:,.2f}  512890.SH {summary['alpha']['512890.SH']:,.2f}")
    print(f"  checks: {'all passed' if summary['ok'] else 'FAILED: ' + '; '.join(summary['problems'])}")
    gate = summary.get("gate", {})
    print(f"  gate: {gate.get('verdict')} {gate.get('fail_reasons') or ''}  ({gate.get('report', '')})")
    print(f"  files: {summary['shared_dir']}  (executor state {summary['state_dir']}, logs {summary['logs']})")
    print(f"  dashboard: gridbridge dashboard --shared-dir {summary['shared_dir']}")
