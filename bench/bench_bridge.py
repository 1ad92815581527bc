"""Bridge benchmarks: signal file write -> broker call latency, and vault operations per second.

    python bench/bench_bridge.py --duration 60 --out bench/results/bridge.json

Latency: a writer thread appends signals to ``order_signal.json`` (atomic replace under the writers' lock)
at 1, 10 and 100 signals/second; the executor runs in this process on a paper broker wrapped to stamp the
moment ``place_limit_order`` is called. Reported per watch mode (events, poll) as p50/p99 in milliseconds.
Vault: grant+fill+release cycles on the pure ledger, and the same through the fsynced journal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.journal import Journal  # noqa: E402
from settings.config import GridbridgeConfig  # noqa: E402
from shared_schema.atomic_io import atomic_write_model  # noqa: E402
from shared_schema.clock import ManualClock  # noqa: E402
from shared_schema.models import QUOTE_FILE, Signal  # noqa: E402
from shared_schema.signal_io import update_signal_file  # noqa: E402
from tests.kit.stubs import SESSION_TIME, make_quote_file  # noqa: E402
from windows.brokers.paper import PaperBroker  # noqa: E402
from windows.executor import Executor, build_vault  # noqa: E402
from windows.executor_state import ExecutorState  # noqa: E402


class StampingBroker(PaperBroker):
    """The paper venue, plus the perf_counter of every placement."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.placed_at: dict[str, float] = {}

    def place_limit_order(self, request):  # type: ignore[no-untyped-def]
        self.placed_at[request.client_order_id] = time.perf_counter()
        return super().place_limit_order(request)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_latency(mode: str, rate: float, duration: float) -> dict:
    config = GridbridgeConfig.model_validate(
        {
            "paper": {"initial_cash": "100000000", "initial_positions": {"512890.SH": 10_000_000}},
            "vault": {
                "physical_pool": "100000000",
                "nominal_caps": {"512890.SH": "100000000", "159201.SZ": "100000000"},
            },
            "executor": {"poll_interval_s": 0.01, "max_order_age_s": 1e9, "max_orders_per_s": 1e6, "order_burst": 1000000},
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        shared, state = Path(tmp) / "shared", Path(tmp) / "state"
        shared.mkdir()
        atomic_write_model(shared / QUOTE_FILE, make_quote_file(prices={"512890.SH": 1.1, "159201.SZ": 1.3}))
        broker = StampingBroker(state / "paper", config.paper)
        executor = Executor(
            shared, state, config, broker, wall_clock=ManualClock(SESSION_TIME), watch_mode=mode
        )  # type: ignore[arg-type]
        executor.start()
        stop = threading.Event()
        loop = threading.Thread(target=executor.run, kwargs={"stop_flag": stop}, daemon=True)
        loop.start()
        written: dict[str, float] = {}
        n = int(rate * duration)
        interval = 1.0 / rate
        start = time.perf_counter()
        for i in range(n):
            target = start + i * interval
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sig = Signal(
                signal_id=f"L{i}",
                code="512890.SH",
                direction="BUY",
                price=Decimal("1.100"),
                shares=100,
                layer_index=1,
                created_at=SESSION_TIME + timedelta(seconds=1),
            )
            # Stamped before the write starts, so the figure includes the writer's own atomic replace.
            written[sig.signal_id] = time.perf_counter()
            # Prune what the executor already placed so the file stays the size a node keeps it at.
            update_signal_file(
                shared, SESSION_TIME, add=[sig], keep=lambda e: e.get("signal_id") not in broker.placed_at
            )
        deadline = time.perf_counter() + 10
        while len(broker.placed_at) < n and time.perf_counter() < deadline:
            time.sleep(0.01)
        stop.set()
        loop.join(timeout=5)
        executor.stop()
    lat = [(broker.placed_at[k] - written[k]) * 1000 for k in written if k in broker.placed_at]
    return {
        "mode": mode,
        "rate_per_s": rate,
        "duration_s": duration,
        "signals": n,
        "placed": len(lat),
        "p50_ms": round(percentile(lat, 0.5), 2) if lat else None,
        "p99_ms": round(percentile(lat, 0.99), 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


def bench_throughput(n: int, max_orders_per_s: float) -> dict:
    """``n`` signals in one file; wall seconds until all reached the venue, with the rate limiter at ``max_orders_per_s``."""
    config = GridbridgeConfig.model_validate(
        {"paper": {"initial_cash": "100000000", "initial_positions": {"512890.SH": 10_000_000}},
         "vault": {"physical_pool": "100000000", "nominal_caps": {"512890.SH": "100000000", "159201.SZ": "100000000"}},
         "executor": {"poll_interval_s": 0.01, "max_order_age_s": 1e9, "max_orders_per_s": max_orders_per_s,
                      "order_burst": max(1, int(max_orders_per_s))}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        shared, state = Path(tmp) / "shared", Path(tmp) / "state"
        shared.mkdir()
        atomic_write_model(shared / QUOTE_FILE, make_quote_file(prices={"512890.SH": 1.1, "159201.SZ": 1.3}))
        broker = StampingBroker(state / "paper", config.paper)
        executor = Executor(shared, state, config, broker, wall_clock=SystemClockAt(), watch_mode="poll")
        executor.start()
        signals = [Signal(signal_id=f"T{i}", code="512890.SH", direction="BUY", price=Decimal("1.100"), shares=100,
                          layer_index=1, created_at=SESSION_TIME) for i in range(n)]
        update_signal_file(shared, SESSION_TIME, add=signals)
        t0 = time.perf_counter()
        while len(broker.placed_at) < n and time.perf_counter() - t0 < 120:
            executor.run_once()
        elapsed = time.perf_counter() - t0
        executor.stop()
    return {"signals": n, "max_orders_per_s": max_orders_per_s, "placed": len(broker.placed_at),
            "seconds": round(elapsed, 3), "signals_per_s": round(len(broker.placed_at) / elapsed, 1)}


class SystemClockAt:
    """Wall time for the rate limiter, but a market-hours date so session checks pass."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def now(self):  # type: ignore[no-untyped-def]
        return SESSION_TIME + timedelta(seconds=time.monotonic() - self.start)


def bench_vault(cycles: int, fsync: bool | None) -> dict:
    """Grant, fill, sell-release cycles; ``fsync=None`` is the pure ledger without a journal."""
    config = GridbridgeConfig.model_validate(
        {"vault": {"physical_pool": "1000000000000", "nominal_caps": {"512890.SH": "1000000000000"}}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        state = ExecutorState(build_vault(config))
        vault = state.vault
        journal = Journal(Path(tmp) / "j.jsonl", fsync=bool(fsync)) if fsync is not None else None
        t0 = time.perf_counter()
        for i in range(cycles):
            ops = [
                {"k": "vault", "op": "grant", "coid": f"b{i}"},
                {"k": "vault", "op": "fill", "coid": f"b{i}"},
                {"k": "vault", "op": "release", "coid": f"b{i}"},
            ]
            for op in ops:
                if journal is not None:
                    journal.append(op)
            vault.request_allocation("512890.SH", 110000, 1, f"b{i}", 1000)
            vault.on_fill("512890.SH", f"b{i}", 1000, 110000, 11)
            vault.apply_sell_fill("512890.SH", f"s{i}", [f"b{i}"], 1000, 1000, 111000, 11)
        elapsed = time.perf_counter() - t0
        if journal is not None:
            journal.close()
    label = "pure ledger" if fsync is None else ("journal+fsync" if fsync else "journal, no fsync")
    return {"variant": label, "cycles": cycles, "ops": cycles * 3, "ops_per_s": round(cycles * 3 / elapsed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per latency run (60 for the full figure)"
    )
    parser.add_argument("--rates", default="1,10,100")
    parser.add_argument("--modes", default="events,poll")
    parser.add_argument("--vault-cycles", type=int, default=2000)
    parser.add_argument("--throughput-signals", type=int, default=2000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report: dict = {"latency": [], "vault": []}
    for mode in args.modes.split(","):
        for rate in [float(r) for r in args.rates.split(",")]:
            row = bench_latency(mode, rate, args.duration)
            report["latency"].append(row)
            print(json.dumps(row))
    report["throughput"] = []
    for limit in (1e6, 20.0):
        row = bench_throughput(args.throughput_signals if limit > 100 else 200, limit)
        report["throughput"].append(row)
        print(json.dumps(row))
    for fsync in (None, False, True):
        row = bench_vault(args.vault_cycles if fsync else args.vault_cycles * 10, fsync)
        report["vault"].append(row)
        print(json.dumps(row))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
