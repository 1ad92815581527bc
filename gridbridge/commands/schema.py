"""``gridbridge schema export DIR``: the JSON Schema of every shared file and of the config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema")
    schema_sub = p.add_subparsers(dest="schema_command", required=True)
    e = schema_sub.add_parser("export", help="write JSON Schema for every shared file")
    e.add_argument("dir")
    e.set_defaults(func=cmd_schema_export)


def cmd_schema_export(args: argparse.Namespace) -> int:
    from pydantic import BaseModel

    from settings.config import GridbridgeConfig
    from shared_schema.models import SHARED_FILES

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, type[BaseModel]] = {**SHARED_FILES, "config.json": GridbridgeConfig}
    for name, model in models.items():
        target = out / name.replace(".json", ".schema.json")
        target.write_text(json.dumps(model.model_json_schema(), indent=1, ensure_ascii=False), encoding="utf-8")
        print(target)
    return 0
