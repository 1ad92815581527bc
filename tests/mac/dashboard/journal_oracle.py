"""Test oracle: the journal replay the dashboard used before the executor published its pool history.

Moved here from ``mac/dashboard/data.py`` (it needs the executor's classes, which the dashboard may no longer
import). The tests compare the published ``pool_history.jsonl`` with it on real executor runs: at every
market time the pool and the open lots must be the same as this replay of the same journal.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mac.dashboard.labels import CODES
from mac.dashboard.times import parse_ts, to_naive_cst
from mac.dashboard.view_models import POOL_HISTORY_COLUMNS, LotView, PoolHistory
from mac.grid.core import OPEN, PENDING_BUY
from mac.grid.ladder import take_profit_price
from mac.grid.params import CompiledParams, compile_params
from settings.config import GridbridgeConfig
from settings.grid import default_params
from shared_schema.models import symbol_key
from shared_schema.types import CST


def _vault_row(t: datetime, vault: Any) -> dict[str, Any]:
    used, frozen = vault.get_used_map(), vault.get_frozen_map()
    row: dict[str, Any] = {"t": to_naive_cst(t)}
    for c in CODES:
        k = symbol_key(c)
        row[f"used_{k}"] = used.get(c, 0) / 100
        row[f"frozen_{k}"] = frozen.get(c, 0) / 100
        row[f"alpha_{k}"] = vault.acc_alpha.get(c, 0) / 100
    row["utilization"] = vault.utilization()
    return row


def _vault_lots(vault: Any, params: dict[str, CompiledParams]) -> dict[str, tuple[LotView, ...]]:
    out: dict[str, list[LotView]] = {c: [] for c in CODES}
    for a in vault.allocations.values():
        if a.symbol not in out or not a.is_open:
            continue
        shares = a.holding_shares if a.filled_shares else (a.requested_shares or 0)
        held = a.filled_shares - a.released_shares
        price = (a.filled_value / a.filled_shares / 100) if a.filled_shares else (
            a.amount / 100 / a.requested_shares if a.requested_shares else 0.0)
        status = PENDING_BUY if a.frozen > 0 and not held else OPEN
        tp = take_profit_price(price, 0.0, params[a.symbol]) if a.symbol in params else 0.0
        out[a.symbol].append(LotView(a.client_order_id, a.layer_index, int(shares), float(price), tp, status))
    return {c: tuple(v) for c, v in out.items()}


def replay_journal(path: Path, config: GridbridgeConfig | None = None,
                   params: dict[str, CompiledParams] | None = None) -> PoolHistory:
    """The dashboard's former pool history: the executor's journal replayed through its own state and vault.

    The vault is the one the executor builds from the run's ``config`` (``build_vault``: its limits and fee
    model; the defaults when None), so approvals are re-judged and fees the broker did not price are
    estimated exactly as the executor did. Gives the pool over time (used/frozen/acc_alpha per symbol after
    every change), the open lots after each change and every journaled signal payload. A torn last line is
    ignored; the file is never written (the executor owns it).
    """
    from core.journal import read_records
    from windows.executor import build_vault
    from windows.executor_state import ExecutorState

    config = config or GridbridgeConfig()
    pool = config.vault.physical_pool
    params = params or {c: compile_params(default_params(c)) for c in CODES}
    state = ExecutorState(build_vault(config))
    rows: list[dict[str, Any]] = []
    lots: list[dict[str, tuple[LotView, ...]]] = []
    signals: dict[str, dict[str, Any]] = {}
    last_key: tuple | None = None
    for record, _size in read_records(path):
        kind = record.get("k")
        if kind == "signal" and isinstance(record.get("sig"), dict):
            signals[record["id"]] = record["sig"]
        try:
            state.apply(record)
        except Exception:  # noqa: BLE001 - a record this build cannot apply: keep what we have
            continue
        if kind not in ("alloc", "update", "cancel_req", "lost", "result", "snapshot"):  # snapshot: a compacted start
            continue
        v = state.vault
        key = (tuple(v.get_used_map().values()), tuple(v.get_frozen_map().values()), tuple(v.acc_alpha.values()))
        if key == last_key:
            continue
        last_key = key
        t = parse_ts(record.get("t")) or datetime.now(CST)
        rows.append(_vault_row(t, v))
        lots.append(_vault_lots(v, params))
    frame = pd.DataFrame(rows, columns=POOL_HISTORY_COLUMNS)
    return PoolHistory(frame, tuple(lots), pool, "executor journal")

