"""What order_result.json keeps: junk never pushes a real result out."""

from __future__ import annotations

from shared_schema.models import Reason, ResultStatus
from tests.kit.harness import Harness, paper_config
from tests.kit.stubs import signal_payload


def _small_retention(retention: int = 10):
    cfg = paper_config()
    return cfg.model_copy(update={"executor": cfg.executor.model_copy(update={"result_retention": retention})})


def test_junk_never_evicts_a_result_whose_signal_is_still_in_the_file(tmp_path):
    h = Harness(tmp_path, _small_retention(10))
    h.send(signal_id="real", shares=1000)
    h.turn()
    assert h.result("real").status is ResultStatus.FILLED
    # 300 junk entries (valid ids, impossible content) arrive behind the real signal, which its writer has
    # not pruned yet: it is still waiting to read the result.
    junk = [signal_payload(signal_id=f"junk{i}", shares=-1) for i in range(300)]
    h.write_entries(h.entries() + junk)
    h.turn()
    results = h.results()
    assert results.results["real"].status is ResultStatus.FILLED
    # The writer prunes the real signal; the junk still sits in the file and each has its answer.
    h.write_entries(junk)
    h.turn()
    assert all(f"junk{i}" in h.results().results for i in range(300))
    # Someone prunes the junk: its results leave `results` and are listed as input rejections (own cap).
    h.write_entries([])
    h.turn()
    results = h.results()
    assert not any(k.startswith("junk") for k in results.results)
    assert "real" in results.results  # a real final result within the retention stays
    assert len(results.input_rejections) <= 200
    assert {r.signal_id for r in results.input_rejections} >= {"junk299"}
    assert all(r.reason is Reason.INVALID_SIGNAL for r in results.input_rejections if r.signal_id.startswith("junk"))
    h.executor.stop()


def test_a_result_not_yet_final_is_never_evicted(tmp_path):
    h = Harness(tmp_path, _small_retention(10))
    h.send(signal_id="resting", price="1.000", shares=1000)  # rests below the market
    h.turn()
    for i in range(30):
        h.send(signal_id=f"f{i}", shares=100)
        h.turn()
    h.write_entries([])
    h.turn()
    results = h.results().results
    assert results["resting"].status is ResultStatus.SENT
    assert sum(1 for r in results.values() if r.status.is_final) == 10
    h.executor.stop()
