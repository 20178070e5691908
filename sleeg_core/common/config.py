"""Nested-dataclass configs read from YAML, with dotted `key=value` overrides.

`load_config(TrainConfig, "train.yaml", ["optim.lr=0.005"])` → a TrainConfig; a key that the
dataclass does not have is a SleegError naming its dotted path and the keys that exist there.

A YAML file may name another one as its base (`base: train_enet_cpu.yaml`, relative to the file)
and state only what differs from it: mappings are merged key by key, any other value (a list
included) replaces the base's. Bases may have bases; a cycle or a missing base file is a
SleegError naming the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sleeg_core.common.errors import SleegError

C = TypeVar("C")
BASE_KEY = "base"  # a YAML file's key naming the file it inherits from


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def from_dict(cls: type[C], data: dict[str, Any] | None, where: str = "") -> C:
    """Build dataclass `cls` from a (partial) dict; missing keys keep their defaults."""
    data = data or {}
    if not isinstance(data, dict):
        raise SleegError(f"config '{where or '<root>'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise SleegError(f"unknown config key '{key}'; valid keys there: {', '.join(names)}")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise SleegError(f"config '{where or '<root>'}' lacks '{missing[0]}'")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        path = f"{where}.{name}" if where else name
        if _is_dataclass_type(tp):
            kwargs[name] = from_dict(tp, value, path)
        elif _is_list_of_dataclass(tp):
            item_tp = typing.get_args(tp)[0]
            kwargs[name] = [from_dict(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[name] = _coerce(value, tp, path)
    return cls(**kwargs)


def _is_list_of_dataclass(tp: Any) -> bool:
    return typing.get_origin(tp) is list and _is_dataclass_type(typing.get_args(tp)[0])


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Light type checking for scalars and lists of scalars (int → float allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
        origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise SleegError(f"config '{path}' must be a list, got {value!r}")
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        items = [_coerce(v, item, path) for v in value]
        return items if origin is list else tuple(items)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise SleegError(f"config '{path}' must be {tp.__name__}, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise SleegError(f"config '{path}' must be int, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-friendly data (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(cfg))))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set dotted keys from `key=value` strings (values parsed as YAML) in a nested dict."""
    for item in overrides:
        if "=" not in item:
            raise SleegError(f"override '{item}' must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SleegError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `override`: mappings merged key by key, other values (lists too)
    replaced. Neither argument is modified."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise SleegError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SleegError(f"config file {path} is not valid YAML: {err}") from err


def read_config_file(path: str | Path) -> Any:
    """The data of a YAML config file with its `base` files merged under it (see the module)."""
    return _read_with_bases(Path(path), ())


def _read_with_bases(path: Path, below: tuple[Path, ...]) -> Any:
    """`read_config_file`; `below`: the resolved files that inherit from `path`, in order."""
    chain = (*below, path.resolve())
    data = _read_yaml(path)
    if not isinstance(data, dict) or BASE_KEY not in data:
        return data
    base = data.pop(BASE_KEY)
    if not isinstance(base, str) or not base:
        raise SleegError(f"config file {path}: '{BASE_KEY}' must be a file path, got {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in chain:
        cycle = " → ".join(str(p) for p in (*chain, base_path.resolve()))
        raise SleegError(f"config file {path}: its bases form a cycle: {cycle}")
    if not base_path.is_file():
        raise SleegError(f"config file {path}: its base {base_path} is not a file")
    inherited = _read_with_bases(base_path, chain)
    if not isinstance(inherited, dict):
        raise SleegError(f"config file {base_path} (the base of {path}) must hold a mapping")
    return merge(inherited, data)


def load_config(cls: type[C], path: str | Path | None, overrides: list[str] = ()) -> C:
    """Defaults ← YAML file (optional, with its bases) ← overrides."""
    data = {} if path is None else read_config_file(path)
    return from_dict(cls, apply_overrides(data, list(overrides)))
