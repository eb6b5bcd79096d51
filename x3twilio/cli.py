"""The command line: parse arguments, load config, call the library, render the result.

Imports of anything heavy happen inside commands: cron starts this every minute.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from x3twilio import __version__
from x3twilio.errors import ExitCode, LockHeld, X3TwilioError

if TYPE_CHECKING:
    from x3twilio.config import Config
    from x3twilio.pipeline import Poller, RunReport
    from x3twilio.replay import ReplayOutcome


@dataclass
class App:
    config_option: str | None
    state_dir: str | None
    verbose: bool
    quiet: bool
    env_file: str | None = None
    json_for: str | None = None  # the command run with --json: an error is a JSON object too

    def config(self) -> Config:
        from x3twilio.config import config_path, load_config

        return load_config(config_path(self.config_option), state_dir=self.state_dir)

    def say(self, text: str) -> None:
        if not self.quiet:
            click.echo(text)

    def command(self, *args: str) -> str:
        """A command line to copy, with this run's --config and --state-dir."""
        words = ["x3twilio"]
        if self.config_option:
            words += ["--config", self.config_option]
        if self.state_dir:
            words += ["--state-dir", self.state_dir]
        if self.env_file:
            words += ["--env-file", self.env_file]
        return shlex.join([*words, *args])

    def finish(self, command: str, code: int, failure: Failure) -> None:
        """Exit with `code`; a failure is one line on stderr, with where to look, even with -q."""
        if code == ExitCode.OK:
            return
        where = " and ".join(f"`{self.command('audit', *look)}`" for look in failure.looks)
        line = f"x3twilio: {command}: {failure.what}" + (f"; see {where}" if where else "")
        click.echo(line + (f"; {failure.then}" if failure.then else ""), err=True)
        sys.exit(code)

    def done(self, command: str, code: int, failure: Failure, fields: dict[str, Any]) -> None:
        """As finish, printing the command's JSON object first when it runs with --json."""
        if self.json_for:
            from x3twilio.output import emit_json

            emit_json(command, code, error=failure.what if code else None, **fields)
        self.finish(command, code, failure)


@dataclass
class Failure:
    """What a run that exits non-zero says on its one line."""

    what: str  # what failed
    looks: Sequence[Sequence[str]] = ()  # `audit` queries that show it
    then: str = ""  # what to do next


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
    from x3twilio.auditquery import printable

    return printable(" ".join(text.split("\n")))


def _describe(exc: Exception) -> str:
    """The class and message of a bug, short: never repr, which may carry a whole file."""
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text[:200]}{'…' if len(text) > 200 else ''}"


def _started() -> str:
    """Now, to the second, as `audit --since` takes it: the records of this run follow."""
    return f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _failed(app: App, since: str, failed: int = 0, inbound: int = 0, rejected: int = 0) -> Failure:
    """What a run that exits 1 says: its failed notifications, inbound items, X3 records."""
    parts, looks = [], []
    if failed:
        parts.append(f"{failed} notification(s) failed")
        looks.append(["--since", since, "--event", "notification.failed"])
    if inbound:
        parts.append(f"{inbound} inbound item(s) failed")
        looks.append(["--since", since, "--event", "inbound.failed"])
    if rejected:
        parts.append(f"{rejected} X3 record(s) rejected")
        looks.append(["--since", since, "--event", "record.rejected"])
    if not parts:  # a reason this version does not count: the run's records tell it
        return Failure("some items failed", [["--since", since]])
    then = f"`{app.command('replay')}` retries what failed" if failed or inbound else ""
    return Failure(", ".join(parts), looks, then or "a record fixed in X3 is read again")


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


