"""Finding the configuration file and loading it: every section, then the checks across them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from x3twilio.config.inbound import load_inbound
from x3twilio.config.model import Config
from x3twilio.config.options import declared
from x3twilio.config.sections import (
    load_groups,
    load_languages,
    load_monitoring,
    load_region,
    load_retry,
    load_sendgrid,
    load_sending,
    load_twilio,
)
from x3twilio.config.urls import public_url
from x3twilio.config.x3_section import load_x3
from x3twilio.errors import ConfigError
from x3twilio.rules import load_rules
from x3twilio.source_config import load_sources
from x3twilio.yamlnode import Node, interpolate, load_yaml, read_text

DEFAULT_PATH = "x3twilio.yaml"
USER_PATH = Path("x3twilio") / DEFAULT_PATH  # under $XDG_CONFIG_HOME, else ~/.config
SYSTEM_PATH = Path("/etc/x3twilio") / DEFAULT_PATH


def config_path(option: str | None, env: Mapping[str, str] | None = None) -> Path:
    """The configuration file: --config, else $X3TWILIO_CONFIG (either is used as given: one
    that does not exist fails to load, never falls through), else the first that exists of
    `config_places`; ConfigError (78) listing every place looked at when none does."""
    env = os.environ if env is None else env
    given = option or env.get("X3TWILIO_CONFIG")
    if given:
        return Path(given)
    places = config_places(env)
    for _, path in places:
        if _present(path):
            return path
    looked = "; ".join(
        label if label == str(path.absolute()) else f"{label} ({path.absolute()})"
        for label, path in places
    )
    raise ConfigError(
        DEFAULT_PATH,
        "",
        "no configuration file found; looked, in order, at: --config (not given), "
        f"$X3TWILIO_CONFIG (not set), {looked}. Give --config PATH, set $X3TWILIO_CONFIG, or "
        "create one of these (rules.example.yaml is a complete example)",
    )


def _present(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # there, in a directory this user cannot search: loading says so
        return True


def config_places(env: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Where a configuration is looked for without --config or $X3TWILIO_CONFIG, in order:
    the working directory, the user's XDG config directory, then the system's."""
    places = [(f"./{DEFAULT_PATH}", Path(DEFAULT_PATH))]
    xdg = env.get("XDG_CONFIG_HOME", "")
    home = env.get("HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is ignored
        places.append(("$XDG_CONFIG_HOME/x3twilio/x3twilio.yaml", Path(xdg) / USER_PATH))
    elif home:
        places.append(("~/.config/x3twilio/x3twilio.yaml", Path(home) / ".config" / USER_PATH))
    places.append((str(SYSTEM_PATH), SYSTEM_PATH))
    return places


def load_config(
    path: Path, env: Mapping[str, str] | None = None, state_dir: str | None = None
) -> Config:
    """Read and validate the whole file; ConfigError names file and path on any problem."""
    env = os.environ if env is None else env
    file = str(path)
    data = load_yaml(read_text(path, file), file)
    root = Node(file, "", interpolate(data or {}, file, env))
    return _build(root, path, state_dir)


def _build(root: Node, path: Path, state_dir: str | None) -> Config:
    base = path.resolve().parent
    configured_state = root.get("state_dir", str, declared(Config, "state_dir").default)
    groups = load_groups(root)
    sources = load_sources(root)
    x3 = load_x3(
        root.child("x3", required=True),
        Path(state_dir).resolve() if state_dir else base / configured_state,
    )
    config = Config(
        file=path,
        x3=x3,
        twilio=load_twilio(root.child("twilio", required=True)),
        public_url=public_url(root, declared(Config, "public_url").default),
        state_dir=Path(state_dir).resolve() if state_dir else base / configured_state,
        region=load_region(root),
        retry=load_retry(root.child("retry")),
        sending=load_sending(root.child("sending")),
        monitoring=load_monitoring(root.child("monitoring"), base),
        sendgrid=load_sendgrid(root.child("sendgrid")) if root.has("sendgrid") else None,
        inbound=load_inbound(root.child("inbound"), sources),
        groups=groups,
        sources=sources,
        rules=load_rules(root, sources, groups),
        languages=load_languages(root),
    )
    root.done()
    _check_channels(root, config)
    return config


def _check_channels(root: Node, config: Config) -> None:
    for i, rule in enumerate(config.rules):
        if rule.channel == "email" and config.sendgrid is None:
            raise ConfigError(root.file, f"rules[{i}].channel", "email needs a sendgrid section")
        if rule.channel == "voice" and not config.twilio.from_number:
            raise ConfigError(root.file, f"rules[{i}].channel", "voice needs twilio.from")
