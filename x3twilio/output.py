"""How results look: one JSON object for scripts, colour and a live status line for people.

Cheap to import (rich only where a table is drawn): cron starts the CLI every minute. Colour
and the status line are for a terminal only; piped output stays plain, with no escapes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from x3twilio.explain import Explanation
    from x3twilio.model import Count, Notification
    from x3twilio.pipeline import Progress

# -- JSON: one object on stdout, versioned -------------------------------------------------

JSON_VERSION = 1  # bumped when a key changes meaning or goes away; new keys may appear
POLL_COUNTS: tuple[Count, ...] = (
    "records", "queued", "sent", "failed", "skipped", "duplicate", "deferred", "rejected",
)  # fmt: skip
DRY_RUN_COUNTS: tuple[Count, ...] = ("records", "decided", "deferred", "rejected")
INGEST_COUNTS: tuple[Count, ...] = ("logged", "unmatched", "status", "failed")
REPLAY_COUNTS: tuple[Count, ...] = ("sent", "failed", "skipped", "deferred", "rejected")
INBOUND_COUNTS: tuple[Count, ...] = ("logged", "failed")


def emit_json(command: str, exit_code: int, **fields: Any) -> None:
    """Print `{"v": 1, "command", "exit_code", "error", **fields}` as one line on stdout.

    ASCII only: a value from X3 holding escape sequences reaches a terminal as \\u001b.
    """
    body = {"v": JSON_VERSION, "command": command, "exit_code": int(exit_code), "error": None}
    body |= fields  # error: what stopped the command or failed, as on the stderr line
    click.echo(json.dumps(json_value(body)))


def json_value(value: Any) -> Any:
    """`value` as JSON types: dates and times as ISO 8601 strings (times in UTC end in Z),
    decimals as strings (exact: 109.50 stays "109.50"), anything else unknown as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN is not JSON
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    return str(value)


def counts(counter: Mapping[Count, int], keys: Sequence[Count]) -> dict[str, int]:
    """The keys a script looks for (0 when nothing happened), then any others the run kept."""
    return {**dict.fromkeys(keys, 0), **{k: int(v) for k, v in sorted(counter.items())}}


def decision(n: Notification, outcome: str) -> dict[str, Any]:
    """A dry run's notification: what would be sent, to whom, or why not (`outcome`)."""
    return {
        "id": n.id,
        "rule": n.rule,
        "source": n.source,
        "record": n.record,
        "channel": n.channel,
        "to": n.to,
        "status": n.status,
        "reason": n.reason,
        "outcome": outcome,
        "not_before": n.not_before or None,
        "subject": n.subject,
        "body": n.body,
    }


def explanation(found: Explanation) -> dict[str, Any]:
    """`explain`'s record values, each rule's verdict with its conditions, the outbox's items."""
    return {
        "source": found.source,
        "key": found.key,
        "stamp": found.stamp,
        "values": dict(found.values),
        "rules": [
            {
                "name": v.rule,
                "matches": v.matches,
                "conditions": [
                    {"condition": c.text, "ok": c.ok, "field": c.field, "value": c.value}
                    for c in v.conditions
                ],
            }
            for v in found.verdicts
        ],
        "outbox": [
            {"rule": d.rule, "to": d.to, "status": d.status, "delivery": d.delivery or None}
            | {"detail": d.detail}
            for d in found.outbox
        ],
    }


# -- colour: a terminal only, never NO_COLOR (https://no-color.org) or TERM=dumb -------------

GREEN, RED, YELLOW = "green", "red", "yellow"
STATUS_COLOURS = {
    **dict.fromkeys(("✓", "sent", "delivered", "read", "completed", "logged"), GREEN),
    **dict.fromkeys(("✗", "failed", "undelivered", "canceled", "busy", "no-answer"), RED),
    # skipped, held, or a dry run's reason not to send
    **dict.fromkeys(("skipped", "deferred", "no_recipient", "invalid_number"), YELLOW),
    **dict.fromkeys(("opted_out", "duplicate", "unmatched"), YELLOW),
}
_ANSI = {GREEN: "\x1b[32m", RED: "\x1b[31m", YELLOW: "\x1b[33m"}
_RESET = "\x1b[0m"


