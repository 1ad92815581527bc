"""Signal intake: reading ``order_signal.json``, judging each entry and sending the orders it decides.

Every entry goes through the pure pipeline (``windows.pipeline.decide``) behind a per-entry fault barrier:
an entry whose judgement or whose records raise is recorded once as a rejection and never stops the loop.
A file that can never parse, is too large or is a link is refused as a whole, once per content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.control.file_door import is_link
from shared_schema.failpoints import failpoint
from shared_schema.models import SIGNAL_FILE, SIGNAL_ID_PATTERN, Reason, ResultStatus
from shared_schema.safe_json import JSON_INVALID, JsonRefused
from shared_schema.signal_io import entry_signal_id, read_raw_entries
from windows.journal_records import InputRecord, IntentRecord, JournalRecord, ResultRecord, SignalRecord
from windows.pipeline import ENTRY_FAULT, MarketContext, decide, fee_estimate, payload_hash

if TYPE_CHECKING:
    from settings.config import GridbridgeConfig
    from windows.executor import Executor

log = logging.getLogger("gridbridge.executor")

SIGNAL_REREAD_S = 5.0  # an unchanged stat signature is trusted this long (wall seconds)


class Intake:
    """Reads the signal file for the executor ``ex`` and turns each new entry into journal records.

    The turn calls ``process_signals``; the publisher and the compaction read ``present_ids`` /
    ``present_inputs`` (what the file held as last read)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.shared_dir = ex.shared_dir
        self.config = ex.config
        self.state = ex.state
        self.journal = ex.journal
        self.wall_clock = ex.wall_clock
        self._signal_bytes: bytes | None = None
        self._signal_stat: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) of the last read
        self._signal_read_at: datetime | None = None
        self.present_ids: frozenset[str] = frozenset()  # signal ids in order_signal.json as last read
        self.present_inputs: frozenset[str] = frozenset()  # input keys of junk in order_signal.json as last read

    def forget_last_read(self) -> None:
        """Read and judge the signal file on the next turn even if it did not change (a benchmark's knob)."""
        self._signal_stat = None
        self._signal_bytes = None

    def process_signals(self) -> None:
        """Judge the entries of the signal file that are new since the last read; send what they decide."""
        ex = self.ex
        data = self._read_signal_file()
        if data is None or data == self._signal_bytes:
            return
        try:
            entries, _seq = read_raw_entries(data)
        except JsonRefused as exc:
            if exc.code != JSON_INVALID:
                self._refuse_signal_file(data, exc)
                return
            # Could be a writer mid-way on a folder without atomic rename: keep the last good view, retry.
            ex.alerts.post(f"{SIGNAL_FILE} unreadable ({exc}); keeping the last good view")
            return
        except ValueError as exc:
            ex.alerts.post(f"{SIGNAL_FILE} unreadable ({exc}); keeping the last good view")
            return
        self._signal_bytes = data
        present = frozenset(sid for sid in map(entry_signal_id, entries) if sid is not None)
        self.present_inputs = _junk_keys(entries, data)
        if present != self.present_ids:
            self.present_ids = present
            ex._dirty = True  # what order_result.json keeps depends on what the signal file holds
        # A node may have decided on a quote newer than the one we read at the top of this turn.
        ex.market.refresh()
        ctx = ex.market.context()
        to_send: list[str] = []
        for index, raw in enumerate(entries):
            try:
                records = decide(self.state, raw, ctx, self.config, ex.seen_inputs)
            except Exception as exc:  # noqa: BLE001 - the per-entry fault barrier: one entry never stops the loop
                records = self._entry_fault_records(raw, f"{_digest(data)}:{index}", exc)
            if any(isinstance(r, IntentRecord) for r in records) and not ex._take_order_token(self.wall_clock.now()):
                # The venue's order rate is the bound: leave the rest of the file for the next turn.
                self._signal_bytes = None
                ex.stats.rate_limited += 1
                break
            committed: list[JournalRecord] = []
            try:
                for record in records:
                    ex._commit(record)
                    committed.append(record)
                    if isinstance(record, IntentRecord):
                        to_send.append(record.client_order_id)
                        ctx = reserve(ctx, record, self.config)
            except Exception as exc:  # noqa: BLE001 - same barrier for a record that fails to apply
                self._close_faulted_entry(raw, committed, exc)
        if to_send:
            # Group commit: every intent of this batch is durable before the venue hears of any of them.
            self.journal.sync()
            for client_order_id in to_send:
                failpoint("executor.before_send")  # journaled, not yet at the venue
                ex._send(client_order_id)

    def _entry_fault_records(self, raw: Any, position: str, exc: BaseException) -> list[JournalRecord]:
        """The records for one entry whose judgement raised: recorded once, alerted, never met again.

        A keyed entry gets its ``signal`` record and a final REJECTED INVALID_SIGNAL / ENTRY_FAULT result,
        so its signal_id is consumed like any rejected signal (a restart replays the result, not the
        fault). An entry without a usable signal_id becomes one ``input`` rejection keyed by its payload
        hash (or, when even hashing fails, by the file's digest and its position in the file).
        """
        t = self.ex.now()
        message = f"{type(exc).__name__}: {exc}"[:300]
        sid = entry_signal_id(raw)
        usable = sid if sid is not None and SIGNAL_ID_PATTERN.match(sid) else None
        try:
            digest = payload_hash(raw)
        except Exception:  # noqa: BLE001 - the entry may be unprintable; its place in the file still names it
            digest = hashlib.sha256(position.encode()).hexdigest()[:32]
        if usable is not None:
            if usable in self.state.signals:
                return []  # recorded before (this fault or its earlier verdict)
            self.ex.alerts.post(f"signal {usable}: judging it raised {message}; rejected INVALID_SIGNAL ENTRY_FAULT")
            try:
                payload = _bounded_payload(raw)
            except Exception:  # noqa: BLE001
                payload = {"unprintable": type(raw).__name__}
            return [SignalRecord(signal_id=usable, payload_hash=digest, payload=payload, at=t),
                    ResultRecord(signal_id=usable, status=ResultStatus.REJECTED, reason=Reason.INVALID_SIGNAL,
                                 detail=ENTRY_FAULT, message=message, at=t)]
        key = f"input:{digest}"
        if key in self.ex.seen_inputs:
            return []
        self.ex.alerts.post(
            f"signal entry at {position}: judging it raised {message}; rejected INVALID_SIGNAL ENTRY_FAULT")
        return [InputRecord(key=key, payload_hash=digest, reason=Reason.INVALID_SIGNAL, detail=ENTRY_FAULT,
                            message=message, at=t)]

    def _close_faulted_entry(self, raw: Any, committed: list[JournalRecord], exc: BaseException) -> None:
        """A record of this entry failed to apply: give its signal a final result unless an order exists."""
        message = f"{type(exc).__name__}: {exc}"[:300]
        log.exception("applying a record of a signal entry failed")
        ids = [r.signal_id for r in committed if isinstance(r, SignalRecord)]
        if any(isinstance(r, IntentRecord) for r in committed) or not ids:
            self.ex.alerts.post(f"signal entry {entry_signal_id(raw) or '?'}: a record failed to apply ({message})")
            return
        self.ex.alerts.post(
            f"signal {ids[0]}: a record failed to apply ({message}); rejected INVALID_SIGNAL ENTRY_FAULT")
        try:
            self.ex._commit(ResultRecord(signal_id=ids[0], status=ResultStatus.REJECTED, reason=Reason.INVALID_SIGNAL,
                                         detail=ENTRY_FAULT, message=message, at=self.ex.now()))
        except Exception:  # noqa: BLE001 - the alert above is the record of last resort
            log.exception("could not record the fault of signal %s", ids[0])

    def _read_signal_file(self) -> bytes | None:
        """The signal file's bytes when they may have changed since the last read, else None.

        An unchanged stat signature (size, mtime_ns, inode) skips the read: a file that sits there costs a
        ``stat`` per turn, not a read and a parse (it is read again at least every SIGNAL_REREAD_S, for
        shares whose mtime is coarse). A file over ``executor.max_signal_file_bytes`` is never read: one
        alert for as long as it stays too large. A symlink (or Windows junction/reparse point) is never
        followed: the file is ``lstat``-ed, a link is refused (``_refuse_linked_signal_file``), and a path
        that turned into a link or another file while it was read is not used."""
        alerts = self.ex.alerts
        path = self.shared_dir / SIGNAL_FILE
        wall = self.wall_clock.now()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            alerts.clear("signals:link")
            self.present_inputs = frozenset()
            if self.present_ids:
                self.present_ids = frozenset()
                self.ex._dirty = True
            self._signal_stat = None
            return None
        except OSError as exc:
            alerts.post(f"signals unreadable: {exc}", key="signals:unreadable")
            return None
        if is_link(path):
            self._refuse_linked_signal_file(st)
            return None
        alerts.clear("signals:link")
        signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        recent = self._signal_read_at is not None and (wall - self._signal_read_at).total_seconds() < SIGNAL_REREAD_S
        if signature == self._signal_stat and self._signal_bytes is not None and recent:
            return None
        limit = self.config.executor.max_signal_file_bytes
        if st.st_size > limit:
            self._signal_stat = signature
            self._signal_read_at = wall
            alerts.post(f"{SIGNAL_FILE} refused: {st.st_size} bytes is over the {limit}-byte bound; it is not read "
                        "until it shrinks", key="signals:too_large")
            return None
        alerts.clear("signals:too_large")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            alerts.post(f"signals unreadable: {exc}", key="signals:unreadable")
            return None
        try:
            after = os.lstat(path)
        except OSError:
            return None  # gone meanwhile: the next turn sees what is there
        if is_link(path) or (after.st_ino, after.st_dev) != (st.st_ino, st.st_dev):
            return None  # swapped (for a link?) while it was read: not used; the next turn checks again
        alerts.clear("signals:unreadable")
        self._signal_stat = signature
        self._signal_read_at = wall
        return data

    def _refuse_linked_signal_file(self, st: os.stat_result) -> None:
        """``order_signal.json`` is a symlink: never followed (it could lead out of the shared folder). One
        alert while the link stays; one input rejection per link (journaled, so a restart does not record
        it again); the rest of the executor goes on serving."""
        self.ex.alerts.post(f"{SIGNAL_FILE} is a symlink or junction; it is not followed and no signal is read "
                            "until it is replaced by a regular file", key="signals:link")
        self._signal_stat = None
        key = f"input:link:{st.st_dev}:{st.st_ino}"
        if key in self.ex.seen_inputs:
            return
        self.ex._commit(InputRecord(key=key, reason=Reason.INVALID_SIGNAL, detail="SIGNAL_FILE_LINK",
                                    message=f"{SIGNAL_FILE} is a symlink; not followed", at=self.ex.now()))

    def _refuse_signal_file(self, data: bytes, exc: JsonRefused) -> None:
        """A signal file that can never parse (too deep, too large): one input rejection per content, journaled
        and alerted; the file is not parsed again until it changes."""
        self._signal_bytes = data
        key = f"input:file:{_digest(data)}"
        self.present_inputs = frozenset({key})
        if key in self.ex.seen_inputs:
            return
        self.ex.alerts.post(f"{SIGNAL_FILE} refused {exc.code}: {exc}; no entry of it is read until the file changes")
        self.ex._commit(InputRecord(key=key, reason=Reason.INVALID_SIGNAL, detail=exc.code,
                                    message=f"{SIGNAL_FILE}: {exc}"[:300], at=self.ex.now()))