_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout (see README, Output)."
)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Decide and print; send nothing, write no state.")
@click.option("--source", "sources", multiple=True, metavar="NAME", help="Only this source.")
@click.option(
    "--since", metavar="WHEN", help="Read changes from: ISO 8601 (UTC), today, yesterday, 2h, 3d."
)
@_json_option
@click.pass_obj
def poll(
    app: App, dry_run: bool, sources: tuple[str, ...], since: str | None, as_json: bool
) -> None:
    """Run one polling pass: X3 changes → rules → outbox → Twilio → audit.

    \b
    Example:
      */2 * * * * x3twilio -q --config /etc/x3twilio.yaml poll
    """
    from x3twilio.output import POLL_COUNTS, counts, progress
    from x3twilio.pipeline import Poller

    app.json_for = "poll" if as_json else None
    config = app.config()
    unknown = [s for s in sources if s not in {x.name for x in config.used_sources()}]
    if unknown:
        raise click.BadParameter(f"no rule reads source {unknown[0]!r}", param_hint="--source")
    started = _started()
    with progress(app.quiet) as shown:  # a status line on a terminal's stderr, else nothing
        poller = Poller(
            config, dry_run=dry_run, only=sources, since=_iso_time(since), progress=shown
        )
        report = poller.run() if dry_run else _monitored_poll(config, poller)
    if dry_run:
        _print_decisions(app, report, config)
        return
    if not as_json:
        app.say(_summary(report))
    c = report.counts
    fields = {"dry_run": False, "run_id": report.run_id, "counts": counts(c, POLL_COUNTS)}
    failure = _failed(app, started, c["failed"], 0, c["rejected"])
    app.done("poll", report.exit_code, failure, fields)


def _monitored_poll(config: Config, poller: Poller) -> RunReport:
    from x3twilio.monitoring import monitored

    with monitored(config, "poll") as run:
        run.reads = poller.report.reads  # filled as each source is read, kept if one fails
        report = poller.run()
        run.exit_code = report.exit_code
    return report


def _iso_time(text: str | None, option: str = "--since") -> datetime | None:
    """An ISO 8601 time or date (UTC), `today`, `yesterday`, or a time ago such as 2h or 3d."""
    if text is None:
        return None
    from x3twilio.sources import parse_stamp
    from x3twilio.yamlnode import seconds_in

    now = datetime.now(UTC)
    days_back = {"today": 0, "yesterday": 1}.get(text.strip().lower())
    if days_back is not None:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight - timedelta(days=days_back)
    ago = seconds_in(text)
    if ago is not None:
        return now - timedelta(seconds=ago)
    if "T" not in text:
        text += "T00:00:00"  # a date alone: from midnight UTC
    try:
        return parse_stamp(text if text[-1:] in "Zz" or "+" in text else text + "Z")
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 time, today, yesterday or a time ago such as 2h",
            param_hint=option,
        ) from None


def _summary(report: RunReport) -> str:
    c = report.counts
    return (
        f"poll: {c['records']} records read, {c['queued']} queued, {c['sent']} sent, "
        f"{c['failed']} failed, {c['skipped']} skipped, {c['duplicate']} duplicates"
        + (f", {c['deferred']} deferred by quiet hours" if c["deferred"] else "")
        + (f", {c['rejected']} records rejected (see the audit trail)" if c["rejected"] else "")
    )


def _print_decisions(app: App, report: RunReport, config: Config) -> None:
    from x3twilio.sending import outcome_text

    if app.json_for:
        from x3twilio.output import DRY_RUN_COUNTS, counts, decision, emit_json

        decisions = [decision(n, outcome_text(n, config)) for n in report.decided]
        shown = counts(report.counts, DRY_RUN_COUNTS)
        emit_json("poll", ExitCode.OK, dry_run=True, counts=shown, decisions=decisions)
        return
    rows = [(n.rule, n.record, n.to, outcome_text(n, config), n.body) for n in report.decided]
    _print_rows(
        ("rule", "record", "to", "outcome", "message"),
        rows,
        f"{len(rows)} notification(s) would be decided (dry run)",
        status_column=3,
    )


