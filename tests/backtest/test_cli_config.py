"""The backtest reads its config as the node does: one resolver (``settings.resolve``), the ``vault``
section included, the DEGRADED policy from ``node``; a plain file of grid overrides still works."""

from __future__ import annotations

import json

import pytest

from backtest.cli import load_risk, load_run_config, run_backtest
from backtest.synth import generate
from settings.config import ConfigError

CODES = ("512890.SH", "159201.SZ")


@pytest.fixture(scope="module")
def data():
    return {c: generate(c, 3, seed=11 + k) for k, c in enumerate(CODES)}


def test_a_backtest_on_a_smaller_pool_runs_its_vault_on_that_pool(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"vault": {"physical_pool": 120000, "nominal_caps": {c: 90000 for c in CODES}}}))
    result = run_backtest(data, "realistic", load_run_config(str(path)))
    assert result.vault.limits.physical_pool == 120000 * 100  # fen
    assert result.vault.limits.nominal_caps == {c: 90000 * 100 for c in CODES}


def test_without_a_config_the_vault_has_the_design_pool(data):
    result = run_backtest(data, "realistic", load_run_config(None))
    assert result.vault.limits.physical_pool == 300000 * 100


def test_a_plain_overrides_file_is_the_grid_section(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"atr_grid_factor": 0.3, "159201": {"cooling": False}}))
    cfg = load_run_config(str(path))
    assert cfg.grid.model_dump() == {"atr_grid_factor": 0.3, "159201.SZ": {"cooling": False}}
    assert cfg.vault.physical_pool == 300000


def test_an_unknown_grid_parameter_is_refused(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"atr_grid_facter": 0.3}))
    with pytest.raises(ConfigError, match="grid.atr_grid_facter"):
        load_run_config(str(path))


def test_the_degraded_policy_comes_from_the_node_section(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"node": {"degraded_action": "block_layer0", "degraded_step_multiplier": 2.0}}))
    policy = load_risk(load_run_config(str(path))).policy
    assert (policy.degraded_action, policy.degraded_step_multiplier) == ("block_layer0", 2.0)
