"""The crypto engine on the shared ``core/`` kernel.

- ``crypto.venue``: the one venue interface (``Venue`` Protocol, base-unit records) and its ccxt adapter.
- ``crypto.fakex``: a faithful local exchange (OKX v5 and Binance portfolio margin over HTTP) that the
  unmodified ccxt classes talk to; tests, dry runs and the e2e checklist run against it.
- ``crypto.execution``: the OMS loop on ``core`` (filters, limits, splits, rate limit, protective orders,
  reconciliation, journal) that approaches target positions.
- ``crypto.trend``: the minimal closed loop (features, trend + volatility target, fixed-weight portfolio).
- ``crypto.e2e``: the exchange checklist as one command and its report for the gate.
- ``crypto.carry``: the funding-rate cash-and-carry engine, its funding tape and backtest.
- ``crypto.pm``: the position manager (stops, ladder take-profit, add-on, WAC, treasury) on Redis.
- ``crypto.hedge``: the incremental hedge of a margin order into USD-M futures.
"""
