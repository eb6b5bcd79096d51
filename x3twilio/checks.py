"""One line of `check`'s report: what was checked, whether it passed, and how to fix it.

Its own module so that the site checks (api1's and GraphQL's) and `doctor`, which runs them,
share it without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    setup: bool = False  # a mismatch between the configuration and this X3 (exit 78)
