"""The configuration file: YAML with ${ENV} interpolation into frozen dataclasses."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from x3twilio.errors import ConfigError
from x3twilio.phones import is_e164
from x3twilio.rules import Rule, load_rules
from x3twilio.sources import Source, load_sources
from x3twilio.yamlnode import Node, interpolate

DEFAULT_PATH = "x3twilio.yaml"


@dataclass(frozen=True)
class X3Config:
    url: str
    folder: str
    user: str
    password: str
    api: str = "rest"
    page_size: int = 100
    timeout: float = 30.0
    lookback: float = 600.0  # seconds re-read behind the watermark (late commits)
    settle: float = 0.0  # seconds below X3's clock that a run leaves for the next one


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    api_url: str = "https://api.twilio.com"
    timeout: float = 15.0


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = 4
    initial: float = 0.5
    maximum: float = 10.0
    budget: float = 120.0  # total seconds of retrying per run


@dataclass(frozen=True)
class Config:
    file: Path
    x3: X3Config
    twilio: TwilioConfig
    public_url: str
    state_dir: Path
    region: str
    retry: RetryConfig
    groups: Mapping[str, tuple[str, ...]]
    sources: Mapping[str, Source]
    rules: tuple[Rule, ...]

    def used_sources(self) -> list[Source]:
        """The sources some rule reads, in rule order."""
        names = dict.fromkeys(rule.source for rule in self.rules)
        return [self.sources[name] for name in names]


def config_path(option: str | None, env: Mapping[str, str] | None = None) -> Path:
    # 1. --config  2. $X3TWILIO_CONFIG  3. ./x3twilio.yaml
    env = os.environ if env is None else env
    return Path(option or env.get("X3TWILIO_CONFIG") or DEFAULT_PATH)


def load_config(
    path: Path, env: Mapping[str, str] | None = None, state_dir: str | None = None
) -> Config:
    """Read and validate the whole file; ConfigError names file and path on any problem."""
    env = os.environ if env is None else env
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the configuration: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(file, where, f"not valid YAML: {problem}") from None
    root = Node(file, "", interpolate(data or {}, file, env))
    return _build(root, path, state_dir)


def _build(root: Node, path: Path, state_dir: str | None) -> Config:
    base = path.resolve().parent
    configured_state = root.get("state_dir", str, "state")
    groups = _load_groups(root)
    sources = load_sources(root)
    config = Config(
        file=path,
        x3=_load_x3(root.child("x3", required=True)),
        twilio=_load_twilio(root.child("twilio", required=True)),
        public_url=root.get("public_url", str, "http://127.0.0.1:8080").rstrip("/"),
        state_dir=Path(state_dir).resolve() if state_dir else base / configured_state,
        region=_load_region(root),
        retry=_load_retry(root.child("retry")),
        groups=groups,
        sources=sources,
        rules=load_rules(root, sources, groups),
    )
    root.done()
    return config


def _load_x3(node: Node) -> X3Config:
    api = node.get("api", str, "rest")
    if api != "rest":
        raise node.error("api", f"unsupported api {api!r}; expected rest")
    page_size = node.get("page_size", int, 100)
    if not 1 <= page_size <= 200:
        raise node.error("page_size", "expected 1 to 200 (X3 guards larger pages)")
    x3 = X3Config(
        api=api,
        url=node.get("url", str).rstrip("/"),
        folder=node.get("folder", str),
        user=node.get("user", str),
        password=str(node.get("password", (str, int))),
        page_size=page_size,
        timeout=node.duration("timeout", 30.0),
        lookback=node.duration("lookback", 600.0),
        settle=node.duration("settle", 0.0),
    )
    node.done()
    return x3


def _load_twilio(node: Node) -> TwilioConfig:
    twilio = TwilioConfig(
        account_sid=node.get("account_sid", str),
        auth_token=node.get("auth_token", str),
        from_number=node.get("from", str, None),
        messaging_service_sid=node.get("messaging_service_sid", str, None),
        api_key_sid=node.get("api_key_sid", str, None),
        api_key_secret=node.get("api_key_secret", str, None),
        api_url=node.get("api_url", str, "https://api.twilio.com").rstrip("/"),
        timeout=node.duration("timeout", 15.0),
    )
    if not (twilio.from_number or twilio.messaging_service_sid):
        raise node.error("from", "give the sending number (from) or messaging_service_sid")
    if twilio.from_number and not is_e164(twilio.from_number):
        raise node.error("from", f"{twilio.from_number!r} is not a valid E.164 number")
    if bool(twilio.api_key_sid) != bool(twilio.api_key_secret):
        raise node.error("api_key_secret", "api_key_sid and api_key_secret go together")
    node.done()
    return twilio


def _load_region(root: Node) -> str:
    defaults = root.child("defaults")
    region = defaults.get("region", str, "US").upper()
    if len(region) != 2 or not region.isalpha():
        raise defaults.error("region", f"expected an ISO country code such as FR, got {region!r}")
    defaults.done()
    return region


def _load_retry(node: Node) -> RetryConfig:
    retry = RetryConfig(
        attempts=node.get("attempts", int, 4),
        initial=node.duration("initial", 0.5),
        maximum=node.duration("max", 10.0),
        budget=node.duration("budget", 120.0),
    )
    if retry.attempts < 1:
        raise node.error("attempts", "expected at least 1")
    node.done()
    return retry


def _load_groups(root: Node) -> dict[str, tuple[str, ...]]:
    groups = {}
    node = root.child("groups")
    for name, members in root.items("groups"):
        if not isinstance(members, list) or not members:
            raise node.error(name, "expected a list of E.164 phone numbers")
        for i, member in enumerate(members):
            if not isinstance(member, str) or not is_e164(member):
                raise node.error(name, f"[{i}] {member!r} is not a valid E.164 phone number")
        groups[name] = tuple(members)
    return groups
