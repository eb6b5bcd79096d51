"""`state rebuild`: restore the outbox from the audit trail after it was lost."""

from __future__ import annotations

import click

from x3twilio.commands.common import App


@click.group()
def state() -> None:
    """The state directory: recover from a lost outbox."""


@state.command()
@click.pass_obj
def rebuild(app: App) -> None:
    """Restore the outbox's notifications from the audit trail, after the outbox was lost.

    Sent ones stay sent (never sent again), failed ones failed, and one that was queued
    but never reported is looked up at Twilio before any resend. Run it when `poll`
    stops because the outbox is missing or empty while the audit trail shows sends.

    \b
    Example:
      x3twilio --config x3twilio.yaml state rebuild
    """
    from x3twilio.audit import iso_ms, utc_now
    from x3twilio.recovery import rebuild as rebuild_outbox
    from x3twilio.state import run_lock

    config = app.config()
    with run_lock(config.state_dir):  # no poll may run meanwhile
        counts = rebuild_outbox(config.state_dir, iso_ms(utc_now()))
    restored = counts.pop("restored")
    detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
    app.say(f"state rebuild: {restored} notifications restored from the audit trail ({detail})")
