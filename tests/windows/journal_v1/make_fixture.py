"""How the journals in this folder were made: run from a checkout of commit 58d8228 (the code before journal
records were typed) as ``python make_fixture.py <out dir> <scratch dir>``. Writes a compacted journal (a
snapshot, then a tail) and a full one with every kind a session writes, each with the summary of the state
the old ``ExecutorState`` built from it (``*.expected.json``). Kept for the record; the tests only read.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import SESSION_TIME
from windows.brokers.protocol import TemporaryBrokerError
from windows.executor import JOURNAL_FILE, build_vault
from windows.executor_state import ExecutorState


def summary(state: ExecutorState) -> dict[str, Any]:
    return {
        "results": {k: v.model_dump(mode="json") for k, v in state.results_view().items()},
        "junk": [r.model_dump(mode="json") for r in state.junk_view()],
        "orders": {k: [o.record.state.value, o.record.filled_shares, o.record.filled_value_fen, o.record.fees_fen,
                       o.record.broker_order_id, str(o.record.price), o.outcome_unknown, o.cancel_requested,
                       o.cancel_reason] for k, o in state.orders.items()},
        "used": state.vault.get_used_map(), "frozen": state.vault.get_frozen_map(),
        "alpha": state.vault.acc_alpha, "halted": state.halted, "halt_reason": state.halt_reason,
        "lots_in_sell": state.lots_in_sell, "records_applied": state.records_applied,
    }


def save(h: Harness, out: Path, name: str, retention: int) -> None:
    h.executor.stop()
    records = h.journal()
    shutil.copy(h.state / JOURNAL_FILE, out / f"{name}.journal.jsonl")
    state = ExecutorState(build_vault(h.config), retention)
    for record in records:
        state.apply(record)
    text = json.dumps(summary(state), indent=1, sort_keys=True, default=str)
    (out / f"{name}.expected.json").write_text(text)
    print(name, sorted({r["k"] for r in records}), len(records))


def common_steps(h: Harness) -> None:
    """Buys, junk, a refused signal, a reused signal_id, a halt and a resume, a sell."""
    h.send(signal_id="b1", client_order_id="b1", price=1.1, shares=1000, layer_index=1)
    h.turn()
    h.send(signal_id="r1", client_order_id="r1", price="1.000", shares=1000, layer_index=2)  # rests
    h.turn()
    h.write_entries([*h.entries(), "junk-entry"])
    h.turn()
    h.send(signal_id="bad", client_order_id="bad", price=1.1, shares=150, layer_index=1)
    h.turn()
    h.send(signal_id="b1", client_order_id="b1x", price=1.1, shares=1000, layer_index=1)  # a conflict
    h.turn()
    h.write_entries([e for e in h.entries() if not (isinstance(e, dict) and e.get("client_order_id") == "b1x")])
    h.executor._commit({"k": "halt", "on": True, "why": "FORCE_HALT", "t": h.clock.now().isoformat()})
    h.turn()
    h.send(signal_id="h1", client_order_id="h1", price=1.1, shares=1000, layer_index=2)
    h.turn()
    h.executor._commit({"k": "halt", "on": False, "why": "RESUME", "t": h.clock.now().isoformat()})
    h.turn()
    h.send(signal_id="s1", client_order_id="s1", direction="SELL", price=1.1, shares=1000, layer_index=1,
           release_client_order_ids=["b1"])
    h.turn()


def main(out: Path, scratch: Path) -> None:
    config = paper_config()
    compacting = config.model_copy(update={"executor": config.executor.model_copy(
        update={"journal_compact_records": 12, "result_retention": 50})})
    h = Harness(scratch / "a", compacting)
    common_steps(h)
    h.clock.set(SESSION_TIME + timedelta(minutes=30))
    h.publish_quotes()
    h.turn(3)
    save(h, out, "compacted", 50)

    h = Harness(scratch / "b", config)
    common_steps(h)
    real = h.broker.place_limit_order

    def timeout(request: Any) -> Any:
        raise TemporaryBrokerError("no answer within the deadline")

    h.broker.place_limit_order = timeout  # type: ignore[method-assign]
    h.send(signal_id="u1", client_order_id="u1", shares=1000, layer_index=3)
    h.turn(2)
    for _ in range(3):  # looked up, never found: lost
        h.clock.advance(h.config.executor.unknown_outcome_lookup_s / 3 + 0.1)
        h.turn()
    h.broker.place_limit_order = real  # type: ignore[method-assign]
    h.clock.advance(h.config.executor.max_order_age_s + 1)  # r1 ages out: cancel_req
    h.publish_quotes()
    h.turn(3)
    save(h, out, "full", config.executor.result_retention)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
