"""What the executor shows the outside: ``shared_pool.json``, ``order_result.json`` and the operator's alerts.

The publisher renders the pool and result files from the executor's state and writes each one atomically
when it is due; a file that cannot be written keeps its last good version and raises its own alert. The
alert board is the list of alerts the result file carries, with conditions raised once while they last.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared_schema.atomic_io import WriteFailed, atomic_write_bytes, read_seq
from shared_schema.clock import Clock
from shared_schema.models import POOL_FILE, RESULT_FILE, Allocation, PoolFile, ResultFile, symbol_key
from shared_schema.pool_history import POOL_HISTORY_FILE, PoolHistoryPoint, PoolHistoryWriter, PoolLot
from shared_schema.types import CST, fen_to_yuan

if TYPE_CHECKING:
    from windows.executor import Executor
    from windows.vault import GlobalVault

log = logging.getLogger("gridbridge.executor")

ALERT_LOG_EVERY_S = 60.0
_EPOCH = datetime(1970, 1, 1, tzinfo=CST)


@dataclass
class _Condition:
    """An alert raised for a condition that lasts (a file that cannot be written, ...)."""

    text: str
    logged_at: datetime
    repeats: int = 0


class AlertBoard:
    """The operator's alerts as ``order_result.json`` publishes them (the newest 50), each stamped with the
    wall time an operator will compare it to. Iterating the board yields the published alert texts."""

    def __init__(self, wall_clock: Clock, on_change: Callable[[], None]) -> None:
        self.wall_clock = wall_clock
        self._on_change = on_change  # the published view changed: the result file is due
        self._published: deque[str] = deque(maxlen=50)
        self._last = ""
        self._conditions: dict[str, _Condition] = {}  # alert key -> the condition while it lasts

    def __iter__(self) -> Iterator[str]:
        return iter(self._published)

    def post(self, message: str, key: str | None = None) -> None:
        """Log and publish an alert.

        With ``key`` the alert names a condition: it is raised once while the condition lasts (repeats are
        counted and logged at most every ``ALERT_LOG_EVERY_S``), and ``clear(key)`` marks it cleared."""
        now = self.wall_clock.now()
        if key is not None:
            active = self._conditions.get(key)
            if active is not None:
                active.repeats += 1
                if (now - active.logged_at).total_seconds() >= ALERT_LOG_EVERY_S:
                    active.logged_at = now
                    log.warning("%s (still; %d times)", message, active.repeats)
                return
            text = f"{now:%Y-%m-%d %H:%M:%S} {message}"
            self._conditions[key] = _Condition(text, now)
            log.warning(message)
            self._published.append(text)
            self._on_change()
            return
        if message != self._last:
            self._last = message
            log.warning(message)
            self._published.append(f"{now:%Y-%m-%d %H:%M:%S} {message}")
            self._on_change()

    def clear(self, key: str) -> None:
        """The condition behind alert ``key`` ended: its published alert says so, and the log says it once."""
        active = self._conditions.pop(key, None)
        if active is None:
            return
        now = self.wall_clock.now()
        log.info("cleared after %d repeat(s): %s", active.repeats, active.text)
        cleared = f"{active.text} [cleared {now:%Y-%m-%d %H:%M:%S}]"
        self._published = deque((cleared if a == active.text else a for a in self._published),
                                maxlen=self._published.maxlen)
        self._on_change()

    def active(self) -> dict[str, str]:
        """The conditions raised and not yet cleared (key -> published alert)."""
        return {key: c.text for key, c in self._conditions.items()}


class Publisher:
    """Renders and writes ``shared_pool.json`` and ``order_result.json`` for the executor ``ex``.

    The turn calls ``publish``; ``resume_seqs`` runs once at start."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.shared_dir = ex.shared_dir
        self.config = ex.config
        self.state = ex.state
        self.journal = ex.journal
        self.risk = ex.risk
        self.wall_clock = ex.wall_clock
        self._pool_seq = 0
        self._result_seq = 0
        self._published_at = 0.0
        self._unpublished: set[str] = set()  # files whose last write failed: retried every turn
        self._pool_written: PoolFile | None = None  # content of the last pool file written (pool_content)
        self._pool_written_at: datetime | None = None  # wall time of that write (the heartbeat)
        self._result_json: dict[str, tuple[Any, str]] = {}
        # The dashboard's pool over time, beside the journal (docs/contract.md): appended when the pool changes.
        self.pool_history = PoolHistoryWriter(ex.state_dir / POOL_HISTORY_FILE, fsync=ex.journal.fsync)

    def resume_seqs(self) -> None:
        """Continue the seq of each shared file from what is on disk (at start, after the replay)."""
        self._pool_seq = read_seq(self.shared_dir / POOL_FILE)
        self._result_seq = read_seq(self.shared_dir / RESULT_FILE)

    def pool_content(self) -> PoolFile:
        """The pool file without the fields that move on their own (seq, times, marks-driven equity): two
        equal contents mean nothing an operator or a node acts on has changed."""
        vault = self.state.vault
        used, frozen = vault.get_used_map(), vault.get_frozen_map()
        fields: dict[str, Any] = {}
        for code in ("159201.SZ", "512890.SH"):
            key = symbol_key(code)
            fields[f"used_{key}"] = fen_to_yuan(used.get(code, 0))
            fields[f"frozen_{key}"] = fen_to_yuan(frozen.get(code, 0))
            fields[f"acc_alpha_{key}"] = fen_to_yuan(vault.acc_alpha.get(code, 0))
            fields[f"nominal_cap_{key}"] = fen_to_yuan(vault.limits.nominal_caps.get(code, 0))
            fields[f"allocations_{key}"] = [
                Allocation(
                    client_order_id=a.client_order_id, amount=fen_to_yuan(a.amount), frozen=fen_to_yuan(a.frozen),
                    used=fen_to_yuan(a.used), state=a.state, layer_index=a.layer_index, filled_shares=a.filled_shares,
                    released_shares=a.released_shares, fees=fen_to_yuan(a.buy_fees - a.released_fees),
                    fees_estimated=a.fees_estimated,
                )
                for a in vault.allocations.values()
                if a.symbol == code and a.is_open
            ]
        return PoolFile(
            seq=0,
            updated_at=_EPOCH,
            physical_pool=fen_to_yuan(vault.limits.physical_pool),
            reserve_ratio=vault.limits.reserve_ratio,
            utilization=vault.utilization(),  # exact: the shared function, never rounded for the file
            halted=self.state.halted,
            risk_state=self.risk.state_name,
            heartbeat_s=self.config.executor.heartbeat_s,
            reduction=self.ex.risk_actions.reduction,
            **fields,
        )

    def pool_view(self, content: PoolFile | None = None) -> PoolFile:
        """``shared_pool.json`` as of now: the content plus the next seq, the wall time and the risk marks."""
        self._pool_seq += 1
        return (content or self.pool_content()).model_copy(update={
            "seq": self._pool_seq,
            "updated_at": self.wall_clock.now(),
            "risk_equity": self.risk.snapshot.equity if self.risk.snapshot.peak_equity > 0 else None,
            "drawdown": round(float(self.risk.snapshot.drawdown), 6),
            "market_time": self.ex.market.market_now,
        })

    def result_file_bytes(self) -> bytes:
        """``order_result.json`` as bytes. Results are immutable and most do not change between two
        publishes, so each is serialised once and spliced into the envelope."""
        self._result_seq += 1
        present_ids = self.ex.intake.present_ids
        envelope = ResultFile(
            seq=self._result_seq,
            updated_at=self.wall_clock.now(),
            input_rejections=self.state.junk_view(present_ids),
            open_orders=len(self.state.open_orders()),
            alerts=list(self.ex.alerts),
        ).model_dump_json()
        cache, fresh, parts = self._result_json, {}, []
        for signal_id, result in self.state.results_view(present_ids).items():
            hit = cache.get(signal_id)
            if hit is None or hit[0] is not result:
                hit = (result, result.model_dump_json())
            fresh[signal_id] = hit
            parts.append(json.dumps(signal_id) + ":" + hit[1])
        self._result_json = fresh
        return envelope.replace('"results":{}', '"results":{' + ",".join(parts) + "}", 1).encode("utf-8")

    def publish(self, force: bool = False) -> None:
        """Write the shared files that are due, each on its own.

        ``shared_pool.json`` is due at once (no rate limit) when its content changed (vault, risk state,
        halt), on every heartbeat (``executor.heartbeat_s`` of wall time with no write) and when forced;
        ``order_result.json`` when anything changed, at most every ``publish_interval_s``. A file that
        cannot be written keeps its last good version, raises one alert for as long as the condition lasts
        and is retried every turn; it never holds the other file back."""
        ex = self.config.executor
        wall = self.wall_clock.now()
        content = self.pool_content()
        heartbeat = self._pool_written_at is None or (wall - self._pool_written_at).total_seconds() >= ex.heartbeat_s
        pool_due = force or heartbeat or content != self._pool_written or POOL_FILE in self._unpublished
        if pool_due:
            self.journal.sync()  # a published file is never ahead of the journal
            self._append_pool_history()
            if self._write_shared(POOL_FILE, lambda: self.pool_view(content).model_dump_json(indent=1).encode()):
                self._pool_written, self._pool_written_at = content, wall
        results_due = force or RESULT_FILE in self._unpublished or (
            self.ex._dirty and time.monotonic() - self._published_at >= ex.publish_interval_s)
        if results_due:
            self.journal.sync()
            self.ex._dirty = False
            self._write_shared(RESULT_FILE, self.result_file_bytes)
            self._published_at = time.monotonic()

    def _append_pool_history(self) -> None:
        """One point of ``pool_history.jsonl`` when the pool changed (the writer skips an unchanged one). The
        history is for the dashboard: a failed append is its own alert and never holds the shared files back.
        Before the first quote there is no market time to put on a point (a wall-clock stamp would stretch the
        replay's time axis), and nothing books into the pool without a quote."""
        market_now = self.ex.market.market_now
        if market_now is None:
            return
        try:
            self.pool_history.append(pool_history_point(self.state.vault, market_now))
        except (OSError, ValueError) as exc:
            self.ex.alerts.post(f"pool history not appended: {exc}"[:300], key="publish:pool_history")
            return
        self.ex.alerts.clear("publish:pool_history")

    def _write_shared(self, name: str, render: Callable[[], bytes]) -> bool:
        """One shared file, written atomically; a failure is this file's own alert, cleared when it ends."""
        try:
            atomic_write_bytes(self.shared_dir / name, render())
        except WriteFailed as exc:
            # The previous file stays in place; the journal holds the truth; try again next turn.
            self._unpublished.add(name)
            self.ex.alerts.post(f"publish failed for {name}, keeping the last good file: {exc}", key=f"publish:{name}")
            return False
        self._unpublished.discard(name)
        self.ex.alerts.clear(f"publish:{name}")
        return True


