"""The executor reads the declared base positions through the one settings resolver (``settings.resolve``)."""

from __future__ import annotations

from settings.config import GridbridgeConfig
from tests.kit.harness import Harness, paper_config


def test_the_executor_takes_declared_base_positions_from_the_resolver(tmp_path):
    base = paper_config().model_dump(mode="json")
    config = GridbridgeConfig.model_validate({**base, "grid": {"159201": {"base_position_shares": 30000}}})
    h = Harness(tmp_path, config)
    try:
        assert h.executor.risk_actions.base_positions() == {"159201.SZ": 30000}
    finally:
        h.executor.stop()
