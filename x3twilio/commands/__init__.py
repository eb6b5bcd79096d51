"""The commands, one module per command or family; `x3twilio.cli` registers them."""