def pool_history_point(vault: GlobalVault, t: datetime) -> PoolHistoryPoint:
    """The vault as one point of the pool history: exact yuan per code and the open lots the ladder draws.

    A lot's ``shares`` are those held (or asked for while nothing is filled); its ``avg_price`` is the fill
    value over the filled shares (the grant over the shares asked for before a fill), a display figure."""
    used, frozen = vault.get_used_map(), vault.get_frozen_map()
    codes = sorted({*used, *frozen, *vault.acc_alpha, *vault.limits.nominal_caps})
    lots: dict[str, list[PoolLot]] = {code: [] for code in codes}
    for a in vault.allocations.values():
        if not a.is_open:
            continue
        shares = a.holding_shares if a.filled_shares else (a.requested_shares or 0)
        held = a.filled_shares - a.released_shares
        price = (a.filled_value / a.filled_shares / 100) if a.filled_shares else (
            a.amount / 100 / a.requested_shares if a.requested_shares else 0.0)
        status = "PENDING_BUY" if a.frozen > 0 and not held else "OPEN"
        lots.setdefault(a.symbol, []).append(PoolLot(client_order_id=a.client_order_id, layer_index=a.layer_index,
                                                     shares=int(shares), avg_price=float(price), status=status))
    return PoolHistoryPoint(
        t=t,
        physical_pool=fen_to_yuan(vault.limits.physical_pool),
        used={code: fen_to_yuan(used.get(code, 0)) for code in codes},
        frozen={code: fen_to_yuan(frozen.get(code, 0)) for code in codes},
        acc_alpha={code: fen_to_yuan(vault.acc_alpha.get(code, 0)) for code in codes},
        committed=fen_to_yuan(vault.committed()),
        utilization=vault.utilization(),
        lots=lots,
    )
