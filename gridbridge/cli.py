"""``gridbridge``: one command for both machines (argparse; each subcommand is a thin shell)."""

from __future__ import annotations

import argparse
import json
import logging
import signal as os_signal
import sys
import threading
import uuid
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from filelock import Timeout

from settings.config import ConfigError, ExecutorConfig, GridbridgeConfig, load_config
from shared_schema.atomic_io import ModelFileReader
from shared_schema.clock import SystemClock
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    SHARED_FILES,
    SIGNAL_FILE,
    PoolFile,
    QuoteFile,
    ResultFile,
    Signal,
)
from shared_schema.signal_io import SignalFileCorrupt, update_signal_file


def _config(args: argparse.Namespace) -> GridbridgeConfig:
    return load_config(Path(args.config) if getattr(args, "config", None) else None)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


# ------------------------------------------------------------------------------------------- executor


def cmd_executor(args: argparse.Namespace) -> int:
    from windows.brokers.factory import make_broker
    from windows.executor import AlreadyRunning, Executor, default_state_dir
    from windows.lease import EXIT_LEASE_HELD, LeaseLost, LeaseRefused

    config = _config(args)
    shared = Path(args.shared_dir)
    state_dir = Path(args.state_dir) if args.state_dir else default_state_dir(shared)
    broker = make_broker(args.broker, config, shared, state_dir)
    executor = Executor(shared, state_dir, config, broker, watch_mode=args.watch)
    try:
        executor.start(take_over=args.take_over)
    except AlreadyRunning as exc:
        print(f"gridbridge executor: {exc}", file=sys.stderr)
        return 3
    except LeaseRefused as exc:
        print(f"gridbridge executor: refusing to start: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(os_signal, name):
            os_signal.signal(getattr(os_signal, name), lambda *_: stop.set())
    http = _start_control_doors(executor, config)
    try:
        executor.run(max_seconds=args.max_seconds, stop_flag=stop)
    except LeaseLost as exc:
        print(f"gridbridge executor: stopped trading: {exc}", file=sys.stderr)
        return EXIT_LEASE_HELD
    finally:
        if http is not None:
            http.stop()
        executor.stop()
    return 0


def _start_control_doors(executor, config: GridbridgeConfig):  # type: ignore[no-untyped-def]
    """SIGUSR1 = Force Halt where the OS has it; the HTTP API when a port and a token are configured."""
    import os

    from core.control.http_door import ControlHttpServer, token_from_env
    from core.control.signal_door import install_sigusr1_halt

    clock = SystemClock()
    install_sigusr1_halt(executor.risk.commands, clock.now)
    port = config.executor.control_http_port
    if port is None:
        return None
    token = token_from_env(os.environ)
    if not token:
        logging.getLogger("gridbridge").error("control_http_port is set but GRIDBRIDGE_CONTROL_TOKEN is not: HTTP door stays closed")
        return None
    server = ControlHttpServer(executor.risk.commands, token, clock.now, host=config.executor.control_http_host, port=port)
    host, bound = server.start()
    logging.getLogger("gridbridge").info("control API on http://%s:%d", host, bound)
    return server


# ------------------------------------------------------------------------------------------- producer


def cmd_producer(args: argparse.Namespace) -> int:
    from marketdata.bars import load_bars
    from windows.brokers.paper import ACCOUNT_VIEW_FILE
    from windows.producer import BarReplaySource, PaperAccountSource, Producer, iter_codes

    config = _config(args)
    shared = Path(args.shared_dir)
    if args.broker != "paper":
        print("gridbridge producer: only --broker paper replays bar files", file=sys.stderr)
        return 2
    if not args.bars:
        print("gridbridge producer: --bars CODE=CSV is required in paper mode", file=sys.stderr)
        return 2
    bars = {code: load_bars(path) for code, path in iter_codes(args.bars)}
    source = BarReplaySource(bars)
    resume_at = _last_quote_ms(shared)
    if resume_at is not None and not args.from_start:
        skipped = source.resume_after(resume_at)
        logging.getLogger("gridbridge.producer").info("resuming after %d bars already published", skipped)
    producer = Producer(shared, source, PaperAccountSource(shared / ACCOUNT_VIEW_FILE, config))
    count = producer.run(args.speed, args.max_bars)
    print(json.dumps({"bars_published": count, "write_failures": producer.write_failures}))
    return 0


def _last_quote_ms(shared: Path) -> int | None:
    """The newest quote time already published (a restarted replay continues after it)."""
    from shared_schema.types import datetime_to_ms

    model = ModelFileReader(shared / QUOTE_FILE, QuoteFile).read().model
    if model is None or not model.quotes:
        return None
    return max(datetime_to_ms(q.quote_time) for q in model.quotes.values())


# --------------------------------------------------------------------------------------------- signal


MANUAL_SIGNAL_EXPIRY_S = ExecutorConfig().max_signal_age_s
"""``gridbridge signal`` without ``--expires-in`` (and without ``--config``): the signal expires this many market
seconds after it is made, the executor's default maximum signal age."""
MAX_MANUAL_EXPIRY_S = 86_400.0


def cmd_signal(args: argparse.Namespace) -> int:
    clock = SystemClock()
    shared = Path(args.shared_dir)
    # Stamp with the market clock (the newest quote) when there is one, as a node does.
    quotes = ModelFileReader(shared / QUOTE_FILE, QuoteFile).read().model
    stamp = max((q.quote_time for q in quotes.quotes.values()), default=None) if quotes else None
    now = stamp or clock.now()
    try:
        price = Decimal(args.price)
    except InvalidOperation:
        print(f"gridbridge signal: price {args.price!r} is not a number", file=sys.stderr)
        return 2
    signal_id = args.signal_id or f"M{uuid.uuid4().hex[:15]}"
    payload = {
        "signal_id": signal_id,
        "code": args.code,
        "direction": args.direction.upper(),
        "price": price,
        "shares": args.shares,
        "layer_index": args.layer_index,
        "release_client_order_ids": args.release or [],
        "created_at": now,
        "source": "manual",
    }
    if args.client_order_id:
        payload["client_order_id"] = args.client_order_id
    # A manual signal always carries its own expiry (default: the executor's maximum signal age), so one
    # left in the file while the executor is down is never placed at a later day's prices.
    default_expiry = _config(args).executor.max_signal_age_s if args.config else MANUAL_SIGNAL_EXPIRY_S
    expires_in = default_expiry if args.expires_in is None else args.expires_in
    if not (0 < expires_in <= MAX_MANUAL_EXPIRY_S):
        print(f"gridbridge signal: --expires-in must be in (0, {MAX_MANUAL_EXPIRY_S:.0f}] seconds", file=sys.stderr)
        return 2
    payload["expires_at"] = now + timedelta(seconds=expires_in)
    try:
        signal = Signal.model_validate(payload)
    except ValueError as exc:
        print(f"gridbridge signal: invalid signal: {exc}", file=sys.stderr)
        return 2
    try:
        update_signal_file(shared, clock.now(), add=[signal])
    except (SignalFileCorrupt, OSError) as exc:  # SignalWriteRefused, WriteFailed: odd files, links, a full disk
        print(f"gridbridge signal: nothing written: {exc}", file=sys.stderr)
        return 2
    except Timeout:
        print(f"gridbridge signal: nothing written: another writer holds {SIGNAL_FILE}'s lock; try again",
              file=sys.stderr)
        return 2
    print(json.dumps({"signal_id": signal.signal_id, "client_order_id": signal.client_order_id}))
    return 0


# --------------------------------------------------------------------------------------------- status


def cmd_status(args: argparse.Namespace) -> int:
    shared = Path(args.shared_dir)
    pool = ModelFileReader(shared / POOL_FILE, PoolFile).read()
    results = ModelFileReader(shared / RESULT_FILE, ResultFile).read()
    status: dict = {"pool": None, "results": None}
    from shared_schema.lease import lease_view

    owner = lease_view(shared, SystemClock().now())
    status["executor"] = {"state": owner.state, "owner": owner.owner, "text": owner.text,
                          "heartbeat_age_s": owner.heartbeat_age_s, "disabled_doors": list(owner.disabled_doors)}
    if pool.model is not None:
        p = pool.model
        status["pool"] = {
            "physical_pool": float(p.physical_pool),
            "utilization": p.utilization,
            "used": {"159201.SZ": float(p.used_159201), "512890.SH": float(p.used_512890)},
            "frozen": {"159201.SZ": float(p.frozen_159201), "512890.SH": float(p.frozen_512890)},
            "acc_alpha": {"159201.SZ": float(p.acc_alpha_159201), "512890.SH": float(p.acc_alpha_512890)},
            "risk_state": p.risk_state,
            "halted": p.halted,
            "seq": p.seq,
        }
    else:
        status["pool_problem"] = pool.error or "missing"
    if results.model is not None:
        r = results.model
        last = sorted(r.results.values(), key=lambda x: (x.updated_at is None, x.updated_at))[-args.last :]
        status["open_orders"] = r.open_orders
        status["open"] = [
            {"signal_id": x.signal_id, "client_order_id": x.client_order_id, "code": x.code,
             "direction": x.direction.value if x.direction else None, "status": x.status.value,
             "requested": x.requested_shares, "filled": x.filled_shares, "broker_order_id": x.broker_order_id}
            for x in r.results.values() if not x.status.is_final
        ]
        status["results"] = [
            {"signal_id": x.signal_id, "code": x.code, "direction": x.direction.value if x.direction else None, "status": x.status.value,
             "reason": x.reason.value if x.reason else None, "filled": x.filled_shares, "message": x.message}
            for x in last
        ]
        status["alerts"] = r.alerts[-5:]
    else:
        status["results_problem"] = results.error or "missing"
    if args.json:
        print(json.dumps(status, default=str, indent=1))
    else:
        _print_status(status)
    return 0


def _print_status(status: dict) -> None:
    executor = status.get("executor") or {}
    print(f"{executor.get('text', '')}")
    for door in executor.get("disabled_doors", []):
        print(f"  control door OFF: {door}")
    pool = status.get("pool")
    if pool:
        print(f"pool {pool['physical_pool']:,.2f}  utilisation {pool['utilization']:.2%}  "
              f"risk {pool['risk_state']}{'  HALTED' if pool['halted'] else ''}")
        for code in ("159201.SZ", "512890.SH"):
            print(f"  {code}: used {pool['used'][code]:>12,.2f}  frozen {pool['frozen'][code]:>12,.2f}  "
                  f"alpha {pool['acc_alpha'][code]:>10,.2f}")
    else:
        print(f"pool: {status.get('pool_problem')}")
    if status.get("results") is not None:
        print(f"open orders: {status['open_orders']}")
        for o in status["open"]:
            print(f"  {o['client_order_id']:<20} {o['code']:<10} {str(o['direction'] or ''):<4} {o['status']:<9} "
                  f"filled {o['filled']}/{o['requested']}  broker id {o['broker_order_id'] or '-'}")
        print("last results:")
        for r in status["results"]:
            print(f"  {r['signal_id']:<20} {r['code']:<10} {str(r['direction'] or ''):<4} {r['status']:<9} "
                  f"{r['reason'] or '':<22} filled {r['filled']}")
        for alert in status.get("alerts", []):
            print(f"  alert: {alert}")
    else:
        print(f"results: {status.get('results_problem')}")


# ----------------------------------------------------------------------------------------------- node


def cmd_node(args: argparse.Namespace) -> int:
    from mac.node import StrategyNode, grid_params_from_config, node_settings_from_config

    config = _config(args)
    codes = list(config.codes) if args.symbol == "all" else [args.symbol]
    unknown = [c for c in codes if c not in config.codes]
    if unknown:
        print(f"gridbridge node: unknown symbol(s) {unknown}; choose from {list(config.codes)} or all", file=sys.stderr)
        return 2
    params = grid_params_from_config(config, codes)
    settings = node_settings_from_config(config)
    node = StrategyNode(Path(args.shared_dir), params, settings, watch_mode=args.watch,
                        poll_interval=config.node.poll_interval_s)
    stop = threading.Event()
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(os_signal, name):
            os_signal.signal(getattr(os_signal, name), lambda *_: stop.set())
    node.start()
    try:
        node.run(max_seconds=args.max_seconds, stop_flag=stop)
    finally:
        node.stop()
    return 0


def cmd_dry_run(args: argparse.Namespace) -> int:
    from gridbridge.dryrun import DryRunError, DryRunOptions, print_summary, run_dry_run

    try:
        summary = run_dry_run(DryRunOptions(
            shared_dir=Path(args.shared_dir) if args.shared_dir else None, days=args.days, speed=args.speed,
            seed=args.seed, base_config=Path(args.config) if args.config else None, physical_pool=args.pool,
        ))
    except DryRunError as exc:
        print(f"gridbridge dry-run: {exc}", file=sys.stderr)
        return 2
    print_summary(summary, as_json=args.json)
    return 0 if summary["ok"] else 1


# -------------------------------------------------------------------------------------- control/gate


CONTROL_ACTIONS = {"halt": "FORCE_HALT", "reduce": "FORCE_REDUCE", "reset-fuse": "RESET_FUSE",
                   "unlock": "FORCE_UNLOCK_SYMBOL", "resume": "RESUME"}


def cmd_control(args: argparse.Namespace) -> int:
    import os
    from datetime import timedelta

    from core.control.commands import ControlAction, new_command, secret_from_env, sign_command
    from core.control.file_door import write_command_file

    secret = secret_from_env(os.environ)
    if secret is None:
        print("gridbridge control: set GRIDBRIDGE_CONTROL_SECRET (the secret the executor shares)", file=sys.stderr)
        return 2
    if args.action == "unlock" and not args.symbol:
        print("gridbridge control unlock: a SYMBOL is required", file=sys.stderr)
        return 2
    cap = _config(args).executor.control_max_ttl_s
    if not 0 < args.ttl <= cap:
        print(f"gridbridge control: --ttl {args.ttl:g} s is outside (0, {cap:g}] (executor.control_max_ttl_s); "
              "the executor would refuse it (CONTROL_TTL_TOO_LONG)", file=sys.stderr)
        return 2
    clock = SystemClock()
    command = new_command(ControlAction(CONTROL_ACTIONS[args.action]), args.issuer, clock.now(),
                          ttl=timedelta(seconds=args.ttl), symbol=args.symbol)
    shared = Path(args.shared_dir)
    try:
        path = write_command_file(shared, sign_command(command, secret))
    except OSError as exc:
        print(f"gridbridge control: could not write the command: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"command_id": command.command_id, "action": command.action.value, "file": str(path)}))
    if args.wait <= 0:
        print("gridbridge control: not waiting for the acknowledgement (--wait 0)", file=sys.stderr)
        return 0
    return _wait_for_ack(shared, command.command_id, args.wait, clock)


def _wait_for_ack(shared: Path, command_id: str, wait_s: float, clock: SystemClock) -> int:
    """Poll ``control_ack/`` for the executor's answer: 0 accepted, 1 refused, 3 not acknowledged in time."""
    import time

    from core.control.file_door import read_ack
    from shared_schema.lease import lease_view

    deadline = time.monotonic() + wait_s
    while True:
        ack = read_ack(shared, command_id)
        if ack is not None:
            print(json.dumps(ack))
            if ack.get("accepted") is True:
                return 0
            print(f"gridbridge control: REFUSED by the executor: {ack.get('reason')} {ack.get('detail') or ''}".rstrip(),
                  file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    owner = lease_view(shared, clock.now())
    why = owner.text if owner.state == "LIVE" else f"no executor is running on this folder? ({owner.text})"
    print(f"gridbridge control: not acknowledged within {wait_s:g} s; {why}. The command file stays in control/ "
          "and is handled if an executor picks it up before it expires.", file=sys.stderr)
    return 3


def cmd_deploy(args: argparse.Namespace) -> int:
    from gridbridge.deploy import deploy

    record = deploy(Path(args.deploy_dir), Path(args.config), args.version, args.strategy_version or "", args.git or "")
    print(json.dumps({"deployed": record.config_version}))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gridbridge.deploy import rollback

    try:
        plan = rollback(Path(args.deploy_dir), Path(args.state_dir), args.reason, SystemClock().now(),
                        timedelta(hours=args.observe_hours), args.observe_as, args.drill)
    except (RuntimeError, ValueError) as exc:
        print(f"gridbridge rollback: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"from": plan.from_version.config_version, "to": plan.to_version.config_version,
                      "risk_state": plan.snapshot.state.value}))
    return 0


# --------------------------------------------------------------------------------------------- schema


def cmd_schema_export(args: argparse.Namespace) -> int:
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, model in {**SHARED_FILES, "config.json": GridbridgeConfig}.items():
        target = out / name.replace(".json", ".schema.json")
        target.write_text(json.dumps(model.model_json_schema(), indent=1, ensure_ascii=False), encoding="utf-8")
        print(target)
    return 0


# ------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridbridge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("executor", help="run the Windows executor (vault + broker)")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--broker", choices=["paper", "xtquant"], default="paper")
    p.add_argument("--config")
    p.add_argument("--state-dir")
    p.add_argument("--watch", choices=["auto", "events", "poll"], default="auto")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--take-over", action="store_true",
                   help="replace a STALE lease of another executor on this shared folder (audited)")
    p.set_defaults(func=cmd_executor)

    p = sub.add_parser("producer", help="publish shared_quote.json")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--broker", choices=["paper", "xtquant"], default="paper")
    p.add_argument("--bars", action="append", metavar="CODE=CSV", help="1-minute bar file to replay (paper)")
    p.add_argument("--speed", type=float, default=60.0, help="replay speed vs real time (0 = as fast as possible)")
    p.add_argument("--max-bars", type=int, default=None)
    p.add_argument("--from-start", action="store_true", help="replay from the first bar even if quotes exist")
    p.add_argument("--config")
    p.set_defaults(func=cmd_producer)

    p = sub.add_parser("signal", help="append one signal to order_signal.json (manual order)")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--code", required=True)
    p.add_argument("--direction", required=True, type=str.upper, choices=["BUY", "SELL"])
    p.add_argument("--price", required=True)
    p.add_argument("--shares", required=True, type=int)
    p.add_argument("--layer-index", type=int, default=0)
    p.add_argument("--release", action="append", metavar="CLIENT_ORDER_ID")
    p.add_argument("--signal-id")
    p.add_argument("--client-order-id")
    p.add_argument("--expires-in", type=float, default=None,
                   help="market seconds until the signal expires (default: the config's executor.max_signal_age_s, "
                        f"{MANUAL_SIGNAL_EXPIRY_S:.0f} without --config)")
    p.add_argument("--config", help="the executor's config file: its max_signal_age_s is the default expiry")
    p.set_defaults(func=cmd_signal)

    p = sub.add_parser("status", help="print pool, frozen/used, open orders and recent results")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--last", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("schema", help="file contract tools")
    schema_sub = p.add_subparsers(dest="schema_command", required=True)
    e = schema_sub.add_parser("export", help="write JSON Schema for every shared file")
    e.add_argument("dir")
    e.set_defaults(func=cmd_schema_export)

    p = sub.add_parser("node", help="run the Mac strategy node(s)")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--symbol", required=True, help="159201.SZ, 512890.SH or all")
    p.add_argument("--config")
    p.add_argument("--watch", choices=["auto", "events", "poll"], default="auto")
    p.add_argument("--max-seconds", type=float, default=None)
    p.set_defaults(func=cmd_node)

    p = sub.add_parser("dry-run", help="producer + executor (paper) + both nodes on generated data")
    p.add_argument("--shared-dir", help="default: a new temp folder")
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--speed", type=float, default=600.0, help="replay speed vs real time")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--config", help="gridbridge config to start from")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--pool", help="physical pool in CNY (default 300000; smaller shows the penalty sooner)")
    p.set_defaults(func=cmd_dry_run)

    p = sub.add_parser("control", help="write a signed kill-switch command for the executor")
    p.add_argument("action", choices=sorted(CONTROL_ACTIONS))
    p.add_argument("symbol", nargs="?")
    p.add_argument("--shared-dir", required=True)
    p.add_argument("--issuer", default="cli")
    p.add_argument("--wait", type=float, default=10.0,
                   help="seconds to wait for the executor's acknowledgement (0: do not wait)")
    p.add_argument("--ttl", type=float, default=600.0, help="seconds the command stays valid")
    p.add_argument("--config", help="to read executor.control_max_ttl_s")
    p.set_defaults(func=cmd_control)

    sub.add_parser("gate", help="release gate over an audit log: gridbridge gate --audit FILE --from T --to T")

    p = sub.add_parser("deploy", help="store a config bundle as a version and make it active")
    p.add_argument("--deploy-dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--strategy-version")
    p.add_argument("--git")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("rollback", help="go back to the previous bundle and hold an observation risk state")
    p.add_argument("--deploy-dir", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--observe-hours", type=float, default=24.0)
    p.add_argument("--observe-as", choices=["DEGRADED", "COOLDOWN"], default="DEGRADED")
    p.add_argument("--drill", action="store_true", help="a rehearsal: recorded as a drill")
    p.set_defaults(func=cmd_rollback)

    from backtest.cli import register as register_backtest
    from mac.dashboard.launch import register as register_dashboard
    from windows.cli_xt import register as register_xt

    register_backtest(sub)
    register_dashboard(sub)
    register_xt(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gate"]:
        # The gate owns its arguments (core.gate_cli); hand them over untouched, --help included.
        from core.gate_cli import main as gate_main

        return gate_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"gridbridge: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