def _print_rows(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    title: str,
    console: Any = None,
    status_column: int | None = None,
) -> None:
    """A rich table on a terminal, its status column coloured; tab-separated lines when piped.

    Cells are plain text: X3 data and replies may hold [brackets] that are not rich markup.
    """
    if console is None and not sys.stdout.isatty():  # one write: 50,000 rows must not crawl
        lines = ["\t".join(headers), *("\t".join(str(cell) for cell in row) for row in rows)]
        click.echo("\n".join(lines))
        return
    from rich.table import Table

    from x3twilio import output
    from x3twilio.auditquery import texts

    table = Table(*headers, title=texts(title)[0])
    for row in rows:
        table.add_row(*output.cells(row, status_column))
    (console or output.console()).print(table)


@cli.command()
@click.option("--offline", is_flag=True, help="Validate the configuration only; no network.")
@_json_option
@click.pass_obj
def check(app: App, offline: bool, as_json: bool) -> None:
    """Validate the configuration and rules, then reach X3 and Twilio.

    \b
    Example:
      x3twilio --config x3twilio.yaml check --offline
    """
    from x3twilio.doctor import check_online, delay_warnings, template_warnings
    from x3twilio.state import usable

    app.json_for = "check" if as_json else None
    config = app.config()
    usable(config.state_dir)
    rules, sources = len(config.rules), len(config.used_sources())
    if not as_json:
        app.say(f"{config.file}: valid ({rules} rules over {sources} sources)")
    warnings = [*template_warnings(config), *delay_warnings(config)]
    for warning in warnings:
        if not app.quiet:
            click.echo(f"warning: {warning}", err=True)
    checks = [] if offline else check_online(config)
    rows = [("✓" if c.ok else "✗", c.name, c.detail, "" if c.ok else c.fix) for c in checks]
    if checks and not app.quiet and not as_json:
        _print_rows(("", "check", "result", "fix"), rows, "x3twilio check", status_column=0)
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


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep config, state and audit here [default: a new temp dir].",
)
@click.option(
    "--api",
    type=click.Choice(["rest", "graphql"]),
    default="rest",
    show_default=True,
    help="Which X3 API the demo reads through.",
)
@click.pass_obj
def demo(app: App, workdir: Path | None, api: str) -> None:
    """Run the whole loop against the built-in simulators.

    \b
    Example:
      x3twilio demo --workdir ./demo
      x3twilio demo --api graphql
    """
    from x3twilio.demo import run_demo

    run_demo(workdir, echo=app.say, api=api)


@cli.group(invoke_without_command=True)
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


@cli.command()
@click.option("--dry-run", is_flag=True, help="Show what is waiting; process nothing.")
@_json_option
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

    since = _started()
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
    app.done("ingest", report.exit_code, _failed(app, since, inbound=c["failed"]), fields)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
@click.pass_obj
def serve(app: App, host: str, port: int) -> None:
    """Run the webhook shim with a development server (use gunicorn in production).

    Requests are served concurrently; bodies are bounded by inbound.max_body, chunked ones
    included.

    \b
    Example:
      x3twilio --config x3twilio.yaml serve --port 8080
    """
    from x3twilio.wsgi import Shim, make_server

    shim = Shim(app.config())
    server = make_server(host, port, shim)
    click.echo(
        f"x3twilio shim on http://{host}:{server.server_address[1]}; signatures are checked "
        f"against {shim.config.public_url}/twilio/... (public_url)",
        err=True,
    )
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@cli.command("systemd-units")
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


@cli.group()
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
    _print_rows(("property", "kind", "sample"), shown, f"{x3_class} {rep}.{facet} ({exposed.how})")


@cli.group()
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


@cli.group()
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


@cli.command()
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
@_json_option
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
    window = (_iso_time(since, "--since"), _iso_time(until, "--until"))
    started = _started()
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
    failure = _failed(app, started, c["failed"], i.get("failed", 0), c["rejected"])
    app.done("replay", outcome.exit_code, failure, fields)


