"""What the commands share: the run's App, the one line a failing run prints, time and rows.

Imports of anything heavy happen inside functions: cron starts x3twilio every minute.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from x3twilio.errors import ExitCode

if TYPE_CHECKING:
    from x3twilio.config import Config


@dataclass
class App:
    """One run of the command line: its global options, how a command speaks and exits."""

    config_option: str | None
    state_dir: str | None
    verbose: bool
    quiet: bool
    env_file: str | None = None
    json_for: str | None = None  # the command run with --json: an error is a JSON object too

    def config(self) -> Config:
        from x3twilio.config import config_path, load_config

        return load_config(config_path(self.config_option), state_dir=self.state_dir)

    def say(self, text: str) -> None:
        if not self.quiet:
            click.echo(text)

    def command(self, *args: str) -> str:
        """A command line to copy, with this run's --config and --state-dir."""
        words = ["x3twilio"]
        if self.config_option:
            words += ["--config", self.config_option]
        if self.state_dir:
            words += ["--state-dir", self.state_dir]
        if self.env_file:
            words += ["--env-file", self.env_file]
        return shlex.join([*words, *args])

    def finish(self, command: str, code: int, failure: Failure) -> None:
        """Exit with `code`; a failure is one line on stderr, with where to look, even with -q."""
        if code == ExitCode.OK:
            return
        where = " and ".join(f"`{self.command('audit', *look)}`" for look in failure.looks)
        line = f"x3twilio: {command}: {failure.what}" + (f"; see {where}" if where else "")
        click.echo(line + (f"; {failure.then}" if failure.then else ""), err=True)
        sys.exit(code)

    def done(self, command: str, code: int, failure: Failure, fields: dict[str, Any]) -> None:
        """As finish, printing the command's JSON object first when it runs with --json."""
        if self.json_for:
            from x3twilio.output import emit_json

            emit_json(command, code, error=failure.what if code else None, **fields)
        self.finish(command, code, failure)


@dataclass
class Failure:
    """What a run that exits non-zero says on its one line."""

    what: str  # what failed
    looks: Sequence[Sequence[str]] = ()  # `audit` queries that show it
    then: str = ""  # what to do next


def run_started() -> str:
    """Now, to the second, as `audit --since` takes it: the records of this run follow."""
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


def run_failure(
    app: App, since: str, failed: int = 0, inbound: int = 0, rejected: int = 0
) -> Failure:
    """What a run that exits 1 says: its failed notifications, inbound items, X3 records."""
    parts, looks = [], []
    if failed:
        parts.append(f"{failed} notification(s) failed")
        looks.append(["--since", since, "--event", "notification.failed"])
    if inbound:
        parts.append(f"{inbound} inbound item(s) failed")
        looks.append(["--since", since, "--event", "inbound.failed"])
    if rejected:
        parts.append(f"{rejected} X3 record(s) rejected")
        looks.append(["--since", since, "--event", "record.rejected"])
    if not parts:  # a reason this version does not count: the run's records tell it
        return Failure("some items failed", [["--since", since]])
    then = f"`{app.command('replay')}` retries what failed" if failed or inbound else ""
    return Failure(", ".join(parts), looks, then or "a record fixed in X3 is read again")


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout (see README, Output)."
)


def iso_time(text: str | None, option: str = "--since") -> datetime | None:
    """An ISO 8601 time or date (UTC), `today`, `yesterday`, or a time ago such as 2h or 3d."""
    if text is None:
        return None
    from x3twilio.decoding import parse_stamp
    from x3twilio.yamlnode import seconds_in

    now = datetime.now(UTC)
    days_back = {"today": 0, "yesterday": 1}.get(text.strip().lower())
    if days_back is not None:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight - timedelta(days=days_back)
    ago = seconds_in(text)
    if ago is not None:
        return now - timedelta(seconds=ago)
    if "T" not in text:
        text += "T00:00:00"  # a date alone: from midnight UTC
    try:
        return parse_stamp(text if text[-1:] in "Zz" or "+" in text else text + "Z")
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time, today, yesterday or a time ago such as 2h",
            param_hint=option,
        ) from None


def print_rows(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    title: str,
    console: Any = None,
    status_column: int | None = None,
) -> None:
    """A rich table on a terminal, its status column coloured; tab-separated lines when piped.

    Cells are plain text: X3 data and replies may hold [brackets] that are not rich markup.
    """
    if console is None and not sys.stdout.isatty():  # one write: 50,000 rows must not crawl
        lines = ["\t".join(headers), *("\t".join(str(cell) for cell in row) for row in rows)]
        click.echo("\n".join(lines))
        return
    from rich.table import Table

    from x3twilio import output
    from x3twilio.auditview import texts

    table = Table(*headers, title=texts(title)[0])
    for row in rows:
        table.add_row(*output.cells(row, status_column))
    (console or output.console()).print(table)
