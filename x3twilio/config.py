"""The configuration file: YAML with ${ENV} interpolation into frozen dataclasses."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from x3twilio.errors import ConfigError
from x3twilio.phones import is_e164
from x3twilio.rules import Rule, load_rules
from x3twilio.sources import Source, load_sources
from x3twilio.templates import Template, TemplateError, compile_template
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
    previous_auth_token: str | None = None  # still accepted on webhooks during a rotation


# What a note template (inbound.note.fields) may use.
NOTE_PLACEHOLDERS = (
    "kind",
    "partner",
    "reference",
    "phone",
    "sid",
    "text",
    "received",
    "channel",
    "line",
    "recording_url",
)
DEFAULT_REFERENCES = {
    "purchase_orders": r"\bPO[A-Z]{0,3}\d+\b",
    "purchase_invoices": r"\bPI[A-Z]{0,3}\d+\b",
    "sales_invoices": r"\bSI[A-Z]{0,3}\d+\b",
    "payments": r"\bPAY[A-Z]{0,3}\d+\b",
}


@dataclass(frozen=True)
class NoteTarget:
    """Where a supplier's reply is written in X3."""

    mode: str = "notes"  # "notes": append to BPSREM/BPCREM; "create": a record of `x3_class`
    max_length: int = 250  # of the notes field; the oldest lines make room
    x3_class: str | None = None
    fields: Mapping[str, Template] = field(default_factory=dict)  # X3 code -> template
    marker: str | None = None  # the field that holds the message SID (idempotency)


@dataclass(frozen=True)
class InboundConfig:
    max_body: int = 64 * 1024
    voice_prompt: str = "Please leave a message for our purchasing team after the tone."
    voice_goodbye: str = "Thank you. Goodbye."
    voice_language: str = "en-GB"
    transcription_wait: float = 600.0  # log a voicemail without its transcription after this
    phone_index_ttl: float = 3600.0  # re-read supplier and customer phones from X3 after this
    references: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REFERENCES))
    note: NoteTarget = field(default_factory=NoteTarget)
    catch_all: tuple[str, str] | None = None  # (supplier|customer, code) for unknown senders


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = 4
    initial: float = 0.5
    maximum: float = 10.0
    budget: float = 120.0  # total seconds of retrying per run
    max_age: float = 86400.0  # a notification not sent by then is failed as expired


@dataclass(frozen=True)
class Config:
    file: Path
    x3: X3Config
    twilio: TwilioConfig
    public_url: str
    state_dir: Path
    region: str
    retry: RetryConfig
    inbound: InboundConfig
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
        inbound=_load_inbound(root.child("inbound")),
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
        previous_auth_token=node.get("previous_auth_token", str, "") or None,
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
        max_age=node.duration("max_age", 86400.0),
    )
    if retry.attempts < 1:
        raise node.error("attempts", "expected at least 1")
    node.done()
    return retry


def _load_inbound(node: Node) -> InboundConfig:
    references = dict(DEFAULT_REFERENCES)
    refs = node.child("references")
    for source, pattern in node.items("references"):
        try:
            re.compile(refs.get(source, str))
        except re.error as exc:
            raise refs.error(source, f"not a valid regular expression: {exc}") from None
        references[source] = pattern
    inbound = InboundConfig(
        max_body=node.get("max_body", int, 64 * 1024),
        voice_prompt=node.get("voice_prompt", str, InboundConfig.voice_prompt),
        voice_goodbye=node.get("voice_goodbye", str, InboundConfig.voice_goodbye),
        voice_language=node.get("voice_language", str, InboundConfig.voice_language),
        transcription_wait=node.duration("transcription_wait", 600.0),
        phone_index_ttl=node.duration("phone_index_ttl", 3600.0),
        references=references,
        note=_load_note(node.child("note")),
        catch_all=_load_catch_all(node) if node.has("catch_all") else None,
    )
    node.done()
    return inbound


def _load_note(node: Node) -> NoteTarget:
    mode = node.get("mode", str, "notes")
    if mode not in ("notes", "create"):
        raise node.error("mode", "expected notes (BPSREM/BPCREM) or create (a record)")
    fields_node, fields = node.child("fields"), {}
    for code, text in node.items("fields"):
        try:
            fields[code] = compile_template(str(text), dict.fromkeys(NOTE_PLACEHOLDERS, "text"))
        except TemplateError as exc:
            raise fields_node.error(code, str(exc)) from None
    marker = next((code for code, t in fields.items() if t.text == "{sid}"), None)
    note = NoteTarget(
        mode, node.get("max_length", int, 250), node.get("class", str, None), fields, marker
    )
    if mode == "create" and not (note.x3_class and marker):
        raise node.error(
            "fields",
            "mode create needs class, and fields with one field "
            "set to exactly {sid} (it keeps a reply from being logged twice)",
        )
    node.done()
    return note


def _load_catch_all(node: Node) -> tuple[str, str]:
    catch = node.child("catch_all")
    kind = catch.get("kind", str)
    if kind not in ("supplier", "customer"):
        raise catch.error("kind", "expected supplier or customer")
    result = (kind, catch.get("code", str))
    catch.done()
    return result


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
