"""`demo`: the whole loop against the built-in simulators."""

from __future__ import annotations

from pathlib import Path

import click

from x3twilio.commands.common import App


@click.command()
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
