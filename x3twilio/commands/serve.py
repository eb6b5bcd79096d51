"""`serve`: the webhook shim under a development server."""

from __future__ import annotations

import contextlib

import click

from x3twilio.commands.common import App


@click.command()
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
