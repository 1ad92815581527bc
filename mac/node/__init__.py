"""The strategy node: the Mac-side process that turns quotes and the pool view into signals.

A thin loop (``process.StrategyNode``) around the pure grid core (``mac.grid.core.step``, the same function
the backtest calls). Each turn it reads ``shared_quote.json``, ``shared_pool.json`` and ``order_result.json``;
folds results into the grid (``results``: fills, partial fills, rejections roll lots back); feeds every new
1-minute bar to ``step`` (``stepping``); saves its state (``state``: ``dashboard_state_<code>.json``)
*before* it writes the new signals, so a restart resumes lots, pending signals and the penalty state; then
appends the signals to ``order_signal.json`` under the writers' lock and prunes the ones whose results are
final (``signals``).

Windows is the truth: the grid's lots plus the configured base position must match the position in the
quote file, or the node reports the mismatch and opens no new layer for that symbol until it clears. No new
buys either when quotes or the pool view are stale or unreadable (``inputs`` refuses stamps from the future).

The executor's risk state (``risk_state``/``halted`` in ``shared_pool.json``) becomes a ``GridRiskMode``
(``mac.grid.risk_policy``, the same mapping the backtest uses): DEGRADED widens the buy step or refuses
layer-0 buys (``settings.risk_policy``); COOLDOWN and REDUCE_ONLY only sell; FUSE refuses buys and, on every
new bar, sends a ``FUSE_CLOSE`` sell for each lot that may be sold today (T+1, base position kept) until
the state leaves FUSE, which only a manual Reset FUSE at the executor does. Halted: no buys, no close-all.
"""

from mac.node.process import StrategyNode
from mac.node.state import NodeSettings, node_settings_from_config, state_file

__all__ = ["NodeSettings", "StrategyNode", "node_settings_from_config", "state_file"]
