"""The customer's GraphQL schema, learnt by standard introspection and cached in the state dir.

Only the types in use are read (`__type(name:)`, batched with aliases), never the whole
`__schema` of an X3 (thousands of types): the roots, the packages and nodes the
configuration maps, and the types their field paths walk through. What is read is kept in
`x3-graphql-schema.json` with when and from where; a copy older than `x3.schema_max_age`,
or from another URL or folder, is read again, and `check` always reads afresh.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from x3twilio.state import ensure_dir, write_atomic

SCHEMA_FILE = "x3-graphql-schema.json"
VERSION = 1
_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
TYPE_FRAGMENT = (
    "fragment T on __Type { name kind "
    "fields(includeDeprecated: true) { name args { name type { ...R } } type { ...R } } "
    "inputFields { name type { ...R } } enumValues(includeDeprecated: true) { name } } "
    f"fragment R on __Type {{ {_REF} }}"
)
ROOTS = "query Roots { __schema { queryType { name } mutationType { name } } }"
_OBJECTS = ("OBJECT", "INTERFACE")
# Where a reference ends: walking on through these fields reaches its scalar key.
KEY_FIELDS = ("code", "id", "_id")
# Scalar names -> this client's kinds (anything else reads as text).
SCALARS = {
    "String": "text",
    "ID": "text",
    "Id": "text",
    "Int": "int",
    "Float": "decimal",
    "Decimal": "decimal",
    "Date": "date",
    "Datetime": "stamp",
    "DateTime": "stamp",
    "Boolean": "bool",
}
T = TypeVar("T")


@dataclass(frozen=True)
class Ref:
    """A field's type with NON_NULL taken off: its named type, and whether it is a list."""

    name: str
    kind: str
    list: bool = False


@dataclass(frozen=True)
class Resolved:
    """A field path as the server has it: the full path to a scalar, its kind and values."""

    path: tuple[str, ...]
    kind: str  # text, int, decimal, date, stamp, bool, yesno (enum NoYes), enum
    type_name: str
    values: tuple[str, ...] = ()  # an enum's values, in the schema's order


class Unloaded(Exception):
    """A type that has not been read yet (Schema.settle reads it and tries again)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class Absent(Exception):
    """What the schema lacks, in words naming the type and the field."""


def _ref(raw: Any) -> Ref:
    listed = False
    while isinstance(raw, dict) and raw.get("kind") in ("NON_NULL", "LIST"):
        listed = listed or raw.get("kind") == "LIST"
        raw = raw.get("ofType")
    if not isinstance(raw, dict):
        return Ref("", "SCALAR")
    return Ref(str(raw.get("name") or ""), str(raw.get("kind") or ""), listed)


def _compact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An introspected __Type as stored: fields with args, input fields, enum values."""
    fields = {}
    for f in raw.get("fields") or []:
        args = {str(a["name"]): _ref(a.get("type")).__dict__ for a in f.get("args") or []}
        fields[str(f["name"])] = {"type": _ref(f.get("type")).__dict__, "args": args}
    return {
        "kind": raw.get("kind"),
        "fields": fields,
        "inputs": {
            str(f["name"]): _ref(f.get("type")).__dict__ for f in raw.get("inputFields") or []
        },
        "values": [str(v["name"]) for v in raw.get("enumValues") or []],
    }


