"""Sage X3 to Twilio connector."""

__version__ = "0.1.0"
