"""A generic, exact JSON encoding of the executor's in-memory state, for journal compaction.

The state is dataclasses, plain objects, pydantic models, enums, Decimals, datetimes and containers.
Rather than a hand-written schema per class (which would silently drop a field someone adds tomorrow),
every object is written with its class and all of its attributes, and read back by setting them again
without calling ``__init__``. An object reached twice (an allocation held in two maps) is written once and
comes back as one object. Only classes of this project's packages are ever rebuilt; anything else (a
function, a lock, a file) refuses to encode, loudly.

Pydantic models round-trip through ``model_dump(mode="json")``/``model_validate``; everything else is exact.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections import deque
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from pydantic import BaseModel

SNAPSHOT_VERSION = 1
_PACKAGES = ("windows.", "core.", "shared_schema.")


class SnapshotError(ValueError):
    """The state holds something this encoding cannot write, or a snapshot names a class it may not build."""


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


_NAMES: dict[type, str] = {}


def _names(cls: type) -> str:
    name = _NAMES.get(cls)
    if name is None:
        name = _NAMES[cls] = _qualname(cls)
    return name


_RENAMED = {"windows.vault:Allocation": "windows.vault:VaultAllocation"}
"""Classes renamed since a snapshot may have been written: an old compacted journal still replays."""


def _resolve(name: str) -> type:
    module, _, qual = _RENAMED.get(name, name).partition(":")
    if not module.startswith(_PACKAGES):
        raise SnapshotError(f"snapshot names a class outside the project: {name}")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise SnapshotError(f"snapshot names something that is not a class: {name}")
    return obj


class _Encoder:
    def __init__(self) -> None:
        self.seen: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps encoded objects alive so their id() stays unique

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:  # the hot path, exact types only
            return value
        if kind is dict:
            if all(type(k) is str for k in value):
                enc = self.encode
                return {"__d__": {k: enc(v) for k, v in value.items()}}
            return {"__map__": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if isinstance(value, Enum):  # before the JSON types: a str or int enum is also a str or an int
            return {"__enum__": _qualname(type(value)), "v": self.encode(value.value)}
        if value is None or type(value) in (bool, int, str):
            return value
        if isinstance(value, (bool, int, str)):
            raise SnapshotError(f"cannot snapshot a {type(value).__qualname__} (a subclass of a JSON type)")
        if isinstance(value, float):
            return {"__float__": repr(value)}  # exact, and NaN/inf survive
        if isinstance(value, Decimal):
            return {"__dec__": str(value)}
        if isinstance(value, datetime):
            return {"__dt__": value.isoformat()}
        if isinstance(value, date):
            return {"__date__": value.isoformat()}
        if isinstance(value, timedelta):
            return {"__td__": [value.days, value.seconds, value.microseconds]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return {"__tuple__": [self.encode(v) for v in value]}
        if isinstance(value, deque):
            return {"__deque__": [self.encode(v) for v in value], "maxlen": value.maxlen}
        if isinstance(value, (set, frozenset)):
            items = sorted((self.encode(v) for v in value), key=repr)
            return {"__frozenset__" if isinstance(value, frozenset) else "__set__": items}
        if isinstance(value, dict):
            raise SnapshotError(f"cannot snapshot a dict subclass {type(value).__qualname__}")
        return self._object(value)

    def _object(self, value: Any) -> Any:
        cls = type(value)
        if not cls.__module__.startswith(_PACKAGES):
            raise SnapshotError(f"cannot snapshot a {cls.__module__}.{cls.__qualname__}")
        ref = self.seen.get(id(value))
        if ref is not None:
            return {"__ref__": ref}
        self.seen[id(value)] = ref = len(self.seen)
        self.keep.append(value)
        if isinstance(value, BaseModel):
            return {"__pd__": _qualname(cls), "id": ref, "v": value.model_dump(mode="json")}
        if hasattr(value, "__dict__"):
            attrs = vars(value)
        else:
            attrs = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        enc = self.encode
        return {"__obj__": _names(cls), "id": ref, "f": {k: enc(v) for k, v in attrs.items()}}


class _Decoder:
    def __init__(self) -> None:
        self.refs: dict[int, Any] = {}

    def decode(self, data: Any) -> Any:
        if data is None or isinstance(data, (bool, int, str)):
            return data
        if isinstance(data, list):
            return [self.decode(v) for v in data]
        if not isinstance(data, dict):
            raise SnapshotError(f"unexpected value in a snapshot: {type(data).__name__}")
        if "__d__" in data:
            return {k: self.decode(v) for k, v in data["__d__"].items()}
        if "__float__" in data:
            return float(data["__float__"])
        if "__dec__" in data:
            return Decimal(data["__dec__"])
        if "__dt__" in data:
            return datetime.fromisoformat(data["__dt__"])
        if "__date__" in data:
            return date.fromisoformat(data["__date__"])
        if "__td__" in data:
            d, s, us = data["__td__"]
            return timedelta(days=d, seconds=s, microseconds=us)
        if "__enum__" in data:
            return _resolve(data["__enum__"])(self.decode(data["v"]))
        if "__tuple__" in data:
            return tuple(self.decode(v) for v in data["__tuple__"])
        if "__deque__" in data:
            return deque((self.decode(v) for v in data["__deque__"]), maxlen=data["maxlen"])
        if "__set__" in data:
            return {self.decode(v) for v in data["__set__"]}
        if "__frozenset__" in data:
            return frozenset(self.decode(v) for v in data["__frozenset__"])
        if "__map__" in data:
            return {self.decode(k): self.decode(v) for k, v in data["__map__"]}
        if "__ref__" in data:
            return self.refs[data["__ref__"]]
        if "__pd__" in data:
            model = _resolve(data["__pd__"])
            obj = model.model_validate(data["v"])  # type: ignore[attr-defined]
            self.refs[data["id"]] = obj
            return obj
        if "__obj__" in data:
            cls = _resolve(data["__obj__"])
            obj = object.__new__(cls)
            self.refs[data["id"]] = obj  # before the fields: an object may refer back to itself
            fields = {k: self.decode(v) for k, v in data["f"].items()}
            if hasattr(obj, "__dict__"):
                # Fields added to the class since the snapshot was written get their defaults.
                if dataclasses.is_dataclass(cls):
                    for f in dataclasses.fields(cls):
                        if f.name not in fields and f.default is not dataclasses.MISSING:
                            fields[f.name] = f.default
                        elif f.name not in fields and f.default_factory is not dataclasses.MISSING:
                            fields[f.name] = f.default_factory()
                obj.__dict__.update(fields)
            else:
                for k, v in fields.items():
                    object.__setattr__(obj, k, v)
            return obj
        raise SnapshotError(f"unknown tag in a snapshot: {sorted(data)[:3]}")


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data that ``decode`` turns back into an equal object graph."""
    return _Encoder().encode(value)


def decode(data: Any) -> Any:
    return _Decoder().decode(data)