class Schema:
    """The types read so far, and a way to read more (`fetch`: a GraphQL POST)."""

    def __init__(
        self,
        run: Callable[[str], Mapping[str, Any]],
        source: str,
        data: Mapping[str, Any] | None = None,
        on_change: Callable[[Schema], None] | None = None,
    ) -> None:
        self.run, self.source, self.on_change = run, source, on_change
        data = data or {}
        self.read_at: str = str(data.get("read_at") or _now())
        self.query_root: str | None = data.get("query_root")
        self.mutation_root: str | None = data.get("mutation_root")
        self.types: dict[str, dict[str, Any] | None] = dict(data.get("types") or {})
        self.requests = 0  # introspection requests this object sent

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "read_at": self.read_at,
            "source": self.source,
            "query_root": self.query_root,
            "mutation_root": self.mutation_root,
            "types": self.types,
        }

    # -- reading --------------------------------------------------------------------------

    def roots(self) -> None:
        if self.query_root is not None:
            return
        data = self.run(ROOTS)
        self.requests += 1
        schema = data.get("__schema") if isinstance(data, Mapping) else None
        schema = schema if isinstance(schema, Mapping) else {}
        query = schema.get("queryType") or {}
        mutation = schema.get("mutationType") or {}
        self.query_root = str(query.get("name") or "Query")
        self.mutation_root = str(mutation["name"]) if mutation.get("name") else ""
        self._changed()

    def fetch(self, names: Iterable[str]) -> None:
        """Read these types in one request (aliases t0, t1...)."""
        wanted = sorted({n for n in names if n and n not in self.types})
        if not wanted:
            return
        parts = " ".join(
            f"t{i}: __type(name: {json.dumps(n)}) {{ ...T }}" for i, n in enumerate(wanted)
        )
        data = self.run(f"query Types {{ {parts} }} {TYPE_FRAGMENT}")
        self.requests += 1
        for i, name in enumerate(wanted):
            raw = data.get(f"t{i}") if isinstance(data, Mapping) else None
            self.types[name] = _compact(raw) if isinstance(raw, Mapping) else None
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def get(self, name: str) -> dict[str, Any] | None:
        if name not in self.types:
            raise Unloaded(name)
        return self.types[name]

    def settle(self, jobs: Mapping[str, Callable[[], T]]) -> dict[str, T | Absent]:
        """Run each job, reading the types they lack in batches until all are done."""
        self.roots()
        done: dict[str, T | Absent] = {}
        while True:
            wanted = set()
            for key, job in jobs.items():
                if key in done:
                    continue
                try:
                    done[key] = job()
                except Unloaded as exc:
                    wanted.add(exc.name)
                except Absent as exc:
                    done[key] = exc
            if not wanted:
                return done
            self.fetch(wanted)

    def one(self, job: Callable[[], T]) -> T:
        result = self.settle({"": job})[""]
        if isinstance(result, Absent):
            raise result
        return result

    # -- walking --------------------------------------------------------------------------

    def fields(self, type_name: str) -> dict[str, Any]:
        found = self.get(type_name)
        return dict(found["fields"]) if found else {}

    def field(self, type_name: str, name: str) -> Ref:
        found = self.fields(type_name).get(name)
        if found is None:
            raise Absent(f"{type_name} has no field {name}")
        return Ref(**found["type"])

    def root_fields(self, mutation: bool = False) -> list[str]:
        root = self.mutation_root if mutation else self.query_root
        return sorted(self.fields(root)) if root else []

    def package_root(self, package: str, configured: str | None) -> str:
        """The root field this X3 names `package` by: as configured, as named, or legacy."""
        names = self.fields(self.query_root or "Query")
        for candidate in package_candidates(package, configured):
            if candidate in names:
                return candidate
        raise Absent(
            f"no package {package}"
            + (f" (nor {configured})" if configured and configured != package else "")
            + " among the schema's roots"
        )

    def node_type(self, root: str, node: str) -> str:
        """The type of `root.node.query.edges.node`: what a record of the node is."""
        package = self.field(self.query_root or "Query", root)
        operations = self.field(package.name, node)
        connection = self.field(operations.name, "query")
        edges = self.field(connection.name, "edges")
        return self.field(edges.name, "node").name

    def mutation_input(self, root: str, node: str, operation: str) -> tuple[str, dict[str, Ref]]:
        """(input type name, its fields) of `mutation { root { node { operation(data:) } } }`."""
        if not self.mutation_root:
            raise Absent("the schema has no mutations at all")
        package = self.field(self.mutation_root, root)
        operations = self.field(package.name, node)
        found = self.fields(operations.name).get(operation)
        if found is None:
            raise Absent(f"{root}.{node} has no {operation} mutation")
        data = found["args"].get("data")
        if data is None:
            raise Absent(f"{root}.{node}.{operation} takes no data argument")
        name = Ref(**data).name
        inputs = self.get(name)
        return name, {k: Ref(**v) for k, v in (inputs or {}).get("inputs", {}).items()}

    def resolve(self, type_name: str, path: tuple[str, ...]) -> Resolved:
        """Walk `path` from `type_name` to a scalar; a path that stops at a reference goes
        on through its key (code, id or _id)."""
        current, walked = type_name, list(path)
        ref: Ref | None = None
        for depth, part in enumerate(path):
            ref = self.field(current, part)
            if ref.list or ref.name.endswith("_Collection"):
                raise Absent(f"{current}.{part} is a collection, not one value")
            if ref.kind in _OBJECTS:
                current = ref.name
            elif depth < len(path) - 1:
                raise Absent(f"{current}.{part} is a {ref.name}, with no field {path[depth + 1]}")
        for _ in range(4):  # a reference: on to its key
            if ref is None or ref.kind not in _OBJECTS:
                break
            own = self.fields(current)
            key = next((k for k in KEY_FIELDS if k in own), None)
            if key is None:
                raise Absent(f"{'.'.join(walked)} is a {current} with no code, id or _id")
            walked.append(key)
            ref = self.field(current, key)
            current = ref.name
        if ref is None or ref.kind in _OBJECTS:
            raise Absent(f"{'.'.join(walked)} does not reach a value")
        return self.leaf(tuple(walked), ref)

    def leaf(self, path: tuple[str, ...], ref: Ref) -> Resolved:
        if ref.kind == "ENUM":
            enum = self.get(ref.name) or {}
            values = tuple(enum.get("values") or ())
            yes_no = ref.name == "NoYes" or set(values) == {"no", "yes"}
            return Resolved(path, "yesno" if yes_no else "enum", ref.name, values)
        return Resolved(path, SCALARS.get(ref.name, "text"), ref.name)


def package_candidates(package: str, configured: str | None) -> list[str]:
    legacy = f"xtrem{package[0].upper()}{package[1:]}"
    return list(dict.fromkeys(c for c in (configured, package, legacy) if c))


class SchemaStore:
    """x3-graphql-schema.json in the state directory (atomic writes, 0600)."""

    def __init__(self, state_dir: Path | None) -> None:
        self.dir = state_dir
        self.path = state_dir / SCHEMA_FILE if state_dir else None

    def create(self) -> None:
        if self.dir is not None:
            ensure_dir(self.dir)

    def read(
        self, source: str, max_age: float, now: datetime | None = None
    ) -> dict[str, Any] | None:
        """The cached schema if it is from `source` and younger than `max_age` seconds."""
        if self.path is None:
            return None
        try:
            data: Any = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None  # missing or unreadable: read the schema again
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return None
        if data.get("source") != source or not isinstance(data.get("types"), dict):
            return None
        try:
            read_at = datetime.fromisoformat(str(data["read_at"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return None
        age = ((now or datetime.now(UTC)) - read_at).total_seconds()
        return data if 0 <= age <= max_age else None

    def write(self, schema: Schema) -> None:
        """Only into a state directory that exists: a dry run creates none (check does)."""
        if self.path is None or self.dir is None or not self.dir.is_dir():
            return
        write_atomic(self.path, json.dumps(schema.to_json(), sort_keys=True).encode() + b"\n")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
