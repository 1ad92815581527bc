"""The dry run's generated config passes the typed ``grid`` section, whatever key form the base config used."""

from __future__ import annotations

import json

from gridbridge.dryrun import DryRunOptions, prepare
from settings.config import load_config
from settings.resolve import grid_params


def test_the_dry_run_config_validates_and_keeps_the_base_configs_symbol_overrides(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"vault": {"physical_pool": 120000},
                                "grid": {"atr_grid_factor": 0.3, "159201": {"cooling": False}}}))
    _shared, _state, config_path, _bars = prepare(
        DryRunOptions(shared_dir=tmp_path / "run" / "shared", days=1, base_config=base))
    config = load_config(config_path)
    params = grid_params(config, "159201.SZ")
    assert params.cooling is False and params.atr_grid_factor == 0.3
    assert params.base_position_shares > 0 and params.physical_pool == 120000
    assert set(config.grid.per_symbol) == {"159201.SZ", "512890.SH"}
