"""`explain`: whether a record matches each rule, why, and what was sent about it."""

from __future__ import annotations

import click

from x3twilio.commands.common import App, json_option
from x3twilio.errors import ExitCode


@click.command()
@click.argument("source")
@click.argument("key")
@json_option
@click.pass_obj
def explain(app: App, source: str, key: str, as_json: bool) -> None:
    """Show whether a record matches each rule, and why, and what was sent about it.

    \b
    Example:
      x3twilio explain purchase_orders POFR0110113
    """
    from x3twilio import output
    from x3twilio.explain import explanation, lines

    app.json_for = "explain" if as_json else None
    config = app.config()
    if source not in config.sources:
        raise click.BadParameter(f"unknown source {source!r}", param_hint="SOURCE")
    try:
        found = explanation(config, source, key)
    except LookupError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="KEY") from None
    if as_json:
        output.emit_json("explain", ExitCode.OK, **output.explanation(found))
    else:
        output.echo_lines(lines(found))  # on a terminal: X3 data escaped, ✓/✗ coloured
