"""`audit`: query the audit trail as a table, JSON lines or CSV; a summary; a record's story."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from x3twilio.commands.common import App, iso_time


@click.command()
@click.option(
    "--since", metavar="WHEN", help="At or after: ISO 8601 (UTC), today, yesterday, or 2h, 3d ago."
)
@click.option("--until", metavar="WHEN", help="Before this time (as --since).")
@click.option("--rule", help="Only this rule.")
@click.option("--source", help="Only this source.")
@click.option("--record", metavar="KEY", help="One X3 record's whole story.")
@click.option("--to", "--from", "phone", metavar="PHONE", help="Sent to or received from.")
@click.option(
    "--partner", metavar="CODE", help="About this supplier or customer (sent to, or replied)."
)
@click.option("--status", help="e.g. failed, sent, delivered, logged.")
@click.option("--event", help="e.g. notification.failed, failed, inbound.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(min=0), help="At most this many records.")
@click.option(
    "--last", type=click.IntRange(min=1), metavar="N", help="The newest N records, newest first."
)
@click.option("--summary", is_flag=True, help="Counts by rule and status, delivery rate.")
@click.pass_obj
def audit(
    app: App,
    since: str | None,
    until: str | None,
    rule: str | None,
    source: str | None,
    record: str | None,
    phone: str | None,
    partner: str | None,
    status: str | None,
    event: str | None,
    fmt: str,
    limit: int | None,
    last: int | None,
    summary: bool,
) -> None:
    """Query the audit trail: table, JSON lines or CSV; a summary; one record's story.

    \b
    Example:
      x3twilio audit --status failed --since 2026-11-01T00:00:00Z
      x3twilio audit --record POFR0110113
      x3twilio audit --partner FR001 --last 20
      x3twilio audit --summary --since yesterday
    """
    from x3twilio import auditquery as aq
    from x3twilio import auditview as av
    from x3twilio.auditfilters import Filters
    from x3twilio.phones import to_e164

    config = app.config()
    state_dir = config.state_dir
    filters = Filters(
        since=iso_time(since, "--since"),
        until=iso_time(until, "--until"),
        rule=rule,
        source=source,
        record=record,
        phone=(to_e164(phone, config.region) or phone) if phone else None,
        status=status,
        event=event,
        partner=partner,
    )
    if last is not None:
        _render_newest(state_dir, filters, last, fmt)
    elif summary:
        totals = av.summary(aq.query(state_dir, filters))
        if fmt == "json":
            click.echo(json.dumps(totals.as_dict()))
        else:
            av.render_summary(totals, _console())
    elif fmt == "json":
        av.render_json(aq.query_lines(state_dir, filters, limit), sys.stdout.buffer)
    elif fmt == "csv":
        av.render_csv(aq.query(state_dir, filters, limit), sys.stdout)
    elif record and not any((since, until, rule, source, phone, partner, status, event)):
        av.render_story(aq.story(state_dir, record), _console(), record)
    else:
        av.render_table(aq.query(state_dir, filters, limit), _console())


def _render_newest(state_dir: Path, filters: Any, count: int, fmt: str) -> None:
    from x3twilio import auditquery as aq
    from x3twilio import auditview as av

    if fmt == "json":
        av.render_json(aq.newest(aq.query_lines(state_dir, filters), count), sys.stdout.buffer)
    elif fmt == "csv":
        av.render_csv(aq.newest(aq.query(state_dir, filters), count), sys.stdout)
    else:
        av.render_table(aq.newest(aq.query(state_dir, filters), count), _console())


def _console() -> Any:
    from rich.console import Console

    # piped or redirected: wide enough that sids and messages are not folded
    return Console() if sys.stdout.isatty() else Console(width=200)
