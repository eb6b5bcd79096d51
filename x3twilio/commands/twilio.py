"""`twilio register-webhooks`: point a Twilio number's webhooks at the shim."""

from __future__ import annotations

import click

from x3twilio.commands.common import App


@click.group()
def twilio() -> None:
    """Twilio account set-up."""


@twilio.command("register-webhooks")
@click.option("--number", required=True, help="Your Twilio number, E.164.")
@click.pass_obj
def register_webhooks(app: App, number: str) -> None:
    """Point the number's SMS, voice and status webhooks at public_url.

    \b
    Example:
      x3twilio twilio register-webhooks --number +15017122661
    """
    from x3twilio.senders.twilio import register_webhooks as register

    for line in register(app.config(), number):
        app.say(line)
