"""``gridbridge crypto carry``: bootstrap, dry-run, run, close-all, status, backtest.

    carry backtest --tape F [--tape G] --out DIR [--config C] [--no-topups]
    carry dry-run --days N [--config C] [--state DIR] [--seed S] [--scenario calm|trend|crash|squeeze]
                  [--tape F] [--no-topups] [--gate]
    carry bootstrap --config C [--state DIR] [--offline]
    carry run --config C [--state DIR]
    carry close-all --config C [--state DIR]
    carry status [--state DIR]

Exit codes: 0 ok, 1 refused (bootstrap) or gate FAIL, 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from crypto.carry.config import CarryConfig, CarryConfigError, load_config, write_config

# The carry gate: the crypto preset with activity floors a hold strategy can meet honestly. Carry trades
# rarely (an open and a close per month is normal), so the fill floor is 0; the engine must still show it
# is alive: at least 2 accepted signals a day (each funding settlement it books or each open it decides).
CARRY_GATE_OVERRIDES: dict[str, Any] = {"min_signals_per_day": "2", "min_fills_per_day": "0"}


def _config(args: argparse.Namespace) -> CarryConfig:
    cfg = load_config(args.config) if getattr(args, "config", None) else CarryConfig()
    if getattr(args, "no_topups", False):
        cfg = cfg.model_copy(update={"risk": cfg.risk.model_copy(update={"topups_enabled": False})})
    return cfg


def cmd_backtest(args: argparse.Namespace) -> int:
    from core.audit import AuditWriter
    from crypto.carry.backtest import result_json, run_backtest
    from crypto.carry.report import write_report
    from crypto.carry.tape import load

    cfg = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, summary = [], []
    for path in args.tape:
        tape = load(path)
        t0 = time.perf_counter()
        result = run_backtest(tape, cfg, audit=True)
        seconds = time.perf_counter() - t0
        sub = out / Path(path).stem
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "result.json").write_text(result_json(result))
        audit_path = sub / "audit.jsonl"
        audit_path.unlink(missing_ok=True)
        writer = AuditWriter(audit_path, fsync=False)
        writer.extend(result.events)
        writer.close()
        m = dict(result.metrics, run_seconds=round(seconds, 3), tape=str(path))
        summary.append(m)
        results.append(result)
        print(f"{path}: {m['regime']} {m['days']} d  net {m['net_pnl']} USDT  APR {m['apr']:.2%}  "
              f"maxDD {m['max_drawdown']:.2%}  funding {Decimal(m['funding_received']):.2f}  "
              f"fees {Decimal(m['fees_paid']):.2f}  trades {m['trades']}  in market {m['time_in_market']:.1%}  "
              f"liquidations {m['liquidations']}  top-ups {m['topups']}  min liq dist {m['min_liq_distance']}  "
              f"naked {m['worst_naked_exposure']}  ({seconds:.3f} s)")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "gate_carry.json").write_text(json.dumps(CARRY_GATE_OVERRIDES, indent=2))
    page = write_report(results, out)
    print(f"report: {page}")
    return 0


def _gate(audit: Path, t_from_ms: int, t_to_ms: int, out_dir: Path, run_mode: str) -> int:
    from core.gate_cli import main as gate_main
    from crypto.carry.machine import ms_to_dt

    cfg_path = out_dir / "gate_carry.json"
    cfg_path.write_text(json.dumps(CARRY_GATE_OVERRIDES, indent=2))
    return gate_main(["--audit", str(audit), "--from", ms_to_dt(t_from_ms).isoformat(),
                      "--to", (ms_to_dt(t_to_ms) + timedelta(seconds=1)).isoformat(), "--preset", "crypto",
                      "--gate-config", str(cfg_path), "--stage", "run", "--run-mode", run_mode,
                      "--out-json", str(out_dir / "gate.json"), "--out-md", str(out_dir / "gate.md")])


def cmd_dry_run(args: argparse.Namespace) -> int:
    """The whole engine against the local exchange's model, in process, on a fast (manual) clock."""
    from crypto.carry.notify import LogSink
    from crypto.carry.shell import CarryEngine
    from crypto.fakex.direct_venue import DirectVenue
    from crypto.fakex.engine.exchange import Exchange

    cfg = _config(args)
    state = Path(args.state)
    if state.exists() and any(state.iterdir()) and not args.resume:
        print(f"dry-run: {state} is not empty (use --resume or another --state)", file=sys.stderr)
        return 2
    tape = None
    start_ms = None
    if args.tape:
        from crypto.carry.tape import load

        tape = load(args.tape)
        start_ms = int(tape.ts_ms[0])
    balances = {"trading": {"USDT": cfg.strategy.capital_usdt * (1 - cfg.strategy.reserve_fraction)
                            * len(cfg.instruments.pairs)},
                "funding": {"USDT": cfg.strategy.capital_usdt * cfg.strategy.reserve_fraction
                            * len(cfg.instruments.pairs)}}
    kwargs: dict[str, Any] = {"seed": args.seed, "scenario": args.scenario, "balances": balances}
    if start_ms is not None:
        kwargs["start_ms"] = start_ms
    server = None
    step = cfg.strategy.scan_ms
    if args.http:
        # The wire path: the fake's OKX v5 server on loopback, the unmodified ccxt okx class in front.
        from crypto.fakex.server import FakeExchange
        from crypto.venue.factory import VenueCredentials, make_venue

        server = FakeExchange.start(**kwargs)
        x = server.exchange
        c = server.credentials
        venue: Any = make_venue("okx-fake", server.url, VenueCredentials(api_key=c.api_key, secret=c.secret,
                                                                          passphrase=c.passphrase))
        fx = server

        def advance(ms: int) -> None:
            # The fake's rate limits count wall time (OKX: 10 balance or position reads per 2 s): give each
            # model step a little of it so a fast dry run stays under them.
            fx.advance(ms)
            time.sleep(0.25 if ms >= step else 0.02)
    else:
        x = Exchange.create(**kwargs)
        venue = DirectVenue(x)
        advance = x.clock.advance  # type: ignore[attr-defined]
    engine = CarryEngine(venue, cfg, state, notifier=LogSink(), clock=x, wait=advance, fsync=False)
    t_start = x.now_ms()
    end = t_start + args.days * 86_400_000
    wall = time.perf_counter()
    perp_ids = {p.symbol: p.venue_id for p in cfg.instruments.pairs}
    try:
        while x.now_ms() < end:
            if tape is not None:
                _drive_from_tape(x, tape, perp_ids)
            engine.step()
            advance(step)
        status = engine.status()
        engine.shutdown()
    finally:
        if server is not None:
            server.stop()
    print(json.dumps({"days": args.days, "wall_seconds": round(time.perf_counter() - wall, 2), **status},
                     indent=2, default=str))
    if args.gate:
        return _gate(state / "audit.jsonl", t_start, x.now_ms(), state, "dry-run")
    return 0