def colour_wanted(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return (
        stream.isatty()
        and not os.environ.get("NO_COLOR")  # set and not empty, as no-color.org says
        and os.environ.get("TERM") != "dumb"
    )


def status_colour(cell: str) -> str | None:
    """The colour of a status cell by its first word: `deferred until 07:00` is yellow."""
    words = cell.split(maxsplit=1)
    return STATUS_COLOURS.get(words[0]) if words else None


def console(width: int | None = None) -> Console:
    """rich's console for stdout, with no escape sequences at all when colour is not wanted."""
    from rich.console import Console

    return Console(width=width, color_system="auto" if colour_wanted() else None, highlight=False)


def cells(row: Sequence[object], status_column: int | None = None) -> list[Text]:
    """A table row as plain text (X3 data is never markup, escapes show as \\x1b); the
    status column coloured by what it says."""
    from rich.text import Text

    from x3twilio.auditview import printable

    out = []
    for i, cell in enumerate(row):
        text = printable(str(cell))
        colour = status_colour(text) if i == status_column else None
        out.append(Text(text, style=colour or ""))
    return out


def echo_lines(lines: Sequence[str]) -> None:
    """Lines as they are when piped; on a terminal with what it would obey shown escaped
    (X3 data), and each condition's leading ✓/✗ coloured when colour is wanted."""
    if not sys.stdout.isatty():
        click.echo("\n".join(lines))
        return
    from x3twilio.auditview import printable

    paint = colour_wanted()
    click.echo("\n".join(_painted(printable(line)) if paint else printable(line) for line in lines))


def _painted(line: str) -> str:
    for mark, colour in (("  ✓ ", GREEN), ("  ✗ ", RED)):
        if line.startswith(mark):
            return f"  {_ANSI[colour]}{mark.strip()}{_RESET} {line[len(mark) :]}"
    return line


# -- progress: a live status line on a terminal's stderr --------------------------------------


class StatusLine:
    """One line on stderr, rewritten in place at each new step and at most every `interval`
    seconds within one, and wiped
    when the run ends. A carriage return and spaces only: no escape sequences."""

    def __init__(
        self, stream: TextIO, interval: float = 0.1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream, self.interval, self.clock = stream, interval, clock
        self.shown = 0  # characters on the line now
        self.last, self.doing = -math.inf, ""

    def __call__(self, doing: str, pages: int, counts: Mapping[Count, int]) -> None:
        now = self.clock()
        if doing != self.doing or now - self.last >= self.interval:  # a new step: at once
            self.last, self.doing = now, doing
            self.show(status_text(doing, pages, counts))

    def show(self, text: str) -> None:
        import shutil  # here: a terminal only, and shutil costs a cron run milliseconds

        text = text[: shutil.get_terminal_size().columns - 1]  # a wrapped line cannot be redrawn
        self.stream.write("\r" + text.ljust(self.shown))
        self.stream.flush()
        self.shown = len(text)

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0


def status_text(doing: str, pages: int, counts: Mapping[Count, int]) -> str:
    """`reading purchase_orders: 3 page(s), 240 records, 5 decided, 2 sent, 0 failed`."""
    decided = counts.get("decided") or counts.get("queued", 0) + counts.get("skipped", 0)
    return (
        f"{doing}: {pages} page(s), {counts.get('records', 0)} records, {decided} decided, "
        f"{counts.get('sent', 0)} sent, {counts.get('failed', 0)} failed"
    )


def _nothing(doing: str, pages: int, counts: Mapping[Count, int]) -> None:
    """Nothing to show: not a terminal, or -q."""


@contextmanager
def progress(quiet: bool, stream: TextIO | None = None) -> Iterator[Progress]:
    """A status line on stderr while the block runs, on a terminal and without -q only
    (cron mails any output); elsewhere a progress that shows nothing."""
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        yield _nothing
        return
    line = StatusLine(stream)
    try:
        yield line
    finally:
        line.close()
