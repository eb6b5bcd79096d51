from x3twilio.cli import cli

cli(prog_name="x3twilio")  # the name completion and usage lines use, not "python -m ..."
