"""`ingest`: process the spooled webhooks (statuses, opt-outs, replies logged in X3)."""

from __future__ import annotations

import click

from x3twilio.commands.common import App, json_option, run_failure, run_started
from x3twilio.errors import ExitCode


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what is waiting; process nothing.")
@json_option
@click.pass_obj
def ingest(app: App, dry_run: bool, as_json: bool) -> None:
    """Process spooled webhooks: delivery statuses, opt-outs, replies logged as notes in X3.

    \b
    Example:
      * * * * * x3twilio -q --config /etc/x3twilio.yaml ingest
    """
    from x3twilio.ingest import Ingester
    from x3twilio.output import INGEST_COUNTS, counts, emit_json

    app.json_for = "ingest" if as_json else None
    ingester = Ingester(app.config())
    if dry_run:
        waiting = ingester.pending()
        if as_json:
            spooled = {"total": sum(waiting.values()), "waiting": dict(sorted(waiting.items()))}
            emit_json("ingest", ExitCode.OK, dry_run=True, **spooled)
            return
        click.echo(
            f"{sum(waiting.values())} spooled: "
            + (", ".join(f"{route} {n}" for route, n in sorted(waiting.items())) or "nothing")
        )
        return
    from x3twilio.monitoring import monitored

    since = run_started()
    with monitored(ingester.config, "ingest") as run:
        report = ingester.run()
        run.exit_code = report.exit_code
    c = report.counts
    if not as_json:
        app.say(
            f"ingest: {c['logged']} logged, {c['unmatched']} unmatched, {c['status']} statuses, "
            f"{c['failed']} failed"
        )
    fields = {"dry_run": False, "run_id": report.run_id, "counts": counts(c, INGEST_COUNTS)}
    app.done("ingest", report.exit_code, run_failure(app, since, inbound=c["failed"]), fields)
