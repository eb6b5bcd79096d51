"""`check`: validate the configuration, then reach X3 and Twilio."""

from __future__ import annotations

import click

from x3twilio.commands.common import App, Failure, json_option, print_rows
from x3twilio.errors import ExitCode


@click.command()
@click.option("--offline", is_flag=True, help="Validate the configuration only; no network.")
@json_option
@click.pass_obj
def check(app: App, offline: bool, as_json: bool) -> None:
    """Validate the configuration and rules, then reach X3 and Twilio.

    \b
    Example:
      x3twilio --config x3twilio.yaml check --offline
    """
    from x3twilio.doctor import (
        check_online,
        delay_warnings,
        language_warnings,
        template_warnings,
        whatsapp_warnings,
    )
    from x3twilio.state import usable

    app.json_for = "check" if as_json else None
    config = app.config()
    usable(config.state_dir)
    rules, sources = len(config.rules), len(config.used_sources())
    if not as_json:
        app.say(f"{config.file}: valid ({rules} rules over {sources} sources)")
    warnings = [
        *template_warnings(config),
        *language_warnings(config),
        *delay_warnings(config),
        *whatsapp_warnings(config),
    ]
    for warning in warnings:
        if not app.quiet:
            click.echo(f"warning: {warning}", err=True)
    checks = [] if offline else check_online(config)
    rows = [("✓" if c.ok else "✗", c.name, c.detail, "" if c.ok else c.fix) for c in checks]
    if checks and not app.quiet and not as_json:
        print_rows(("", "check", "result", "fix"), rows, "x3twilio check", status_column=0)
    failed = [c for c in checks if not c.ok]
    code = ExitCode.CONFIG if any(c.setup for c in failed) else ExitCode.UNAVAILABLE
    names = ", ".join(c.name for c in failed)
    shows = app.quiet or as_json
    fix = f"`{app.command('check')}` shows the fix of each" if shows else "fixes above"
    fields = {
        "config": str(config.file),
        "rules": rules,
        "sources": sources,
        "offline": offline,
        "warnings": warnings,
        "checks": [
            {"ok": c.ok, "name": c.name, "detail": c.detail, "fix": "" if c.ok else c.fix}
            | {"setup": c.setup}
            for c in checks
        ],
    }
    failure = Failure(f"{len(failed)} of {len(checks)} failed: {names}", (), fix)
    app.done("check", code if failed else ExitCode.OK, failure, fields)