def _print_retries(app: App, outcome: ReplayOutcome, config: Config) -> None:
    """What a replay would retry: failed notifications (or held by quiet hours), inbound items."""
    from x3twilio.sending import QUIET, outcome_text

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
    _print_rows(
        ("id", "rule", "record", "to", "status", "last error"),
        rows,
        f"{len(rows)} item(s) would be retried (dry run)",
        status_column=4,
    )


@cli.command()
@click.argument("source")
@click.argument("key")
@_json_option
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


@cli.command()
@click.option(
    "--since", metavar="WHEN", help="At or after: ISO 8601 (UTC), today, yesterday, or 2h, 3d ago."
)
@click.option("--until", metavar="WHEN", help="Before this time (as --since).")
@click.option("--rule", help="Only this rule.")
@click.option("--source", help="Only this source.")
@click.option("--record", metavar="KEY", help="One X3 record's whole story.")
@click.option("--to", "--from", "phone", metavar="PHONE", help="Sent to or received from.")
@click.option(
    "--partner", metavar="CODE", help="About this supplier or customer (sent to, or replied)."
)
@click.option("--status", help="e.g. failed, sent, delivered, logged.")
@click.option("--event", help="e.g. notification.failed, failed, inbound.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--limit", type=click.IntRange(min=0), help="At most this many records.")
@click.option(
    "--last", type=click.IntRange(min=1), metavar="N", help="The newest N records, newest first."
)
@click.option("--summary", is_flag=True, help="Counts by rule and status, delivery rate.")
@click.pass_obj
def audit(
    app: App,
    since: str | None,
    until: str | None,
    rule: str | None,
    source: str | None,
    record: str | None,
    phone: str | None,
    partner: str | None,
    status: str | None,
    event: str | None,
    fmt: str,
    limit: int | None,
    last: int | None,
    summary: bool,
) -> None:
    """Query the audit trail: table, JSON lines or CSV; a summary; one record's story.

    \b
    Example:
      x3twilio audit --status failed --since 2026-11-01T00:00:00Z
      x3twilio audit --record POFR0110113
      x3twilio audit --partner FR001 --last 20
      x3twilio audit --summary --since yesterday
    """
    from x3twilio import auditquery as aq
    from x3twilio.phones import to_e164

    config = app.config()
    state_dir = config.state_dir
    filters = aq.Filters(
        since=_iso_time(since, "--since"),
        until=_iso_time(until, "--until"),
        rule=rule,
        source=source,
        record=record,
        phone=(to_e164(phone, config.region) or phone) if phone else None,
        status=status,
        event=event,
        partner=partner,
    )
    if last is not None:
        _render_newest(state_dir, filters, last, fmt)
    elif summary:
        totals = aq.summary(aq.query(state_dir, filters))
        if fmt == "json":
            click.echo(json.dumps(totals.as_dict()))
        else:
            aq.render_summary(totals, _console())
    elif fmt == "json":
        aq.render_json(aq.query_lines(state_dir, filters, limit), sys.stdout.buffer)
    elif fmt == "csv":
        aq.render_csv(aq.query(state_dir, filters, limit), sys.stdout)
    elif record and not any((since, until, rule, source, phone, partner, status, event)):
        aq.render_story(aq.story(state_dir, record), _console(), record)
    else:
        aq.render_table(aq.query(state_dir, filters, limit), _console())


def _render_newest(state_dir: Path, filters: Any, count: int, fmt: str) -> None:
    from x3twilio import auditquery as aq

    if fmt == "json":
        aq.render_json(aq.newest(aq.query_lines(state_dir, filters), count), sys.stdout.buffer)
    elif fmt == "csv":
        aq.render_csv(aq.newest(aq.query(state_dir, filters), count), sys.stdout)
    else:
        aq.render_table(aq.newest(aq.query(state_dir, filters), count), _console())


def _console() -> Any:
    from rich.console import Console

    # piped or redirected: wide enough that sids and messages are not folded
    return Console() if sys.stdout.isatty() else Console(width=200)