def _drive_from_tape(x: Any, tape: Any, perp_ids: dict[str, str]) -> None:
    """Before a step: the fake's price follows the tape's perp mark, its coming funding the tape's rate."""
    import numpy as np

    now = x.now_ms()
    i = tape.minute_index(now)
    for venue_id in perp_ids.values():
        x.set_price(venue_id, tape.price(tape.mark_ticks[i]))
        k = int(np.searchsorted(tape.funding_ts_ms, now, side="right"))
        if k < tape.funding_ts_ms.size:
            x.set_funding_rate(venue_id, tape.rate(k))


def _make_live_venue(cfg: CarryConfig) -> Any:
    from crypto.venue.factory import VenueCredentials, make_venue

    creds = VenueCredentials.from_env(cfg.account.credentials_prefix)
    return make_venue(cfg.account.venue, cfg.account.base_url, creds)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Refuse to start unless the config is complete, the keys are present, the last exit was clean; show
    leftover positions (and refuse when the journal does not account for them)."""
    import os

    from crypto.carry.shell import read_journal

    problems: list[str] = []
    report: dict[str, Any] = {}
    try:
        cfg = load_config(args.config, require_all=True)
        report["config"] = "complete"
    except CarryConfigError as exc:
        print(json.dumps({"ok": False, "problems": [f"{exc.code}: {exc}"]}, indent=2))
        return 1
    prefix = cfg.account.credentials_prefix
    missing = [f"{prefix}_{k}" for k in ("API_KEY", "SECRET", "PASSPHRASE") if not os.environ.get(f"{prefix}_{k}")]
    if missing:
        problems.append(f"KEYS_MISSING: {', '.join(missing)}")
    state = Path(args.state or cfg.account.state_dir)
    journal = read_journal(state)
    report["last_exit_clean"] = journal["last_exit_clean"]
    if not journal["last_exit_clean"]:
        problems.append("LAST_EXIT_UNCLEAN: the previous run did not exit cleanly; check the venue, then "
                        "`carry close-all` or reset")
    report["journal_pairs"] = journal["pairs"]
    if not args.offline and not missing:
        try:
            venue = _make_live_venue(cfg)
            leftovers = []
            for p in cfg.instruments.pairs:
                for pos in venue.positions([p.symbol]):
                    leftovers.append({"symbol": pos.symbol, "qty": str(pos.qty), "margin_mode": pos.margin_mode,
                                      "entry": str(pos.entry_price), "liq_price": str(pos.liq_price)})
                    known = journal["pairs"].get(p.symbol, {}).get("book", {}).get("short_qty", "0")
                    if Decimal(known) != -pos.qty:
                        problems.append(f"LEFTOVER_POSITION: {pos.symbol} {pos.qty} not in the journal")
            report["leftover_positions"] = leftovers
        except Exception as exc:  # noqa: BLE001 - any venue failure refuses the start, reported
            problems.append(f"VENUE_UNREACHABLE: {exc}")
    report["ok"] = not problems
    report["problems"] = problems
    print(json.dumps(report, indent=2, default=str))
    return 0 if not problems else 1


def cmd_run(args: argparse.Namespace) -> int:
    import signal

    from crypto.carry.notify import FanOut, LogSink, WebhookSink
    from crypto.carry.shell import CarryEngine

    cfg = _config(args)
    venue = _make_live_venue(cfg)
    sinks: list[Any] = [LogSink()]
    if cfg.account.webhook_url:
        sinks.append(WebhookSink(cfg.account.webhook_url))
    clock = SyncedClock(venue)
    engine = CarryEngine(venue, cfg, Path(args.state or cfg.account.state_dir), notifier=FanOut(sinks),
                         clock=clock, wait=lambda ms: time.sleep(ms / 1000))
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"]:
        clock.sync()
        engine.step()
        time.sleep(min(cfg.strategy.scan_ms / 1000, args.poll_s))
    engine.shutdown()  # positions stay; the next bootstrap shows them
    return 0


class SyncedClock:
    """The venue's time without a request per reading: synced to the venue's clock at each step, wall time
    elapsed added in between (a real venue's clock runs with the wall; a sped-up fake drifts only within a
    step)."""

    def __init__(self, venue: Any) -> None:
        self.venue = venue
        self._base_venue = 0
        self._base_wall = 0.0
        self.sync()

    def sync(self) -> None:
        self._base_venue = int(self.venue.now_ms())
        self._base_wall = time.monotonic()

    def now_ms(self) -> int:
        return self._base_venue + int((time.monotonic() - self._base_wall) * 1000)


def cmd_close_all(args: argparse.Namespace) -> int:
    from crypto.carry.shell import CarryEngine

    cfg = _config(args)
    venue = _make_live_venue(cfg)
    engine = CarryEngine(venue, cfg, Path(args.state or cfg.account.state_dir), clock=SyncedClock(venue),
                         wait=lambda ms: time.sleep(ms / 1000))
    engine.close_all("operator close-all")
    status = engine.status()
    engine.shutdown()
    print(json.dumps(status, indent=2, default=str))
    stuck = [s for s, p in status["pairs"].items() if p["state"] != "STOPPED"]
    return 1 if stuck else 0


def cmd_status(args: argparse.Namespace) -> int:
    from crypto.carry.shell import read_journal

    print(json.dumps(read_journal(Path(args.state)), indent=2, default=str))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    write_config(CarryConfig(), Path(args.out))
    print(f"wrote the four sections to {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbridge crypto carry")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("backtest", help="backtest on funding tapes (same decisions as the engine)")
    b.add_argument("--tape", action="append", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--config")
    b.add_argument("--no-topups", action="store_true")
    d = sub.add_parser("dry-run", help="the whole engine against the local exchange, fast clock")
    d.add_argument("--days", type=float, required=True)
    d.add_argument("--config")
    d.add_argument("--state", default="state/carry-dry-run")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--scenario", default="calm", choices=["calm", "trend", "crash", "squeeze"])
    d.add_argument("--tape", help="drive the fake's price and funding from a funding tape")
    d.add_argument("--no-topups", action="store_true")
    d.add_argument("--gate", action="store_true", help="run the carry gate over the dry run's audit")
    d.add_argument("--resume", action="store_true")
    d.add_argument("--http", action="store_true",
                   help="through the fake's OKX HTTP server and ccxt (slower) instead of the in-process model")
    s = sub.add_parser("bootstrap", help="check config, keys, last exit and leftover positions")
    s.add_argument("--config", required=True)
    s.add_argument("--state")
    s.add_argument("--offline", action="store_true", help="do not contact the venue")
    r = sub.add_parser("run", help="the engine against the configured venue (wall clock)")
    r.add_argument("--config", required=True)
    r.add_argument("--state")
    r.add_argument("--poll-s", type=float, default=5.0, help="wall seconds between steps (tasks run when due)")
    c = sub.add_parser("close-all", help="economic full close of every pair (dust aside), then STOPPED")
    c.add_argument("--config", required=True)
    c.add_argument("--state")
    st = sub.add_parser("status", help="pairs, states, books and breaker from the journal")
    st.add_argument("--state", default="state/carry")
    i = sub.add_parser("init", help="write a default config (four section files)")
    i.add_argument("--out", required=True)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "days", 1) is not None and getattr(args, "days", 1) <= 0:
        print("--days must be > 0", file=sys.stderr)
        return 2
    handler = {"backtest": cmd_backtest, "dry-run": cmd_dry_run, "bootstrap": cmd_bootstrap, "run": cmd_run,
               "close-all": cmd_close_all, "status": cmd_status, "init": cmd_init}[args.cmd]
    try:
        return handler(args)
    except CarryConfigError as exc:
        print(f"carry: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from crypto.carry.shell import EngineFault

        if isinstance(exc, EngineFault) and "GRID_LAYER_BACKTEST_ONLY" in str(exc):
            print(f"carry: {exc}", file=sys.stderr)
            return 2
        from crypto.carry.tape import TapeError

        if isinstance(exc, TapeError):
            print(f"carry: {exc}", file=sys.stderr)
            return 2
        raise

