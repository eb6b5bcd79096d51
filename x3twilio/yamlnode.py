"""Strict reading of YAML: every error names the file and the path inside it.

A configuration file cannot hurt: it is read as UTF-8 text of bounded size, its nesting and
what its aliases expand to are bounded, a key given twice is an error (PyYAML's safe_load
keeps the last one silently), `${...}` that is not a variable reference is an error, and
every number is range-checked by the code that reads it (`Node.number`, `Node.duration`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from x3twilio.errors import ConfigError

_MISSING: Any = object()
# `$${` is a literal `${`; any other `${` opens a reference that must be well formed.
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_NAME_DEFAULT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds_in(text: str) -> float | None:
    """The seconds a duration such as 30s, 10m, 2h or 3d stands for; None if it is not one."""
    match = _DURATION.match(text)
    return float(match[1]) * _UNITS[match[2]] if match else None


MAX_BYTES = 1 << 20  # a configuration is a few KiB; /dev/zero must not be read for ever
MAX_DEPTH = 32  # the deepest real key (rules[0].when.FIELD.gt) is 5 levels down
MAX_VALUES = 100_000  # values after aliases are expanded (a billion-laughs file has 10^9)
MAX_CHARS = 4 << 20  # characters of text after aliases are expanded
MAX_DURATION = 366 * 86400.0  # no duration in this tool means more than a year
_MERGE = "tag:yaml.org,2002:merge"


def read_text(path: Path, file: str) -> str:
    """The file's text: UTF-8, at most MAX_BYTES; an error never shows its contents."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the configuration: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(file, "", f"larger than {MAX_BYTES >> 20} MiB: not a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            file,
            "",
            f"not UTF-8 text: the byte at offset {exc.start} (line {line}) cannot be decoded; "
            "save the file as UTF-8",
        ) from None


def load_yaml(text: str, file: str) -> Any:
    """safe_load, with duplicate keys, deep nesting and alias bombs refused."""
    try:
        loader = _StrictLoader(text, file)  # refuses control characters at once
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expansion = _Expansion(file)
        expansion.size(node, "")
        loader.paths = expansion.paths
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    finally:
        loader.dispose()


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting and reports values it cannot build at their place."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file, self.depth = file, 0
        self.paths: dict[int, str] = {}  # id(node) -> where it is, once composed

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:  # before recursing: the composer is recursive
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2026-13-01
            mark = node.start_mark
            reason = "more than 4300 digits" if "int_max_str_digits" in str(exc) else str(exc)
            raise ConfigError(
                self.file,
                self.paths.get(id(node)) or f"line {mark.line + 1}, column {mark.column + 1}",
                f"cannot read the value at line {mark.line + 1}, column {mark.column + 1} "
                f"({reason})",
            ) from None


def _yaml_error(file: str, exc: yaml.YAMLError) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigError(
            file,
            f"character {exc.position}",
            f"not valid YAML: control character #x{code:04x} is not allowed",
        )
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return ConfigError(file, where, f"not valid YAML: {problem}")


