"""Shell for the gate: read an audit log (every rotated segment of it, then the active file), evaluate,
write JSON and Markdown.

Kept out of ``core.gate`` so the verdict logic stays pure; this module is the IO side, like
``core.audit``. Wire it into the CLI as ``gridbridge gate ...`` -> ``core.gate_cli.main(argv)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from core.audit import ReadStats, read_log_events
from core.gate import (
    GATE_PRESETS,
    GateStage,
    ShadowEvidence,
    VersionSet,
    evaluate_gate,
    gate_config,
    render_json,
    render_markdown,
)
from shared_schema.atomic_io import atomic_write_bytes
from shared_schema.types import CST


def _when(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=CST)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 on PASS, 1 on FAIL, 2 on bad arguments/config."""
    p = argparse.ArgumentParser(prog="gridbridge gate", description="Release gate over an audit log")
    p.add_argument(
        "--audit",
        required=True,
        type=Path,
        help="the active audit file (audit.jsonl); its rotated segments audit.<seq>.<date>.jsonl beside it are "
        "read too, in order. A state folder may be given for its audit.jsonl",
    )
    p.add_argument("--from", dest="ts_from", required=True, type=_when)
    p.add_argument("--to", dest="ts_to", required=True, type=_when)
    p.add_argument("--config-version", default="unknown")
    p.add_argument("--strategy-version", default="unknown")
    p.add_argument("--git", default="unknown")
    p.add_argument(
        "--preset",
        choices=sorted(GATE_PRESETS),
        default="etf",
        help="threshold set to start from: etf (default) or crypto (24/7 calendar, its own activity floors, "
        "rate-limit KRIs); --gate-config fields override it",
    )
    p.add_argument("--gate-config", type=Path, help="JSON file with GateConfig fields (over the preset)")
    p.add_argument(
        "--stage",
        choices=[s.value for s in GateStage],
        default=GateStage.RELEASE.value,
        help="release (default: needs --shadow-report), shadow (this period is the paper/dry-run Shadow "
        "stage) or run (a replay's or dry run's own check, no Shadow step)",
    )
    p.add_argument("--run-mode", default="unknown", help="paper, dry-run, live or backtest (recorded)")
    p.add_argument("--shadow-report", type=Path, help="the Shadow stage's gate JSON (--out-json of it)")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-md", type=Path)
    args = p.parse_args(argv)
    try:
        overrides = json.loads(args.gate_config.read_bytes(), parse_float=Decimal) if args.gate_config else {}
        if not isinstance(overrides, dict):
            raise ValueError("the gate config file must hold a JSON object of GateConfig fields")
        cfg = gate_config(args.preset, overrides)
    except (OSError, ValueError) as exc:
        print(f"gate config: {exc}", file=sys.stderr)
        return 2
    shadow = None
    if args.shadow_report is not None:
        try:
            shadow = ShadowEvidence.from_report(json.loads(args.shadow_report.read_bytes()))
        except (OSError, ValueError) as exc:
            print(f"shadow report: {exc}", file=sys.stderr)
            return 2
    stats = ReadStats()
    audit = args.audit / "audit.jsonl" if args.audit.is_dir() else args.audit
    events = list(read_log_events(audit, args.ts_from, args.ts_to, stats))
    notes = []
    if stats.malformed:
        notes.append(f"{stats.malformed} malformed audit line(s) skipped")
    if stats.torn_tail:
        notes.append("torn last line ignored")
    try:
        report = evaluate_gate(
            events,
            args.ts_from,
            args.ts_to,
            VersionSet(args.config_version, args.strategy_version, args.git),
            cfg,
            notes,
            GateStage(args.stage),
            args.run_mode,
            shadow,
        )
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    md = render_markdown(report)
    if args.out_json:
        atomic_write_bytes(args.out_json, render_json(report).encode("utf-8"))
    if args.out_md:
        atomic_write_bytes(args.out_md, md.encode("utf-8"))
    print(md)
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
