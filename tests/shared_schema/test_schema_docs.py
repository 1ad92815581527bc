"""The JSON Schemas in docs/schema are what `gridbridge schema export` writes today."""

import json
from pathlib import Path

from gridbridge.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_committed_schemas_are_current(tmp_path):
    assert main(["schema", "export", str(tmp_path)]) == 0
    fresh = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    committed = {p.name: json.loads(p.read_text()) for p in DOCS.glob("*.json")}
    assert fresh == committed, "run: gridbridge schema export docs/schema"
