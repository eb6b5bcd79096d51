"""Strict reading of YAML mappings: every error names the file and the path inside it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from x3twilio.errors import ConfigError

_MISSING: Any = object()
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class Node:
    """A mapping read from YAML, with its location, that tracks which keys were used."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(file, path or "(top level)", "expected a mapping")
        self.file, self.path, self.data = file, path, data
        self._used: set[str] = set()

    def where(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else str(key)

    def error(self, key: str | int, problem: str) -> ConfigError:
        return ConfigError(self.file, self.where(key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value at `key`, checked against `kind`; required unless a default is given."""
        self._used.add(key)
        if key not in self.data or self.data[key] is None:
            if default is _MISSING:
                raise self.error(key, "required field is missing")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.error(key, f"expected {_kind_name(kind)}, got {_kind_name(type(value))}")
        return value

    def raw(self, key: str) -> Any:
        """The value at `key` as YAML gave it (for free-form entries)."""
        self._used.add(key)
        return self.data[key]

    def child(self, key: str, required: bool = False) -> Node:
        value = self.get(key, dict, _MISSING if required else {})
        return Node(self.file, self.where(key), value)

    def items(self, key: str) -> list[tuple[str, Any]]:
        """The entries of a mapping at `key` (empty when absent)."""
        return [(str(k), v) for k, v in self.get(key, dict, {}).items()]

    def duration(self, key: str, default: float) -> float:
        """A duration such as 10m, 30s, 2h or a number of seconds."""
        value = self.get(key, (str, int, float), default)
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(value)
        if not match:
            raise self.error(key, f"expected a duration such as 30s, 10m or 2h, got {value!r}")
        return float(match[1]) * _UNITS[match[2]]

    def done(self) -> None:
        """Reject keys nobody asked for (typos must not pass silently)."""
        for key in self.data:
            if key not in self._used:
                raise self.error(str(key), "unknown field")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(_kind_name(k) for k in kind)
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a mapping",
        list: "a list",
        type(None): "nothing",
    }.get(kind, kind.__name__)


def interpolate(value: Any, file: str, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string from the environment."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match[1], match[2]
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(file, path, f"environment variable {name} is not set")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, file, env, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, file, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
