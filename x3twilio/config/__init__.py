"""The configuration file: YAML with ${ENV} interpolation into frozen dataclasses.

model: the dataclasses, each option declared once on its field (options: how);
loading: finding and reading the file; x3_section, sections, inbound: one loader per section;
urls: the URL checks; reference: README's configuration table, printed from the declarations.
"""

from x3twilio.config.loading import (
    DEFAULT_PATH,
    SYSTEM_PATH,
    USER_PATH,
    config_path,
    config_places,
    load_config,
)
from x3twilio.config.model import (
    Config,
    InboundConfig,
    MonitoringConfig,
    NoteTarget,
    RetryConfig,
    SendGridConfig,
    SendingConfig,
    TwilioConfig,
)
from x3twilio.config.x3_model import GraphQLNode, OAuth2Config, X3Config

__all__ = [
    "DEFAULT_PATH",
    "SYSTEM_PATH",
    "USER_PATH",
    "Config",
    "GraphQLNode",
    "InboundConfig",
    "MonitoringConfig",
    "NoteTarget",
    "OAuth2Config",
    "RetryConfig",
    "SendGridConfig",
    "SendingConfig",
    "TwilioConfig",
    "X3Config",
    "config_path",
    "config_places",
    "load_config",
]
