"""One resolver of a symbol's grid parameters: tuned defaults -> vault -> common grid -> per-symbol grid, and
a typed ``grid`` section that refuses unknown names and bad values when the config loads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from settings.config import ConfigError, GridbridgeConfig, load_config
from settings.grid import default_params
from settings.resolve import declared_base_positions, grid_params, grid_params_by_code


def config(**sections) -> GridbridgeConfig:
    return GridbridgeConfig.model_validate(sections)


def test_the_default_config_resolves_to_the_tuned_defaults():
    for code in ("512890.SH", "159201.SZ"):
        assert grid_params(GridbridgeConfig(), code) == default_params(code)
        assert grid_params(GridbridgeConfig(), code, "reference") == default_params(code, "reference")


def test_the_vault_section_sizes_the_grid():
    cfg = config(vault={"physical_pool": 120000, "reserve_ratio": "0.2", "nominal_caps": {"159201.SZ": 90000}})
    params = grid_params(cfg, "159201.SZ")
    assert params.physical_pool == Decimal(120000)
    assert params.reserve_ratio == Decimal("0.2")
    assert params.nominal_cap == 90000.0
    # a code the vault gives no cap keeps the grid's default cap
    assert grid_params(cfg, "512890.SH").nominal_cap == default_params("512890.SH").nominal_cap


def test_later_layers_win_defaults_then_vault_then_common_then_own():
    cfg = config(
        vault={"physical_pool": 120000, "nominal_caps": {"159201.SZ": 90000, "512890.SH": 80000}},
        grid={"atr_grid_factor": 0.30, "nominal_cap": 70000, "cooling": True,
              "159201.SZ": {"atr_grid_factor": 0.45, "physical_pool": 100000}},
    )
    own, other = grid_params(cfg, "159201.SZ"), grid_params(cfg, "512890.SH")
    assert (own.atr_grid_factor, other.atr_grid_factor) == (0.45, 0.30)  # own over common over tuned
    assert own.nominal_cap == other.nominal_cap == 70000.0  # common grid over vault
    assert (own.physical_pool, other.physical_pool) == (Decimal(100000), Decimal(120000))  # own over vault
    assert other.cooling is True  # common over the tuned default (False for 512890)
    assert own.sell_threshold_factor == 1.4  # untouched: the tuned default


def test_a_symbol_key_holds_that_symbols_overrides():
    cfg = config(grid={"159201": {"layers": 5, "weights": [1, 1, 1, 1, 2]}})
    assert grid_params(cfg, "159201.SZ").layers == 5
    assert grid_params(cfg, "512890.SH").layers == 9


def test_by_code_resolves_the_configs_codes_in_the_asked_mode():
    out = grid_params_by_code(config(grid={"lot": 200}), mode="reference")
    assert set(out) == {"159201.SZ", "512890.SH"}
    assert all(p.mode == "reference" and p.lot == 200 for p in out.values())


@pytest.mark.parametrize(
    "grid,named",
    [
        ({"atr_grid_facter": 0.3}, "grid.atr_grid_facter: not a grid parameter"),
        ({"159201.SZ": {"sell_profit": 0.01}}, "grid.159201.SZ.sell_profit: not a grid parameter"),
        ({"159201": {"cooling_bars": -1}}, "grid.159201.cooling_bars"),
        ({"atr_grid_factor": "wide"}, "grid.atr_grid_factor"),
        ({"510300.SH": {"lot": 100}}, "grid.510300.SH: not a grid parameter, and not a symbol"),
        ({"159201.SZ": 3}, "grid.159201.SZ: must be an object"),
        ({"159201": {}, "159201.SZ": {}}, "both hold 159201.SZ's overrides"),
        ({"mode": "reference"}, "grid.mode: set by the process"),
        ({"layers": 5}, "weights must have one entry per layer"),
    ],
)
def test_a_bad_grid_section_is_refused_at_load_naming_the_key(tmp_path, grid, named):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"grid": grid}))
    with pytest.raises(ConfigError, match="grid") as refused:
        load_config(path)
    assert named in str(refused.value)


def test_the_section_is_typed_and_keeps_the_shape_users_write(tmp_path):
    written = {"atr_grid_factor": 0.3, "512890.SH": {"base_position_shares": 20000}, "159201": {"cooling": False}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"grid": written}))
    cfg = load_config(path)
    assert cfg.grid.common == {"atr_grid_factor": 0.3}
    assert cfg.grid.per_symbol == {"512890.SH": {"base_position_shares": 20000}, "159201.SZ": {"cooling": False}}
    assert cfg.grid.overrides_for("159201.SZ") == {"atr_grid_factor": 0.3, "cooling": False}
    # written back in the users' shape (a symbol key comes back as its code), and read back the same
    dumped = json.loads(cfg.model_dump_json())["grid"]
    assert dumped == {"atr_grid_factor": 0.3, "512890.SH": {"base_position_shares": 20000},
                      "159201.SZ": {"cooling": False}}
    assert GridbridgeConfig.model_validate(json.loads(cfg.model_dump_json())) == cfg


def test_declared_base_positions_name_only_the_codes_whose_overrides_set_one():
    assert declared_base_positions(GridbridgeConfig()) == {}
    cfg = config(grid={"159201": {"base_position_shares": 30000}, "512890.SH": {"cooling": True}})
    assert declared_base_positions(cfg) == {"159201.SZ": 30000}
    assert declared_base_positions(config(grid={"base_position_shares": 0})) == {"159201.SZ": 0, "512890.SH": 0}
