"""Resource benchmarks: journal size and restart time over many signals, memory per signal, and what a large
signal file costs while it sits in the shared folder.

    python bench/bench_resources.py --out bench/results/resources.json
    python bench/bench_resources.py --signals 20000 --quick      # a smaller run

Journal and memory: the executor runs in this process on a paper venue with a manual clock. Signals arrive
in batches the way nodes write them (the file holds the batch; what was answered is pruned): BUYs that fill,
and SELLs that close the lots bought a batch earlier, so the books stay the size of a live account while the
count of signals grows. Market time moves on by ten minutes per batch through the sessions, day after day
(so the paper venue's day, which it scans on every quote, stays a few thousand orders long).
Every ``--every`` signals the resident memory (after a GC), the journal's size and record count are taken.
At the end a second executor is started on the same state folder and its whole start-up is timed
(``restart_s``: the paper venue loading its books and placement log, the executor journal, the risk shell's
``risk_state.json`` plus audit tail), with the risk load timed on its own, and the sizes of the files a restart
reads are recorded. The same run without compaction (``journal_compact_records`` out of reach) over
``--baseline-signals`` gives the "before" figures.

Signal file: a file of ``--big-mb`` MB (over the size bound) and one of ``--mid-mb`` MB (under it) sit in the
shared folder, unchanged, while the executor turns; CPU seconds per turn and the resident memory are taken,
and compared with forcing a re-read every turn (what the executor did before the stat signature).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.journal import Journal  # noqa: E402
from settings.config import GridbridgeConfig  # noqa: E402
from shared_schema.atomic_io import atomic_write_json, atomic_write_model  # noqa: E402
from shared_schema.clock import ManualClock  # noqa: E402
from shared_schema.models import QUOTE_FILE, SIGNAL_FILE  # noqa: E402
from shared_schema.types import CST  # noqa: E402
from tests.kit.stubs import make_quote_file  # noqa: E402
from windows.brokers.paper import PaperBroker  # noqa: E402
from windows.executor import JOURNAL_FILE, Executor, build_vault  # noqa: E402
from windows.executor_state import ExecutorState  # noqa: E402
from windows.risk_shell import AUDIT_FILE, RISK_STATE_FILE, ExecutorRisk  # noqa: E402

START = datetime(2026, 1, 5, 9, 31, tzinfo=CST)


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def config(compact_records: int) -> GridbridgeConfig:
    return GridbridgeConfig.model_validate({
        "paper": {"initial_cash": "100000000", "initial_positions": {"512890.SH": 50_000_000, "159201.SZ": 50_000_000}},
        "executor": {"poll_interval_s": 0.01, "publish_interval_s": 0, "max_orders_per_s": 1e6, "order_burst": 1_000_000,
                     "journal_compact_records": compact_records},
    })


class Market:
    """Market time that moves a minute per batch through the sessions, skipping lunch and nights."""

    def __init__(self, minutes: int) -> None:
        self.now = START
        self.minutes = minutes

    def step(self) -> datetime:
        nxt = self.now + timedelta(minutes=self.minutes)
        if nxt.time() >= datetime(2026, 1, 1, 14, 55).time():
            nxt = (nxt + timedelta(days=1)).replace(hour=9, minute=31)
            while nxt.weekday() >= 5:
                nxt += timedelta(days=1)
        elif datetime(2026, 1, 1, 11, 28).time() <= nxt.time() < datetime(2026, 1, 1, 13, 1).time():
            nxt = nxt.replace(hour=13, minute=1)
        self.now = nxt
        return nxt


def make_executor(shared: Path, state: Path, cfg: GridbridgeConfig, clock: ManualClock) -> Executor:
    broker = PaperBroker(state / "paper", cfg.paper)
    broker._log.fsync = False  # the venue's own placement log: its fsync is not what this measures
    return Executor(shared, state, cfg, broker, wall_clock=clock, watch_mode="poll", journal_fsync=False)


def run_signals(n: int, batch: int, every: int, compact_records: int, restart: bool = True,
                minutes: int = 10) -> dict[str, Any]:
    cfg = config(compact_records)
    with tempfile.TemporaryDirectory() as tmp:
        shared, state = Path(tmp) / "shared", Path(tmp) / "state"
        shared.mkdir()
        market = Market(minutes)
        clock = ManualClock(market.now)
        atomic_write_model(shared / QUOTE_FILE, make_quote_file(prices={"512890.SH": 1.1, "159201.SZ": 1.3},
                                                                when=market.now))
        executor = make_executor(shared, state, cfg, clock)
        executor.start()
        samples: list[dict[str, Any]] = []
        lots: list[str] = []
        sent = 0
        t0 = time.perf_counter()
        gc.collect()
        base_rss = rss_mb()
        while sent < n:
            now = market.step()
            clock.set(now)
            atomic_write_model(shared / QUOTE_FILE, make_quote_file(
                prices={"512890.SH": 1.1, "159201.SZ": 1.3}, when=now, seq=sent // batch + 2))
            entries = []
            to_close, lots = lots, []
            for i in range(batch):
                sid = f"R{sent + i}"
                if to_close and i % 2 == 1:
                    lot = to_close.pop()
                    entries.append({"signal_id": sid, "code": "512890.SH", "direction": "SELL", "price": 1.099,
                                    "shares": 100, "release_client_order_ids": [lot], "created_at": now.isoformat()})
                else:
                    entries.append({"signal_id": sid, "code": "512890.SH", "direction": "BUY", "price": 1.1,
                                    "shares": 100, "layer_index": 1, "created_at": now.isoformat()})
                    lots.append(sid)
            lots += to_close
            atomic_write_json(shared / SIGNAL_FILE, {"schema_version": 1, "seq": sent, "updated_at": now.isoformat(),
                                                     "signals": entries})
            executor.run_once()
            executor.run_once()
            sent += batch
            if sent % every == 0 or sent >= n:
                gc.collect()
                journal = state / JOURNAL_FILE
                samples.append({
                    "signals": sent,
                    "rss_mb": round(rss_mb(), 1),
                    "rss_growth_mb": round(rss_mb() - base_rss, 1),
                    "journal_bytes": journal.stat().st_size,
                    "journal_records": sum(1 for _ in journal.open("rb")),
                    "signals_in_memory": len(executor.state.signals),
                    "orders_in_memory": len(executor.state.orders),
                    "allocations_in_memory": len(executor.state.vault.allocations),
                    "elapsed_s": round(time.perf_counter() - t0, 1),
                })
                print(json.dumps(samples[-1]), flush=True)
        executor.stop()
        out: dict[str, Any] = {"signals": n, "batch": batch, "journal_compact_records": compact_records,
                               "samples": samples, "compactions": executor.journal.compactions}
        if restart:
            out["files_at_restart"] = files_at_restart(state)
            risk_load: list[float] = []
            real_load = ExecutorRisk.load

            def timed_load(self: ExecutorRisk) -> None:
                t = time.perf_counter()
                real_load(self)
                risk_load.append(time.perf_counter() - t)

            ExecutorRisk.load = timed_load  # type: ignore[method-assign]
            try:
                t1 = time.perf_counter()
                again = make_executor(shared, state, cfg, clock)
                t2 = time.perf_counter()
                again.start()
                t3 = time.perf_counter()
            finally:
                ExecutorRisk.load = real_load  # type: ignore[method-assign]
            out["restart_s"] = round(t3 - t1, 3)
            out["restart_construct_s"] = round(t2 - t1, 3)  # the paper venue loads its books and log here
            out["restart_start_s"] = round(t3 - t2, 3)
            out["restart_risk_load_s"] = round(risk_load[0], 3)
            out["restart_risk_loaded_from"] = again.risk.loaded_from
            out["restart_records_replayed"] = again.state.records_applied
            again.stop()
            # The journal's part of a restart alone: read the file and rebuild the state from it.
            t4 = time.perf_counter()
            replay = ExecutorState(build_vault(cfg), cfg.executor.result_retention)
            lines = 0
            for record in Journal(state / JOURNAL_FILE).replay():
                replay.apply(record)
                lines += 1
            out["journal_replay_s"] = round(time.perf_counter() - t4, 3)
            out["journal_lines_at_restart"] = lines
            out["journal_bytes_at_restart"] = (state / JOURNAL_FILE).stat().st_size
        return out


def files_at_restart(state: Path) -> dict[str, Any]:
    """Sizes of what a restart reads (and of the audit segments it does not read)."""
    audit = state / AUDIT_FILE
    segments = sorted(state.glob("audit.*.jsonl"))
    paper = state / "paper"

    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    log = paper / "paper_orders.jsonl"
    return {
        "journal_bytes": size(state / JOURNAL_FILE),
        "audit_active_bytes": size(audit),
        "audit_segments": len(segments),
        "audit_segment_bytes_total": sum(size(p) for p in segments),
        "risk_state_bytes": size(state / RISK_STATE_FILE),
        "paper_books_bytes": size(paper / "paper_broker_state.json"),
        "paper_log_bytes": size(log),
        "paper_log_lines": sum(1 for _ in log.open("rb")) if log.exists() else 0,
    }


def bench_signal_file(big_mb: int, mid_mb: int, turns: int) -> list[dict[str, Any]]:
    cfg = config(2000)
    rows = []
    for label, size_mb, force_read in (("over the bound, stat only", big_mb, False),
                                       ("under the bound, unchanged (stat signature)", mid_mb, False),
                                       ("under the bound, re-read every turn (before)", mid_mb, True)):
        with tempfile.TemporaryDirectory() as tmp:
            shared, state = Path(tmp) / "shared", Path(tmp) / "state"
            shared.mkdir()
            clock = ManualClock(START)
            atomic_write_model(shared / QUOTE_FILE, make_quote_file(prices={"512890.SH": 1.1, "159201.SZ": 1.3},
                                                                    when=START))
            padding = "x" * 1000
            count = size_mb * 1024 // 1
            entries = [{"signal_id": f"J{i}", "pad": padding} for i in range(count)]
            (shared / SIGNAL_FILE).write_text(json.dumps({"signals": entries}))
            del entries
            executor = make_executor(shared, state, cfg, clock)
            executor.start()
            executor.run_once()  # the first read (or the refusal)
            gc.collect()
            rss0 = rss_mb()
            peak = rss0
            c0 = time.process_time()
            for _ in range(turns):
                if force_read:
                    executor.intake.forget_last_read()
                executor.run_once()
                peak = max(peak, rss_mb())
            cpu = time.process_time() - c0
            executor.stop()
            rows.append({"case": label, "file_mb": round((size_mb * 1024 * 1024) / 2**20), "turns": turns,
                         "cpu_ms_per_turn": round(cpu / turns * 1000, 3), "rss_mb": round(peak, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--signals", type=int, default=100_000)
    p.add_argument("--baseline-signals", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--every", type=int, default=10_000)
    p.add_argument("--big-mb", type=int, default=100)
    p.add_argument("--mid-mb", type=int, default=10)
    p.add_argument("--turns", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="skip the signal-file part")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    report: dict[str, Any] = {"python": sys.version.split()[0]}
    print("-- with compaction", flush=True)
    report["compacted"] = run_signals(args.signals, args.batch, args.every, compact_records=2000)
    print("-- without compaction (before)", flush=True)
    report["uncompacted"] = run_signals(args.baseline_signals, args.batch, max(1, args.baseline_signals // 4),
                                        compact_records=10**9)
    if not args.quick:
        print("-- a large signal file sitting in the folder", flush=True)
        report["signal_file"] = bench_signal_file(args.big_mb, args.mid_mb, args.turns)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
