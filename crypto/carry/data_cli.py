"""``gridbridge crypto data synth-funding``: write a funding tape (see ``crypto.carry.tape`` for the format).

    gridbridge crypto data synth-funding --symbol BTC-USDT-SWAP --days 365 --seed 7 --out calm.npz \\
        [--regime calm|bull|negative|crash|squeeze|mixed] [--interest 0.0001] [--cap 0.00375] \\
        [--funding-history ccxt_history.json]

``--funding-history`` drops real history in: the file is ccxt ``fetchFundingRateHistory`` output saved as
JSON (a list of dicts); its settlements replace the synthetic ones over the synthetic price path.
"""

from __future__ import annotations

import argparse
import sys

from crypto.carry import tape as tp


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gridbridge crypto data")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth-funding", help="a seeded 1-minute price + funding tape (.npz)")
    s.add_argument("--symbol", default="BTC-USDT-SWAP")
    s.add_argument("--days", type=int, default=365)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--regime", choices=tp.REGIMES, default="calm")
    s.add_argument("--out", required=True)
    s.add_argument("--start-price", type=float, default=60_000.0)
    s.add_argument("--tick", default="0.1")
    s.add_argument("--interest", type=float, default=tp.INTEREST_PER_8H,
                   help="interest component per 8 h (0.0001 = 0.01 %%; OKX currently states 0)")
    s.add_argument("--cap", type=float, default=tp.OKX_BTC_CAP, help="funding cap per period (floor = -cap)")
    s.add_argument("--funding-history", help="ccxt fetchFundingRateHistory JSON to use instead of synthetic funding")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        tape = tp.synth(symbol=args.symbol, days=args.days, seed=args.seed, regime=args.regime,
                        start_price=args.start_price, tick=args.tick, interest_per_8h=args.interest, cap=args.cap)
        if args.funding_history:
            ts, rates = tp.load_ccxt_funding_history(args.funding_history)
            tape = tape.with_funding(ts, rates, source=str(args.funding_history))
    except tp.TapeError as exc:
        print(f"synth-funding: {exc}", file=sys.stderr)
        return 2
    path = tp.save(tape, args.out)
    rates = tape.funding_rate_e9 / 1e9
    print(f"wrote {path}: {tape.ts_ms.size} minutes, {rates.size} settlements, "
          f"mean rate {rates.mean():.6%}, min {rates.min():.4%}, max {rates.max():.4%}, "
          f"at cap/floor {int((abs(rates) >= float(tape.meta.get('cap', tp.OKX_BTC_CAP))).sum())}")
    return 0
