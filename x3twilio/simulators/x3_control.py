"""The simulated X3's control routes under `/_sim/`: faults, latency and records, for tests
that drive a simulator running in another process. No authentication, as no X3 has them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol

from . import Faults, Reply
from .x3_errors import SimError
from .x3_pages import diagnoses
from .x3_requests import json_object
from .x3data import Record

FAULT_KINDS = (
    *("500", "503", "429", "401", "html", "html200", "garbage", "diagnoses", "licence"),
    *("timeout", "reset"),  # the real answer, late or never
)


class Controlled(Protocol):
    """What the control routes change: the simulator's faults, latency and records."""

    faults: Faults
    latency_ms: float

    def records(self, cls: str) -> list[Record]: ...
    def create(self, cls: str, record: Mapping[str, Any]) -> Record: ...
    def update(self, cls: str, key: str, **changes: Any) -> Record: ...


def control(sim: Controlled, environ: dict[str, Any], path: str) -> Reply:
    method = environ["REQUEST_METHOD"]
    try:
        if path == "/_sim/faults":
            return _faults(sim, method, environ)
        if path == "/_sim/latency" and method == "POST":
            sim.latency_ms = float(json_object(environ).get("ms", 0))
            return Reply(200, {"ms": sim.latency_ms})
        if path.startswith("/_sim/records/"):
            return _records(sim, method, path.removeprefix("/_sim/records/"), environ)
    except SimError as error:
        return Reply(error.status, diagnoses(error.message))
    except (TypeError, ValueError) as error:
        return Reply(400, diagnoses(f"Invalid control request: {error}"))
    return Reply(404, diagnoses(f"No control route {method} {path}"))


def _records(sim: Controlled, method: str, target: str, environ: dict[str, Any]) -> Reply:
    """GET {CLASS}: every record; POST {CLASS}: create one; PATCH {CLASS}/{KEY}: change
    one. As the Python API does it (stamped now), for a harness in another process."""
    cls, _, key = target.partition("/")
    if method == "GET" and not key:
        return Reply(200, sim.records(cls))
    if method == "POST" and not key:
        return Reply(201, sim.create(cls, json_object(environ)))
    if method == "PATCH" and key:
        return Reply(200, sim.update(cls, key, **json_object(environ)))
    raise SimError(405, f"{method} is not allowed on /_sim/records/{target}")


def _faults(sim: Controlled, method: str, environ: dict[str, Any]) -> Reply:
    if method == "DELETE":
        sim.faults.clear()
        return Reply(204)
    if method == "GET":
        return Reply(200, [asdict(fault) for fault in list(sim.faults.items)])
    if method != "POST":
        raise SimError(405, f"{method} is not allowed on /_sim/faults")
    body = json_object(environ)
    if body.get("kind") not in FAULT_KINDS:
        raise SimError(400, f"Unknown fault kind {body.get('kind')!r}")
    options = {k: body[k] for k in ("skip", "times", "delay") if k in body}
    fault = sim.faults.add(str(body["kind"]), str(body.get("match", "")), **options)
    return Reply(201, asdict(fault))
