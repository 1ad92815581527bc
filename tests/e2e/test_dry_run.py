"""`gridbridge dry-run` end to end: real processes for several simulated days, summary checked against the files."""

import json

import pytest

from shared_schema.models import POOL_FILE, RESULT_FILE, SIGNAL_FILE, PoolFile, ResultFile
from tests.kit import procs

pytestmark = pytest.mark.slow


def test_dry_run_for_several_days_keeps_every_invariant(tmp_path):
    shared = tmp_path / "shared"
    # A 120,000 pool puts the run into the reserve and penalty zone (utilisation above 85-90%).
    out = procs.run("dry-run", "--shared-dir", str(shared), "--days", "3", "--speed", "2000", "--pool", "120000",
                    "--json", timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["problems"] == []
    assert summary["gate"]["verdict"] == "PASS", summary["gate"]  # a healthy run passes the release gate
    results = ResultFile.model_validate_json((shared / RESULT_FILE).read_bytes())
    pool = PoolFile.model_validate_json((shared / POOL_FILE).read_bytes())
    # The summary is what the files say.
    assert summary["signals"] == len(results.results)
    assert summary["fills"] == sum(r.status.value == "FILLED" for r in results.results.values())
    assert summary["alpha"]["512890.SH"] == float(pool.acc_alpha_512890)
    assert summary["signals"] > 0 and summary["fills"] > 0
    assert summary["peak_utilization"] > 0.6
    # Every signal has a final result and nothing is left waiting in the signal file.
    assert all(r.status.is_final for r in results.results.values())
    leftover = json.loads((shared / SIGNAL_FILE).read_text())["signals"] if (shared / SIGNAL_FILE).exists() else []
    assert all(results.results[s["signal_id"]].status.is_final for s in leftover)
    # Reserve and vault: committed never above the pool, nothing frozen once the run settled.
    assert pool.utilization <= 1.0
    assert pool.frozen_159201 == 0 and pool.frozen_512890 == 0
    for alloc in pool.allocations_159201 + pool.allocations_512890:
        assert alloc.used >= 0 and alloc.frozen >= 0
    assert (shared / "dashboard_state_159201.json").exists() and (shared / "dashboard_state_512890.json").exists()


@pytest.mark.parametrize(("speed", "age", "ttl"), [(1, 120.0, 300.0), (600, 3000.0, 3000.0), (2000, 10000.0, 10000.0)])
def test_dry_run_latency_budgets_scale_with_speed_so_a_busy_machine_expires_nothing(tmp_path, speed, age, ttl):
    # 120 s of market time is 60 ms of wall time at 2000x: the dry run keeps a live run's wall-time
    # budget for node -> executor latency instead of expiring signals on a slow machine.
    from gridbridge.dryrun import DryRunOptions, prepare

    _, _, config_path, _ = prepare(DryRunOptions(shared_dir=tmp_path / "shared", days=1, speed=speed))
    config = json.loads(config_path.read_text())
    assert config["executor"]["max_signal_age_s"] == age and config["node"]["signal_ttl_s"] == ttl


def test_dry_run_keeps_the_latency_budgets_its_base_config_sets(tmp_path):
    from gridbridge.dryrun import DryRunOptions, prepare

    base = tmp_path / "base.json"
    base.write_text(json.dumps({"executor": {"max_signal_age_s": 90}, "node": {"signal_ttl_s": 200}}))
    _, _, config_path, _ = prepare(DryRunOptions(shared_dir=tmp_path / "shared", days=1, speed=600, base_config=base))
    config = json.loads(config_path.read_text())
    assert config["executor"]["max_signal_age_s"] == 90 and config["node"]["signal_ttl_s"] == 200
