"""`x3 login` and `x3 describe`: sign in to X3 Cloud, list what X3 exposes for a class."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click

from x3twilio.commands.common import App, print_rows


@click.group()
def x3() -> None:
    """Sage X3 set-up."""


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """A duration for the command line: 300, 90s, 5m."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        import re

        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", str(value))
        seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"] if match else 0
        if not 0 < seconds <= 86400:
            self.fail(f"expected a duration such as 90s or 5m, up to 24h, got {value!r}", param)
        return seconds


@x3.command()
@click.option("--no-browser", is_flag=True, help="Only print the address to open.")
@click.option(
    "--timeout",
    type=_Seconds(),
    default="5m",
    show_default=True,
    help="How long to wait for X3 Cloud's answer.",
)
@click.option(
    "--cert",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM certificate, for an https redirect_uri.",
)
@click.option(
    "--key", type=click.Path(dir_okay=False, path_type=Path), help="Its private key (PEM)."
)
@click.pass_obj
def login(app: App, no_browser: bool, timeout: float, cert: Path | None, key: Path | None) -> None:
    """Sign in to X3 Cloud once (OAuth2); later runs refresh the token on their own.

    Opens X3 Cloud's approval page in a browser. Once the user accepts, X3 Cloud has the
    browser POST the answer to x3.oauth2.redirect_uri: this command listens there (its
    host and port, on this machine) until the answer comes or --timeout passes, then keeps
    the refresh token and the regional endpoint X3 Cloud names in the state directory.

    On a machine with no browser, use --no-browser, open the printed address on another
    machine, and forward the redirect URI's port to this one first, for example
    `ssh -L 8765:localhost:8765 this-host` for http://localhost:8765/callback.

    \b
    Example:
      x3twilio --config x3twilio.yaml x3 login
      x3twilio --config x3twilio.yaml x3 login --no-browser --timeout 10m
    """
    from x3twilio.transport import make_session
    from x3twilio.x3.callback import sign_in

    def announce(url: str) -> None:
        click.echo(f"Open this address, sign in to X3 Cloud and accept:\n{url}")
        if not no_browser:
            import webbrowser

            with contextlib.suppress(Exception):  # no browser here: the address is printed
                webbrowser.open(url)
        if not app.quiet:
            click.echo(f"Waiting up to {timeout:g}s for X3 Cloud's answer...", err=True)

    done = sign_in(app.config().x3, announce, timeout, cert, key, make_session())
    app.say(f"signed in to X3 Cloud; calls go to {done.root}; the refresh token is in {done.path}")


@x3.command()
@click.argument("x3_class", metavar="CLASS")
@click.option("--representation", metavar="REP", help="[default: the class name]")
@click.option(
    "--facet",
    type=click.Choice(["$query", "$details", "$edit"]),
    default="$query",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per property.")
@click.pass_obj
def describe(
    app: App, x3_class: str, representation: str | None, facet: str, as_json: bool
) -> None:
    """List what X3 exposes for a class: name, kind and a sample value (api1).

    Read from the representation's prototype where the server offers one, else from a
    sampled record. Use it to map custom X*/Z* fields under sources or x3.partners.

    \b
    Example:
      x3twilio x3 describe BPSUPPLIER --facet '$details'
    """
    from x3twilio.site import describe_rows
    from x3twilio.transport import Retrier, make_session
    from x3twilio.x3.discover import describe as discover
    from x3twilio.x3.rest import RestClient

    config = app.config()
    if config.x3.api != "rest":
        raise click.UsageError("x3 describe reads X3's REST api1: it needs x3.api: rest")
    client = RestClient(config.x3, make_session(), Retrier(config.retry))
    rep = representation or x3_class
    exposed = discover(client, x3_class, rep, facet, samples=True)
    rows = describe_rows(exposed)
    if as_json:
        for name, kind, sample in rows:
            click.echo(json.dumps({"name": name, "kind": kind, "sample": sample}))
        return
    shown = [
        (n, k, "" if v is None else json.dumps(v, ensure_ascii=False)[:40]) for n, k, v in rows
    ]
    print_rows(("property", "kind", "sample"), shown, f"{x3_class} {rep}.{facet} ({exposed.how})")
