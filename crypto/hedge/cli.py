"""``gridbridge crypto hedge simulate|run``.

simulate: the decision per cumulative fill report (defer with its reason, or the hedge quantity) and the
running hedged total, from the same code as the live strategy. run: the hedge end to end through ccxt
against a venue (``binance-pm-fake`` starts the local exchange's Binance portfolio-margin dialect).
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation

from crypto.hedge.book import quantity_refusal
from crypto.hedge.rules import HedgeFilters


def fmt(value: Decimal | None) -> str | None:
    """Plain notation, no exponent, no trailing zeros (0.0020 -> 0.002, 0E-3 -> 0)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from None
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    # The bounds of an execution report (crypto.hedge.book.quantity_refusal): a 35-digit number would be
    # rounded by Decimal's 28-digit context, and the run would refuse it anyway.
    why = quantity_refusal(abs(value))
    if why is not None:
        raise argparse.ArgumentTypeError(f"{why}: {text!r} (at most 24 digits, 12 decimals, under 1e15)")
    return value


def _fills(text: str) -> list[Decimal]:
    fills = [_decimal(part) for part in text.split(",") if part.strip()]
    if not fills:
        raise argparse.ArgumentTypeError("--fills needs at least one cumulative fill")
    if any(f < 0 for f in fills):
        raise argparse.ArgumentTypeError("fills are cumulative quantities, never negative")
    return fills


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbridge crypto hedge", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("simulate", help="decisions per cumulative fill report, same code as the strategy")
    s.add_argument("--fills", type=_fills, required=True, help="cumulative fills, comma separated (base units)")
    s.add_argument("--step", type=_decimal, required=True, help="UM step size")
    s.add_argument("--min-qty", type=_decimal, required=True, help="UM minQty")
    s.add_argument("--min-notional", type=_decimal, required=True, help="UM minNotional (quote)")
    s.add_argument("--mark", type=_decimal, required=True, help="UM mark price")
    s.add_argument("--side", choices=("buy", "sell"), default="buy", help="the margin order's side")
    s.add_argument("--open", action="store_true", help="the margin order is not complete after the last fill")
    s.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    from crypto.hedge.run_cli import add_run_parser

    add_run_parser(sub, _decimal)
    return p


def run_simulate(args: argparse.Namespace) -> int:
    from crypto.hedge.simulate import simulate

    try:
        filters = HedgeFilters(args.step, args.min_qty, args.min_notional)
    except ValueError as exc:
        print(json.dumps({"error": "BAD_FILTERS", "message": str(exc)}), file=sys.stderr)
        return 2
    if args.mark <= 0:
        print(json.dumps({"error": "BAD_MARK", "message": "--mark must be positive"}), file=sys.stderr)
        return 2
    result = simulate(args.fills, filters, args.mark, args.side, complete=not args.open)
    if args.json:
        doc = {
            "reports": [{"fill": fmt(r.fill), "decision": r.decision, "reason": r.reason,
                         "hedge_qty": fmt(r.hedge_qty), "notional": fmt(r.notional), "hedged": fmt(r.hedged)}
                        for r in result.rows],
            "hedged": fmt(result.hedged),
            "residual": fmt(result.residual),
            "residual_bound": fmt(result.residual_bound),
            "complete": not args.open,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{'fill':>12}  {'decision':<42}  {'hedged':>12}")
    for r in result.rows:
        if r.decision == "hedge":
            what = f"hedge {fmt(r.hedge_qty)}"
        elif r.decision == "defer":
            extra = f", notional {fmt(r.notional)} < {fmt(args.min_notional)}" if r.reason == "MIN_NOTIONAL" else ""
            what = f"defer ({r.reason}{extra})"
        else:
            what = "nothing (already covered)"
        print(f"{fmt(r.fill):>12}  {what:<42}  {fmt(r.hedged):>12}")
    state = "margin order complete" if not args.open else "margin order still open"
    print(f"residual {fmt(result.residual)} ({state}; always below max(step, minQty, minNotional/mark) "
          f"rounded up to the step = {fmt(result.residual_bound)})")
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "simulate":
        return run_simulate(args)
    from crypto.hedge.run_cli import run

    return run(args)
