"""Query the audit trail: the records that match some filters, in order, in constant memory.

Which lines can match is worked out on raw bytes (auditscan); what is shown is rendered by
auditview.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from x3twilio.auditfilters import Filters
from x3twilio.auditscan import scan, segments
from x3twilio.errors import StateError


def query(state_dir: Path, filters: Filters, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The records that match, oldest segment first, in constant memory."""
    return _select(state_dir, filters, limit, raw=False)


def query_lines(state_dir: Path, filters: Filters, limit: int | None = None) -> Iterator[bytes]:
    """The same records as `query`, as the lines the trail stores (for JSON output)."""
    return _select(state_dir, filters, limit, raw=True)


_T = TypeVar("_T")


def newest(records: Iterable[_T], count: int) -> list[_T]:
    """The last `count` of `records`, newest first, holding only those in memory."""
    return list(reversed(deque(records, maxlen=count)))


def _select(state_dir: Path, filters: Filters, limit: int | None, raw: bool) -> Iterator[Any]:
    left = -1 if limit is None else max(limit, 0)  # -1: no limit
    try:
        found = scan(segments(state_dir, filters) if left else [], filters)
        for line, rec in found:
            yield line if raw else rec if rec is not None else json.loads(line)
            left -= 1
            if left == 0:
                return
    except OSError as exc:
        raise StateError(f"cannot read the audit trail in {state_dir}: {exc}") from None


def story(state_dir: Path, record_key: str) -> list[dict[str, Any]]:
    """Everything about one X3 record, in time order: decided, attempts, sent, delivery, replies."""
    found = list(query(state_dir, Filters(record=record_key)))
    return sorted(found, key=lambda rec: str(rec.get("ts", "")))  # stable: file order on ties
