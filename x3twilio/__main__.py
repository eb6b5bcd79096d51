from x3twilio.cli import cli

cli()
