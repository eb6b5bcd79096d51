"""The command line: the `x3twilio` group, its global options, and how errors become exit codes.

Each command lives in its own module under `x3twilio.commands`; this one registers them.
Imports of anything heavy happen inside commands: cron starts this every minute.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import click

from x3twilio import __version__
from x3twilio.commands.audit import audit
from x3twilio.commands.check import check
from x3twilio.commands.common import App
from x3twilio.commands.demo import demo
from x3twilio.commands.explain import explain
from x3twilio.commands.ingest import ingest
from x3twilio.commands.poll import poll
from x3twilio.commands.replay import replay
from x3twilio.commands.serve import serve
from x3twilio.commands.sim import sim
from x3twilio.commands.state import state
from x3twilio.commands.twilio import twilio
from x3twilio.commands.units import systemd_units
from x3twilio.commands.x3 import x3
from x3twilio.errors import ExitCode, LockHeld, X3TwilioError


class Group(click.Group):
    """Turns every operator-facing error into one line on stderr and its exit code.

    With -q a run that fails still prints its one line (cron mails it); an overlap with a
    run that holds the lock (75) prints nothing, as nothing is wrong.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LockHeld as exc:
            _json_error(ctx, exc.exit_code, str(exc))
            if not _quiet(ctx):
                click.echo(f"x3twilio: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except X3TwilioError as exc:
            _json_error(ctx, exc.exit_code, str(exc))
            if _verbose(ctx):
                traceback.print_exc()
            click.echo(f"x3twilio: {_one_line(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except click.ClickException as exc:
            _json_error(ctx, exc.exit_code, exc.format_message())
            if not _quiet(ctx):
                raise
            click.echo(f"x3twilio: {_one_line(exc.format_message())}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: say so, and show the traceback only with -v
            _json_error(ctx, ExitCode.INTERNAL, f"internal error: {_describe(exc)}")
            if _verbose(ctx):
                traceback.print_exc()
            click.echo(
                f"x3twilio: internal error: {_describe(exc)} (run with -v for the traceback)",
                err=True,
            )
            ctx.exit(ExitCode.INTERNAL)


def _json_error(ctx: click.Context, code: int, message: str) -> None:
    """Under --json, the error that stopped the command is its JSON object on stdout."""
    if ctx.obj and ctx.obj.json_for:
        from x3twilio.output import emit_json

        emit_json(ctx.obj.json_for, code, error=_one_line(message))


def _verbose(ctx: click.Context) -> bool:
    return bool(ctx.obj.verbose if ctx.obj else ctx.params.get("verbose"))


def _quiet(ctx: click.Context) -> bool:
    # ctx.params: an unknown command is refused before the group's callback makes ctx.obj
    return bool(ctx.obj.quiet if ctx.obj else ctx.params.get("quiet"))


def _one_line(text: str) -> str:
    """One line that a terminal or a mail reader shows as it is (X3 may send anything)."""
    from x3twilio.auditview import printable

    return printable(" ".join(text.split("\n")))


def _describe(exc: Exception) -> str:
    """The class and message of a bug, short: never repr, which may carry a whole file."""
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text[:200]}{'…' if len(text) > 200 else ''}"


_COMPLETION = """\b
Shell completion: eval "$(_X3TWILIO_COMPLETE=bash_source x3twilio)" in ~/.bashrc
(zsh_source in ~/.zshrc; fish: _X3TWILIO_COMPLETE=fish_source x3twilio | source)."""


@click.group(
    cls=Group, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_COMPLETION
)
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="Configuration file [default: $X3TWILIO_CONFIG, else ./x3twilio.yaml].",
)
@click.option("--state-dir", metavar="DIR", help="State directory (overrides the config's).")
@click.option(
    "--env-file",
    metavar="PATH",
    help="Read KEY=value secrets from this file (mode 600); the environment wins.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and more detail.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing when all is well; a failure is one line."
)
@click.version_option(__version__, prog_name="x3twilio")
@click.pass_context
def cli(
    ctx: click.Context,
    config_option: str | None,
    state_dir: str | None,
    env_file: str | None,
    verbose: bool,
    quiet: bool,
) -> None:
    """Tell suppliers and finance about Sage X3 events by SMS, from cron.

    \b
    Exit codes: 0 ok · 1 some items failed (see `audit`, retry with `replay`)
    2 usage · 69 X3/Twilio unavailable · 70 internal error · 73/74 local state
    cannot be created/read or written · 75 another run holds the lock (quiet
    with -q) · 78 invalid configuration.
    """
    ctx.obj = App(config_option, state_dir, verbose, quiet, env_file)
    if env_file:
        import os

        from x3twilio.envfile import load_env_file

        load_env_file(Path(env_file), os.environ)


# --help lists them sorted by name, whatever the order here
for _command in (
    poll,
    check,
    ingest,
    replay,
    audit,
    explain,
    serve,
    demo,
    sim,
    x3,
    twilio,
    state,
    systemd_units,
):
    cli.add_command(_command)