class _Expansion:
    """What the composed document expands to: aliases share nodes, readers copy them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, characters)
        self.paths: dict[int, str] = {}  # id(node) -> the path it was first met at
        self.open: set[int] = set()

    def size(self, node: yaml.Node, path: str) -> tuple[int, int]:
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in self.open:
            raise ConfigError(self.file, path or "(top level)", "an alias refers to its own parent")
        self.open.add(id(node))
        self.paths[id(node)] = path
        values, chars = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        if isinstance(node, yaml.SequenceNode):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(node.value)]
        elif isinstance(node, yaml.MappingNode):
            self._unique(node, path)
            children = [
                (at, part)
                for key, value in node.value
                for at in [_key_path(path, key)]
                for part in (key, value)
            ]
        else:
            children = []
        for at, child in children:
            more = self.size(child, at)
            values, chars = values + more[0], chars + more[1]
        self.open.discard(id(node))
        if values > MAX_VALUES or chars > MAX_CHARS:
            raise ConfigError(
                self.file,
                path or "(top level)",
                f"expands to more than {MAX_VALUES:,} values or {MAX_CHARS >> 20} MiB of text "
                "(an alias counts each time it is used)",
            )
        self.sizes[id(node)] = (values, chars)
        return values, chars

    def _unique(self, node: yaml.MappingNode, path: str) -> None:
        """A key given twice is an error: YAML would keep the last one without a word."""
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                continue
            line, ident = key.start_mark.line + 1, (key.tag, key.value)
            if ident in first:
                raise ConfigError(
                    self.file,
                    _key_path(path, key),
                    f"duplicate key (first at line {first[ident]}, again at line {line}); "
                    "give it once",
                )
            first[ident] = line


def _key_path(path: str, key: yaml.Node) -> str:
    name = key.value if isinstance(key, yaml.ScalarNode) else "?"
    return f"{path}.{name}" if path else str(name)


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
            try:
                return float(value)
            except OverflowError:
                raise self.error(key, "number too large") from None
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

    def number(
        self, key: str, kind: type[int] | type[float], default: Any, low: float, high: float
    ) -> Any:
        """An integer or a number within [low, high]; `default` (None too) when absent."""
        value = self.get(key, kind, default)
        if key not in self.data or self.data[key] is None:
            return value
        if not (math.isfinite(value) and low <= value <= high):
            shown = _count(value) if abs(value) < 1e15 else f"{value:.3g}"
            raise self.error(key, f"expected {_count(low)} to {_count(high)}, got {shown}")
        return value

    def duration(
        self, key: str, default: float, low: float = 0.0, high: float = MAX_DURATION
    ) -> float:
        """A duration such as 10m, 30s, 2h or a number of seconds, within [low, high]."""
        value = self.get(key, (str, int, float), default)
        if key not in self.data or self.data[key] is None:
            return float(value)
        if isinstance(value, str):
            found = seconds_in(value)
            if found is None:
                raise self.error(key, f"expected a duration such as 30s, 10m or 2h, got {value!r}")
            seconds, shown = found, repr(value.strip())
        else:
            try:
                seconds = float(value)
            except OverflowError:
                seconds = math.inf
            shown = f"{seconds:g}" if math.isfinite(seconds) else str(seconds)
        if not (math.isfinite(seconds) and low <= seconds <= high):
            span = f"{seconds_text(low)} to {seconds_text(high)}"
            raise self.error(key, f"expected a duration from {span}, got {shown}")
        return seconds

    def done(self, also: Iterable[str] = ()) -> None:
        """Reject keys nobody asked for (typos must not pass silently), suggesting the close
        known name; `also`: names this node knows but did not read this time (suggested too)."""
        known = self._used | set(also)
        for key in self.data:
            if key not in self._used:
                raise self.error(str(key), "unknown field" + did_you_mean(str(key), known))


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'expected_date'?` when one known name is close to `name`, else ""."""
    by_lower = {k.lower(): k for k in sorted(set(known) - {name}, reverse=True)}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""


def seconds_text(seconds: float) -> str:
    """A duration as the file would write it: 0s, 100ms, 10m, 7d."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms" if 0 < seconds < 1 else f"{seconds:g}s"


def _count(number: float) -> str:
    """1,000 for bounds, 0.5 for a rate, nan as nan."""
    if not math.isfinite(number) or not float(number).is_integer():
        return f"{number:g}"
    return f"{int(number):,}" if abs(number) >= 10_000 else str(int(number))


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
    """Replace ${VAR} and ${VAR:-default} in every string from the environment.

    `$${` stands for a literal `${`; any other `${` that is not such a reference is an error
    (a malformed `${X3 PASSWORD}` must not become a password). The message never quotes the
    text: it may be a secret written into the file.
    """
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            if match[0] == "$${":
                return "${"
            body, at = match[1], f"at character {match.start() + 1}"
            reference = _NAME_DEFAULT.fullmatch(body) if match[2] else None
            if reference is None or "${" in (reference[2] or ""):
                raise ConfigError(file, path, f"malformed variable reference {at}: {_why(match)}")
            name, default = reference[1], reference[2]
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(file, path, f"environment variable {name} is not set")

        return _REFERENCE.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate(v, file, env, f"{path}.{k}" if path else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate(v, file, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _why(match: re.Match[str]) -> str:
    body = match[1]
    name = body.split(":", 1)[0]
    if not match[2]:
        reason = "no closing }"
    elif not body:
        reason = "${} names no variable"
    elif not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        reason = "a name holds only letters, digits and _, and does not start with a digit"
    elif "${" in body:
        reason = "references do not nest"
    else:
        reason = "a default is written ${NAME:-default}"
    return f"{reason} (expected ${{NAME}} or ${{NAME:-default}}; $${{ is a literal ${{)"
