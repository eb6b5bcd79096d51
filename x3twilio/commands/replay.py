"""`replay`: retry failed notifications and inbound items, or show what would be retried."""

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
    from x3twilio.replay import ReplayOutcome


@click.command()
@click.option(
    "--since", metavar="WHEN", help="Only items decided or received since (as audit --since)."
)
@click.option("--until", metavar="WHEN", help="Only items decided or received before.")
@click.option("--rule", help="Only notifications of this rule.")
@click.option("--id", "ids", multiple=True, help="Only this notification id or message sid.")
@click.option(
    "--include-permanent",
    is_flag=True,
    help="Also retry permanent failures (re-reads the recipient from X3).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be retried.")
@json_option
@click.pass_obj
def replay(
    app: App,
    since: str | None,
    until: str | None,
    rule: str | None,
    ids: tuple[str, ...],
    include_permanent: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Retry failed notifications and failed inbound items; never resend what Twilio has.

    \b
    Example:
      x3twilio replay --rule po-approved --since 2026-11-01T00:00:00Z --dry-run
    """
    from x3twilio.output import INBOUND_COUNTS, REPLAY_COUNTS, counts
    from x3twilio.replay import replay as run_replay

    app.json_for = "replay" if as_json else None
    window = (iso_time(since, "--since"), iso_time(until, "--until"))
    started = run_started()
    config = app.config()
    outcome = run_replay(config, window, rule, ids, include_permanent, dry_run)
    if dry_run:
        _print_retries(app, outcome, config)
        return
    c, i = outcome.notifications.counts, outcome.ingest.counts if outcome.ingest else {}
    deferred = f", {c['deferred']} deferred by quiet hours" if c["deferred"] else ""
    if not as_json:
        app.say(
            f"replay: {c['sent']} sent, {c['failed']} failed, {c['skipped']} skipped{deferred}; "
            f"inbound {i.get('logged', 0)} logged, {i.get('failed', 0)} failed"
        )
    fields = {
        "dry_run": False,
        "counts": counts(c, REPLAY_COUNTS),
        "inbound": counts(i, INBOUND_COUNTS),
    }
    failure = run_failure(app, started, c["failed"], i.get("failed", 0), c["rejected"])
    app.done("replay", outcome.exit_code, failure, fields)


def _print_retries(app: App, outcome: ReplayOutcome, config: Config) -> None:
    """What a replay would retry: failed notifications (or held by quiet hours), inbound items."""
    from x3twilio.screening import QUIET, outcome_text

    rows = [
        (n.id, n.rule, n.record, n.to, outcome_text(n, config) if n.reason == QUIET
         else n.status, n.error_message or "")
        for n in outcome.notifications.decided
    ]  # fmt: skip
    rows += [
        (i.name, "inbound", i.payload.get("route", ""), "", "failed", "") for i in outcome.inbound
    ]
    if app.json_for:
        from x3twilio.output import emit_json

        keys = ("id", "rule", "record", "to", "status", "last_error")
        items = [dict(zip(keys, row, strict=True)) for row in rows]
        emit_json("replay", ExitCode.OK, dry_run=True, items=items)
        return
    print_rows(
        ("id", "rule", "record", "to", "status", "last error"),
        rows,
        f"{len(rows)} item(s) would be retried (dry run)",
        status_column=4,
    )
