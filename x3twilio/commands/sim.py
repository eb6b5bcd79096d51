"""`sim` and its subcommands: run the simulators, and drive them by hand from their config."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from x3twilio.commands.common import App


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--x3-port", default=0, help="[default: any free port, printed]")
@click.option("--twilio-port", default=0, help="[default: any free port, printed]")
@click.option("--sendgrid-port", default=0, help="[default: any free port, printed]")
@click.option("--latency-ms", default=0.0, show_default=True, help="Delay every answer.")
@click.option(
    "--public-url",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="Where the webhooks go: the shim (`serve --port`), in the written configuration.",
)
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a configuration that works against these simulators.",
)
@click.pass_context
def sim(
    ctx: click.Context,
    host: str,
    x3_port: int,
    twilio_port: int,
    sendgrid_port: int,
    latency_ms: float,
    public_url: str,
    write_config: Path | None,
) -> None:
    """Run the X3, Twilio and SendGrid simulators until interrupted; drive them by hand.

    Each run has new credentials, written with --write-config; the subcommands find the
    simulators from that configuration (--config).

    \b
    Example:
      x3twilio sim --write-config sim.yaml &
      x3twilio --config sim.yaml serve &
      x3twilio --config sim.yaml poll
      x3twilio --config sim.yaml sim approve POFR0110122
      x3twilio --config sim.yaml poll
      x3twilio --config sim.yaml sim reply "POFR0110122 bien reçu"
      x3twilio --config sim.yaml ingest
    """
    if ctx.invoked_subcommand is not None:
        return
    from x3twilio.demo import SimOptions, run_simulators

    app: App = ctx.obj
    options = SimOptions(
        host, x3_port, twilio_port, sendgrid_port, latency_ms, public_url, write_config
    )
    run_simulators(options, echo=app.say, warn=lambda line: click.echo(line, err=True))


@sim.command("list")
@click.option("--last", type=click.IntRange(min=1), default=15, show_default=True, metavar="N")
@click.pass_obj
def sim_list(app: App, last: int) -> None:
    """The purchase orders last changed in the X3 simulator, with their approval."""
    from x3twilio.simcontrol import APPROVAL

    with _driving(app, "list"):
        orders = _sim_control(app).orders()[:last]
    for o in orders:
        state = APPROVAL.get(o.get("APPFLG"), str(o.get("APPFLG")))
        closed = "closed" if o.get("CLEFLG") else "open"
        total = f"{o.get('TTVORD', 0):,.2f} {o.get('CUR', '')}"
        click.echo(f"{o['POHNUM']:<14} {o.get('BPSNUM', ''):<7} {state:<15} {closed:<6} {total}")


@sim.command("approve")
@click.argument("number", metavar="PO_NUMBER")
@click.pass_obj
def sim_approve(app: App, number: str) -> None:
    """Approve a purchase order in the X3 simulator (open, stamped now), as a buyer would.

    \b
    Example:
      x3twilio --config sim.yaml sim approve POFR0110122
    """
    with _driving(app, "approve", "PO_NUMBER"):
        order = _sim_control(app).approve(number)
    app.say(
        f"approved {order['POHNUM']} of {order.get('BPSNUM', '')} at {order.get('UPDDATTIM')}; "
        f"`{app.command('poll')}` sends what the rules say about it"
    )


@sim.command("pay")
@click.option("--supplier", default="FR001", show_default=True, metavar="CODE")
@click.option("--amount", type=click.FloatRange(min=0.01), default=120.50, show_default=True)
@click.option("--reference", metavar="INVOICE", help="[default: its newest purchase invoice]")
@click.pass_obj
def sim_pay(app: App, supplier: str, amount: float, reference: str | None) -> None:
    """Post an outgoing payment to a supplier in the X3 simulator.

    \b
    Example:
      x3twilio --config sim.yaml sim pay --supplier FR001 --amount 120.50
    """
    with _driving(app, "pay", "--supplier"):
        payment = _sim_control(app).pay(supplier, round(amount, 2), reference)
    app.say(
        f"posted payment {payment['NUM']}: {payment['AMTCUR']:,.2f} {payment['CUR']} to "
        f"{supplier} (ref {payment['REF'] or '-'}); `{app.command('poll')}` sends its "
        "notifications"
    )


@sim.command("reply")
@click.option("--from", "phone", metavar="PHONE", help="[default: whom the last SMS went to]")
@click.argument("text")
@click.pass_obj
def sim_reply(app: App, phone: str | None, text: str) -> None:
    """Send an SMS to the shim from a supplier's phone, signed, as Twilio would.

    \b
    Example:
      x3twilio --config sim.yaml sim reply --from +33612345678 "OK for POFR0110122"
    """
    _to_the_shim(app, "reply", "an SMS", phone, text)


@sim.command("voicemail")
@click.option("--from", "phone", metavar="PHONE", help="[default: whom the last SMS went to]")
@click.argument("text", metavar="TRANSCRIPTION")
@click.pass_obj
def sim_voicemail(app: App, phone: str | None, text: str) -> None:
    """Leave a voicemail: the call, recording and transcription webhooks to the shim.

    \b
    Example:
      x3twilio --config sim.yaml sim voicemail --from +447911123456 "Pallets ship Monday"
    """
    _to_the_shim(app, "voicemail", "a voicemail", phone, text)


def _to_the_shim(app: App, action: str, what: str, phone: str | None, text: str) -> None:
    """`sim reply` / `sim voicemail`: the simulated Twilio calls the shim from `phone`."""
    with _driving(app, action, "--from"):
        control, sender = _sim_control(app), _sim_sender(app, phone)
        url = getattr(control, action)(sender, text)
    app.say(f"the shim at {url} took {what} from {sender}; `{app.command('ingest')}` logs it")


def _sim_control(app: App) -> Any:
    from x3twilio.simcontrol import SimControl

    config = app.config()
    return SimControl(config.x3.url, config.twilio.api_url, config.public_url)


def _sim_sender(app: App, phone: str | None) -> str:
    """The caller's number in E.164 (as Twilio gives it); by default whom we last texted."""
    from x3twilio.phones import to_e164
    from x3twilio.simcontrol import NotInSimulator

    if phone is None:
        last = _sim_control(app).last_texted()
        if last is None:
            raise NotInSimulator("no SMS was sent yet: give the supplier's number")
        return str(last)
    number = to_e164(phone, app.config().region)
    if number is None:
        raise NotInSimulator(f"{phone!r} is not a phone number")
    return number


@contextlib.contextmanager
def _driving(app: App, command: str, hint: str | None = None) -> Iterator[None]:
    """One line for what went wrong driving a simulator: usage (2) or unavailable (69)."""
    from urllib.parse import urlsplit

    from x3twilio.simcontrol import NotInSimulator, ShimDown, SimUnavailable

    try:
        yield
    except NotInSimulator as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint=hint) from None
    except ShimDown as exc:
        url = urlsplit(exc.url)
        port = ["--port", str(url.port)] if url.hostname in _LOOPBACK and url.port else []
        fix = app.command("serve", *port)
        raise SimUnavailable(f"sim {command}: {exc}: start it with `{fix}`") from None
    except SimUnavailable as exc:
        raise SimUnavailable(f"sim {command}: {exc}") from None


_LOOPBACK = ("127.0.0.1", "localhost", "::1")
