"""The config's ``grid`` section: overrides of ``GridParams``, checked key by key when the config loads.

The shape users write: a top-level parameter applies to every symbol, a code key ("159201.SZ") or its
symbol key ("159201") holds that symbol's own overrides. An unknown name or a bad value is refused at load,
naming the key, not when a process first resolves it (``settings.resolve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_serializer,
    model_validator,
)

from settings.grid import TUNED_CODES, GridParams
from shared_schema.models import symbol_key

# Set by the process (the symbol it runs, the backtest's --mode), never by the config.
_SET_BY_THE_PROCESS = frozenset({"code", "mode"})


@cache
def _parameter_models() -> dict[str, type[BaseModel]]:
    """One one-field model per overridable ``GridParams`` field: its type, bounds and description."""
    models: dict[str, type[BaseModel]] = {}
    for name, field in GridParams.model_fields.items():
        if name not in _SET_BY_THE_PROCESS:
            definition: dict[str, Any] = {name: (field.annotation, field)}
            models[name] = create_model(f"GridOverride_{name}", **definition)
    return models


def _checked_parameters(where: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    models = _parameter_models()
    out: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in models:
            why = "set by the process, not the config" if name in _SET_BY_THE_PROCESS else "not a grid parameter"
            raise ValueError(f"{where}{name}: {why}")
        try:
            out[name] = getattr(models[name].model_validate({name: value}), name)
        except ValidationError as exc:
            raise ValueError(f"{where}{name}: {exc.errors()[0]['msg']} (got {value!r})") from None
    return out


def _split(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The written section as (common overrides, overrides per full code), every name known and every value
    of its parameter's type."""
    code_of_key = {c: c for c in TUNED_CODES} | {symbol_key(c): c for c in TUNED_CODES}
    key_of_code: dict[str, str] = {}
    common: dict[str, Any] = {}
    per_symbol: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        code = code_of_key.get(key)
        if code is None:
            if isinstance(value, Mapping):
                raise ValueError(f"grid.{key}: not a grid parameter, and not a symbol with grid defaults "
                                 f"({', '.join(TUNED_CODES)})")
            common.update(_checked_parameters("grid.", {key: value}))
            continue
        if not isinstance(value, Mapping):
            raise ValueError(f"grid.{key}: must be an object of {code}'s parameter overrides")
        if code in key_of_code:
            raise ValueError(f"grid.{key} and grid.{key_of_code[code]} both hold {code}'s overrides; keep one")
        key_of_code[code] = key
        per_symbol[code] = _checked_parameters(f"grid.{key}.", value)
    return common, per_symbol


class GridSection(BaseModel):
    """The config's ``grid`` section: ``common`` overrides for every symbol, then ``per_symbol`` overrides
    keyed by full code. Read from and written in the shape users write (parameters at the top level, a
    code or symbol key holding that symbol's own), every name and value checked at load."""

    model_config = ConfigDict(frozen=True)

    common: dict[str, Any] = Field(default_factory=dict)
    per_symbol: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_the_written_shape(cls, raw: Any) -> Any:
        if isinstance(raw, GridSection):
            return raw
        if not isinstance(raw, Mapping):
            raise ValueError("grid must be an object of parameter overrides")
        common, per_symbol = _split(raw)
        return {"common": common, "per_symbol": per_symbol}

    @model_serializer(mode="plain")
    def _to_the_written_shape(self) -> dict[str, Any]:
        return {**self.common, **self.per_symbol}

    def overrides_for(self, code: str) -> dict[str, Any]:
        """The overrides that apply to ``code``: the common ones, then the symbol's own."""
        return {**self.common, **self.per_symbol.get(code, {})}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # The schema of the written shape: parameters, and any other key a symbol's object of them.
        params: dict[str, Any] = {}
        for name, model in _parameter_models().items():
            params[name] = model.model_json_schema()["properties"][name]
            params[name].pop("default", None)  # an override has none; the tuned defaults differ per symbol
        keys = ", ".join(k for c in TUNED_CODES for k in (c, symbol_key(c)))
        return {
            "type": "object",
            "title": "Grid",
            "description": "grid parameter overrides: top-level keys for every symbol; any other key is a "
            f"symbol ({keys}) holding that symbol's own overrides",
            "properties": params,
            "additionalProperties": {"type": "object", "properties": params, "additionalProperties": False},
        }
