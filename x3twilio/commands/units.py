"""`systemd-units`: write the systemd units for this installation."""

from __future__ import annotations

from pathlib import Path

import click

from x3twilio.commands.common import App


@click.command("systemd-units")
@click.argument("target", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def systemd_units(app: App, target: Path) -> None:
    """Write the systemd units (poll and ingest timers, the shim) for this installation.

    ExecStart points at the directory of this x3twilio; review User=, the paths under
    /etc/x3twilio and /var/lib/x3twilio, then copy them to /etc/systemd/system/.

    \b
    Example:
      x3twilio systemd-units ./units && sudo cp ./units/* /etc/systemd/system/
      sudo systemctl enable --now x3twilio-poll.timer x3twilio-ingest.timer x3twilio-shim
    """
    from x3twilio.units import write_units

    try:
        written = write_units(target)
    except OSError as exc:
        raise click.BadParameter(f"cannot write there: {exc.strerror}", param_hint="DIR") from None
    for path in written:
        app.say(str(path))