def reserve(ctx: MarketContext, intent: IntentRecord, config: GridbridgeConfig) -> MarketContext:
    """The context the next signal of the same batch sees: this order's cash or shares already spoken for."""
    if intent.side == "BUY":
        if ctx.available_cash is None:
            return ctx
        amount = intent.price * intent.shares
        return replace(ctx, available_cash=ctx.available_cash - amount - fee_estimate(amount, config))
    if ctx.sellable is None:
        return ctx
    sellable = dict(ctx.sellable)
    sellable[intent.symbol] = sellable.get(intent.symbol, 0) - intent.shares
    return replace(ctx, sellable=sellable)


def _junk_keys(entries: list[Any], data: bytes) -> frozenset[str]:
    """The ``input:`` keys (as ``decide`` and the entry fault barrier make them) of the entries of the signal
    file that have no usable signal_id."""
    keys = set()
    for index, raw in enumerate(entries):
        sid = entry_signal_id(raw)
        if sid is not None and SIGNAL_ID_PATTERN.match(sid):
            continue
        try:
            digest = payload_hash(raw)
        except Exception:  # noqa: BLE001 - the fault barrier names such an entry by its place in the file
            digest = hashlib.sha256(f"{_digest(data)}:{index}".encode()).hexdigest()[:32]
        keys.add(f"input:{digest}")
    return frozenset(keys)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _bounded_payload(raw: Any) -> Any:
    text = json.dumps(raw, default=str, ensure_ascii=True)
    return raw if len(text) <= 4000 else {"truncated": text[:4000]}
