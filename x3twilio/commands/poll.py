"""`poll`: one pass from X3's changes to Twilio, or a dry run that prints its decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from x3twilio.commands.common import (
    App,
    iso_time,
    json_option,
    print_rows,
    run_failure,
    run_started,
)
from x3twilio.errors import ExitCode

if TYPE_CHECKING:
    from x3twilio.config import Config
    from x3twilio.pipeline import Poller, RunReport


@click.command()
@click.option("--dry-run", is_flag=True, help="Decide and print; send nothing, write no state.")
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source.")
@click.option(
    "--since", metavar="WHEN", help="Read changes from: ISO 8601 (UTC), today, yesterday, 2h, 3d."
)
@json_option
@click.pass_obj
def poll(
    app: App, dry_run: bool, sources: tuple[str, ...], since: str | None, as_json: bool
) -> None:
    """Run one polling pass: X3 changes → rules → outbox → Twilio → audit.

    \b
    Example:
      */2 * * * * x3twilio -q --config /etc/x3twilio.yaml poll
    """
    from x3twilio.output import POLL_COUNTS, counts, progress
    from x3twilio.pipeline import Poller

    app.json_for = "poll" if as_json else None
    config = app.config()
    unknown = [s for s in sources if s not in {x.name for x in config.used_sources()}]
    if unknown:
        raise click.BadParameter(f"no rule reads source {unknown[0]!r}", param_hint="--source")
    started = run_started()
    with progress(app.quiet) as shown:  # a status line on a terminal's stderr, else nothing
        poller = Poller(
            config, dry_run=dry_run, only=sources, since=iso_time(since), progress=shown
        )
        report = poller.run() if dry_run else _monitored_poll(config, poller)
    if dry_run:
        _print_decisions(app, report, config)
        return
    if not as_json:
        app.say(_summary(report))
    c = report.counts
    fields = {"dry_run": False, "run_id": report.run_id, "counts": counts(c, POLL_COUNTS)}
    failure = run_failure(app, started, c["failed"], 0, c["rejected"])
    app.done("poll", report.exit_code, failure, fields)


def _monitored_poll(config: Config, poller: Poller) -> RunReport:
    from x3twilio.monitoring import monitored

    with monitored(config, "poll") as run:
        run.reads = poller.report.reads  # filled as each source is read, kept if one fails
        report = poller.run()
        run.exit_code = report.exit_code
    return report


def _summary(report: RunReport) -> str:
    c = report.counts
    return (
        f"poll: {c['records']} records read, {c['queued']} queued, {c['sent']} sent, "
        f"{c['failed']} failed, {c['skipped']} skipped, {c['duplicate']} duplicates"
        + (f", {c['deferred']} deferred by quiet hours" if c["deferred"] else "")
        + (f", {c['rejected']} records rejected (see the audit trail)" if c["rejected"] else "")
    )


def _print_decisions(app: App, report: RunReport, config: Config) -> None:
    from x3twilio.screening import outcome_text

    if app.json_for:
        from x3twilio.output import DRY_RUN_COUNTS, counts, decision, emit_json

        decisions = [decision(n, outcome_text(n, config)) for n in report.decided]
        shown = counts(report.counts, DRY_RUN_COUNTS)
        emit_json("poll", ExitCode.OK, dry_run=True, counts=shown, decisions=decisions)
        return
    rows = [(n.rule, n.record, n.to, outcome_text(n, config), n.body) for n in report.decided]
    print_rows(
        ("rule", "record", "to", "outcome", "message"),
        rows,
        f"{len(rows)} notification(s) would be decided (dry run)",
        status_column=3,
    )
