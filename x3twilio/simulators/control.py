"""The control routes of a simulator (`/_sim/...`, no auth): how a test in another process
drives it. One dispatcher for every simulator, and the fault routes they all share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from x3twilio.simulators import Faults, Reply, read_body

Owner = TypeVar("Owner")


def dispatch_control(
    environ: dict[str, Any],
    routes: Mapping[tuple[str, str], Callable[[Owner, dict[str, Any]], Reply]],
    owner: Owner,
) -> Reply:
    """Run the route of this request with its JSON body; 404 for no route, 400 for bad
    options (the error in a few words, so the test that sent them sees why)."""
    route = (environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
    handler = routes.get(route)
    if handler is None:
        return Reply(404, {"error": f"no control route {route[0]} {route[1]}"})
    try:
        options = json.loads(read_body(environ) or b"{}")
        if not isinstance(options, dict):
            raise TypeError("expected a JSON object")
        return handler(owner, options)
    except (ValueError, TypeError, KeyError) as error:
        return Reply(400, {"error": str(error)})


def add_fault(faults: Faults, options: dict[str, Any]) -> Reply:
    known = {key: options[key] for key in ("skip", "times", "delay") if key in options}
    fault = faults.add(str(options["kind"]), str(options.get("match", "")), **known)
    return Reply(201, asdict(fault))


def clear_faults(faults: Faults) -> Reply:
    faults.clear()
    return Reply(204)
