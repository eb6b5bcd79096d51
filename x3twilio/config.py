"""The configuration file: YAML with ${ENV} interpolation into frozen dataclasses."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from x3twilio.errors import ConfigError
from x3twilio.phones import is_e164
from x3twilio.quiethours import QuietHours, zone_named
from x3twilio.rules import Rule, fits, load_rules
from x3twilio.sources import Source, load_sources
from x3twilio.templates import Template, TemplateError, compile_template
from x3twilio.x3.partners import DEFAULT_ROLES, PARTNER_KINDS, PartnerShape, default_shapes
from x3twilio.yamlnode import Node, interpolate, load_yaml, read_text

DEFAULT_PATH = "x3twilio.yaml"
USER_PATH = Path("x3twilio") / DEFAULT_PATH  # under $XDG_CONFIG_HOME, else ~/.config
SYSTEM_PATH = Path("/etc/x3twilio") / DEFAULT_PATH


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
    # How X3 is signed in to (x3twilio/x3/auth.py): basic and oauth2 for either API,
    # connected_app for GraphQL only; the rest of this block is GraphQL's.
    auth: str = "basic"  # basic | connected_app (on-premise JWT) | oauth2 (X3 Cloud)
    client_id: str = ""  # of the connected application, or of the X3 Cloud app
    client_secret: str = ""
    audience: str = ""  # the connected application's registered URL; "" = the endpoint
    token_validity: float = 300.0  # seconds; within the application's "Tokens validity"
    graphql_path: str = "/xtrem/api"  # X3 Cloud: url .../v1/service/{endpoint} and /api
    oauth2: OAuth2Config | None = None
    packages: Mapping[str, str] = field(default_factory=dict)  # x3Purchasing -> actual root
    nodes: Mapping[str, GraphQLNode] = field(default_factory=dict)  # X3 class -> node
    mutations: Mapping[str, str] = field(
        default_factory=lambda: {"update": "update", "create": "create"}
    )
    schema_max_age: float = 86400.0  # seconds a cached GraphQL schema is trusted (check rereads)
    state_dir: Path | None = None  # where the X3 Cloud refresh token is kept
    # Where suppliers and customers keep addresses, phones and contacts (x3.partners).
    partners: Mapping[str, PartnerShape] = field(default_factory=default_shapes)

    @property
    def graphql_url(self) -> str:
        return f"{self.url}{self.graphql_path}"


@dataclass(frozen=True)
class OAuth2Config:
    """X3 Cloud's authorisation-code flow (SAGE_X3.md §3.2 B)."""

    authorize_url: str
    token_url: str
    redirect_uri: str
    scope: str = "businessDomain.ALL api.graphQL"
    customer: str = ""
    # api1 under the regional endpoint: Sage documents only GraphQL there, so configurable.
    api1_path: str = "/api1/x3/erp/{folder}"


@dataclass(frozen=True)
class GraphQLNode:
    """Where an X3 class lives in the GraphQL schema: `package.node`, key, field paths."""

    node: str | None = None  # e.g. x3Custom.smsLog; None keeps the built-in one
    key: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)  # X3 code -> "path [n=value ...]"


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
    voice_language: str = "en-GB"  # voice notifications: <Say language=…>
    voice: str = "alice"  # and <Say voice=…>
    # Seconds after a create went unanswered before Twilio's list is trusted to show whether it
    # was accepted. Measured: a create that Twilio took 1.5 s over, with the client giving up
    # at 0.5 s, appeared in the list 1 s after the client gave up; ten times that, and still
    # short enough for the run that made the request to settle it within its retry budget. A
    # run killed mid-request cannot tell when its requests stopped: the next run counts from
    # its own start (sending.py).
    settle: float = 10.0


# What a note template (inbound.notes[].fields) may use.
NOTE_PLACEHOLDERS = (
    "kind",
    "partner",
    "reference",
    "reference_source",
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


NOTE_MODES = ("append", "create")


@dataclass(frozen=True)
class NoteTarget:
    """One place in X3 where a reply is written (inbound.notes).

    `on` (`about:` in the file) is whom or what the reply is about: supplier, customer,
    partner (either), or a source name (the document the reply references). `append` adds
    a line to a text field through `$edit`; `create` makes a record of a user class
    (`fields`, one of them {sid}).
    """

    on: str
    mode: str
    x3_class: str | None = None  # None: the partner's or the source's class
    representation: str | None = None  # None: the partner's or the source's
    text_field: str | None = None  # append: the text field
    max_length: int = 250  # append: what the field holds (BPSREM is 250 where it exists)
    fields: Mapping[str, Template] = field(default_factory=dict)  # create: code -> template
    marker: str | None = None  # create: the field holding the message SID (idempotency)


@dataclass(frozen=True)
class InboundConfig:
    max_body: int = 64 * 1024
    voice_prompt: str = "Please leave a message for our purchasing team after the tone."
    voice_goodbye: str = "Thank you. Goodbye."
    voice_language: str = "en-GB"
    transcription_wait: float = 600.0  # log a voicemail without its transcription after this
    phone_index_ttl: float = 3600.0  # re-read supplier and customer phones from X3 after this
    references: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_REFERENCES))
    notes: tuple[NoteTarget, ...] = ()
    catch_all: tuple[str, str] | None = None  # (supplier|customer, code) for unknown senders


@dataclass(frozen=True)
class SendingConfig:
    """How fast and when notifications go out."""

    concurrency: int = 4  # requests to Twilio/SendGrid in flight at once
    rate_limit: float | None = None  # messages per second, all channels together
    max_per_recipient: int | None = None  # per run; the rest waits for the next run
    digest: bool = False  # fold what passes max_per_recipient into one message
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"  # for recipients whose zone the number does not tell
    max_segments: int = 3  # `check` warns about SMS templates longer than this


@dataclass(frozen=True)
class MonitoringConfig:
    metrics_file: Path | None = None  # Prometheus textfile, e.g. for node_exporter
    metrics_mode: int = 0o644  # the exporter runs as another user; the file holds no secret
    # Pinged /start and /<exit code> (healthchecks.io), one check per command: a URL with
    # {command}, or a map command -> URL. A plain URL is poll's alone.
    heartbeats: Mapping[str, str] = field(default_factory=dict)
    heartbeat_url: str | None = None  # with {command}, or poll's
    json_logs: bool = False  # every audit event also as one JSON line on stderr

    def heartbeat(self, command: str) -> str | None:
        if command in self.heartbeats:
            return self.heartbeats[command]
        url = self.heartbeat_url
        if url is None or ("{command}" not in url and command != "poll"):
            return None
        return url.replace("{command}", command)


@dataclass(frozen=True)
class SendGridConfig:
    api_key: str
    from_email: str
    from_name: str = ""
    reply_to: str | None = None
    api_url: str = "https://api.sendgrid.com"
    timeout: float = 15.0
    html: bool = False  # also send an HTML part


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
    sending: SendingConfig
    monitoring: MonitoringConfig
    sendgrid: SendGridConfig | None
    inbound: InboundConfig
    groups: Mapping[str, tuple[str, ...]]
    sources: Mapping[str, Source]
    rules: tuple[Rule, ...]

    def used_sources(self) -> list[Source]:
        """The sources some rule reads, in rule order."""
        names = dict.fromkeys(rule.source for rule in self.rules)
        return [self.sources[name] for name in names]


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
    configured_state = root.get("state_dir", str, "state")
    groups = _load_groups(root)
    sources = load_sources(root)
    x3 = _load_x3(
        root.child("x3", required=True),
        Path(state_dir).resolve() if state_dir else base / configured_state,
    )
    config = Config(
        file=path,
        x3=x3,
        twilio=_load_twilio(root.child("twilio", required=True)),
        public_url=_public_url(root),
        state_dir=Path(state_dir).resolve() if state_dir else base / configured_state,
        region=_load_region(root),
        retry=_load_retry(root.child("retry")),
        sending=_load_sending(root.child("sending")),
        monitoring=_load_monitoring(root.child("monitoring"), base),
        sendgrid=_load_sendgrid(root.child("sendgrid")) if root.has("sendgrid") else None,
        inbound=_load_inbound(root.child("inbound"), sources),
        groups=groups,
        sources=sources,
        rules=load_rules(root, sources, groups),
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


X3_APIS = ("rest", "graphql")
X3_AUTHS = ("basic", "connected_app", "oauth2")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Bounds of the durations and counts of the file (README "Configuration reference").
TIMEOUT = (0.1, 600.0)  # per request: 100ms to 10m
DAY = 86400.0
_CREDENTIALS = {
    "x3.url": "x3.user and x3.password (from the environment: ${X3_PASSWORD})",
    "twilio.api_url": "twilio.account_sid and twilio.auth_token",
    "sendgrid.api_url": "sendgrid.api_key",
}


def _url(node: Node, key: str, default: str | None = None, *, secret_free: bool = True) -> str:
    """An http(s) URL with a host; `secret_free`: credentials in it are refused.

    An error never repeats a URL that holds an @: what precedes it may be a password.
    """
    value = node.get(key, str) if default is None else node.get(key, str, default)
    parts = urlsplit(value.strip())
    shown = "" if "@" in value else f", got {value!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise node.error(key, f"expected an http(s) URL such as https://host:8124{shown}")
    if secret_free and (parts.username is not None or parts.password is not None):
        raise node.error(
            key,
            "credentials in the URL are refused (URLs get logged and shown); remove them and "
            f"give {_CREDENTIALS.get(node.where(key), 'them in their own keys')}",
        )
    try:
        port = parts.port  # a port that is not a number from 0 to 65535 raises
    except ValueError:
        port = 0
    if port == 0:
        raise node.error(key, f"expected a port number from 1 to 65535{shown}")
    if parts.query or parts.fragment:
        raise node.error(key, f"expected a base URL, without ?query or #fragment{shown}")
    return str(value).strip().rstrip("/")


# A DNS label of a host name Twilio accepts in a callback URL (letters, digits, inner hyphens).
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _public_url(node: Node) -> str:
    """Where Twilio reaches the shim: the base of every StatusCallback and webhook URL.

    Twilio refuses a StatusCallback whose host is not a valid host name ("underscores are
    not allowed", error 21609) and calls back over the internet, so https; plain http only
    on a loopback host (a test, or a tunnel or proxy on this machine).
    """
    url = _url(node, "public_url", "http://127.0.0.1:8080", secret_free=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        raise node.error(
            "public_url",
            "credentials in the URL are refused: Twilio would repeat them in every callback "
            "and they get logged; the shim checks Twilio's signature instead",
        )
    problem = _callback_host_problem(host)
    if problem:
        raise node.error("public_url", f"{problem}: Twilio refuses such a callback URL")
    if parts.scheme != "https" and not _is_loopback(host):
        raise node.error(
            "public_url",
            f"expected https:// for {host}: Twilio calls back over the internet; plain http "
            "only on a loopback host (127.0.0.1, ::1, localhost)",
        )
    return url


def _callback_host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "_" in host:
        return f"the host {host!r} has an underscore"
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"the host {host!r} is not a valid host name"
    return None


def _is_loopback(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_x3(node: Node, state_dir: Path | None = None) -> X3Config:
    url = _url(node, "url")
    folder = node.get("folder", str)
    api = node.get("api", str, "rest")
    if api not in X3_APIS:
        raise node.error("api", f"unsupported api {api!r}; expected rest or graphql")
    auth = node.get("auth", str, "connected_app" if api == "graphql" else "basic")
    if auth not in X3_AUTHS:
        raise node.error("auth", f"unknown auth {auth!r}; expected {', '.join(X3_AUTHS)}")
    if api == "rest" and auth == "connected_app":
        # Sage documents connected applications for GraphQL only; api1 takes Basic or OAuth2.
        raise node.error("auth", "api rest takes basic or oauth2; connected_app needs graphql")
    page_size = node.get("page_size", int, 100)
    if not 1 <= page_size <= 200:
        raise node.error("page_size", "expected 1 to 200 (X3 guards larger pages)")
    token_validity = node.duration("token_validity", 300.0, 2.0, DAY)
    needs = {"basic": ("user", "password"), "connected_app": ("user", "client_id", "client_secret")}
    needs["oauth2"] = ("client_id", "client_secret", "oauth2")
    for key in needs[auth]:
        if node.data.get(key) in (None, ""):
            raise node.error(key, f"required for auth {auth}")
    graphql_path = node.get("graphql_path", str, "/xtrem/api")
    if not graphql_path.startswith("/"):
        raise node.error("graphql_path", f"expected a path starting with /, got {graphql_path!r}")
    x3 = X3Config(
        api=api,
        url=url,
        folder=folder,
        user=node.get("user", str, ""),
        password=str(node.get("password", (str, int), "")),
        page_size=page_size,
        timeout=node.duration("timeout", 30.0, *TIMEOUT),
        lookback=node.duration("lookback", 600.0, 0.0, 7 * DAY),
        settle=node.duration("settle", 0.0, 0.0, 3600.0),
        auth=auth,
        client_id=node.get("client_id", str, ""),
        client_secret=str(node.get("client_secret", (str, int), "")),
        audience=node.get("audience", str, ""),
        token_validity=token_validity,
        graphql_path=graphql_path,
        oauth2=_load_oauth2(node.child("oauth2")) if node.has("oauth2") else None,
        packages=_load_packages(node),
        nodes=_load_nodes(node),
        mutations=_load_mutations(node.child("mutations")),
        schema_max_age=node.duration("schema_max_age", DAY, 0.0, 365 * DAY),
        state_dir=state_dir,
        partners=_load_partners(node.child("partners")),
    )
    node.done()
    return x3


def _load_partners(node: Node) -> dict[str, PartnerShape]:
    """x3.partners.supplier|customer: class, representation, key and field codes by role."""
    shapes = default_shapes()
    for kind in map(str, node.data):
        if kind not in PARTNER_KINDS:
            raise node.error(kind, "expected supplier or customer")
        spec, base = node.child(kind), shapes[kind]
        roles, codes = dict(base.roles), spec.child("fields")
        for role in map(str, codes.data):
            if role not in DEFAULT_ROLES:
                raise codes.error(role, "unknown field; known: " + ", ".join(DEFAULT_ROLES))
            roles[role] = codes.get(role, str)
        x3_class = spec.get("class", str, base.x3_class)
        shapes[kind] = PartnerShape(
            base.kind,
            x3_class,
            spec.get("representation", str, x3_class),
            spec.get("key", str, base.key),
            roles,
        )
        spec.done()
    return shapes


def _load_oauth2(node: Node) -> OAuth2Config:
    authorize_url, token_url = _url(node, "authorize_url"), _url(node, "token_url")
    _url(node, "redirect_uri")  # X3 Cloud POSTs the code there; kept as registered, verbatim
    redirect_uri = node.get("redirect_uri", str).strip()
    parts = urlsplit(redirect_uri)
    if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
        raise node.error(
            "redirect_uri",
            "an http redirect_uri must be on this machine (http://localhost:PORT/...): the "
            "authorisation code would cross the network in clear; use https",
        )
    api1_path = node.get("api1_path", str, OAuth2Config.api1_path)
    if not api1_path.startswith("/") or re.search(r"[?#]|\{(?!folder\})", api1_path):
        raise node.error(
            "api1_path", f"expected a path such as /api1/x3/erp/{{folder}}, got {api1_path!r}"
        )
    oauth2 = OAuth2Config(
        authorize_url=authorize_url,
        token_url=token_url,
        redirect_uri=redirect_uri,
        scope=node.get("scope", str, OAuth2Config.scope),
        customer=node.get("customer", str, ""),
        api1_path=api1_path.rstrip("/"),
    )
    node.done()
    return oauth2


def _load_packages(node: Node) -> dict[str, str]:
    packages = {}
    for name, actual in node.items("packages"):
        if not (isinstance(actual, str) and _IDENTIFIER.match(name) and _IDENTIFIER.match(actual)):
            raise node.child("packages").error(
                name, "expected a root name for it, e.g. x3Purchasing: xtremX3Purchasing"
            )
        packages[name] = actual
    return packages


def _load_nodes(node: Node) -> dict[str, GraphQLNode]:
    nodes, parent = {}, node.child("nodes")
    for x3_class, _ in node.items("nodes"):
        spec = parent.child(x3_class)
        name = spec.get("node", str, None)
        if name is not None and not re.fullmatch(r"[A-Za-z_]\w*\.[A-Za-z_]\w*", name):
            raise spec.error("node", f"expected package.node, e.g. x3Custom.smsLog, got {name!r}")
        fields = {}
        for code, path in spec.items("fields"):
            if not isinstance(path, str) or not path.strip():
                raise spec.child("fields").error(code, "expected a GraphQL path such as id")
            fields[code] = path
        key = tuple(str(k) for k in spec.get("key", list, []))
        if name is not None and not (key and fields):
            raise spec.error("fields", "a node of your own needs key and fields")
        nodes[x3_class] = GraphQLNode(name, key, fields)
        spec.done()
    return nodes


def _load_mutations(node: Node) -> dict[str, str]:
    mutations = {op: node.get(op, str, op) for op in ("update", "create")}
    node.done()
    return mutations


def _load_twilio(node: Node) -> TwilioConfig:
    twilio = TwilioConfig(
        account_sid=node.get("account_sid", str),
        auth_token=node.get("auth_token", str),
        from_number=node.get("from", str, None),
        messaging_service_sid=node.get("messaging_service_sid", str, None),
        api_key_sid=node.get("api_key_sid", str, None),
        api_key_secret=node.get("api_key_secret", str, None),
        api_url=_url(node, "api_url", "https://api.twilio.com"),
        timeout=node.duration("timeout", 15.0, *TIMEOUT),
        previous_auth_token=node.get("previous_auth_token", str, "") or None,
        voice_language=node.get("voice_language", str, "en-GB"),
        voice=node.get("voice", str, "alice"),
        settle=node.duration("settle", 10.0, 0.1, 3600.0),
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
    region = str(defaults.get("region", str, "US")).upper()
    if len(region) != 2 or not region.isalpha():
        raise defaults.error("region", f"expected an ISO country code such as FR, got {region!r}")
    defaults.done()
    return region


def _load_retry(node: Node) -> RetryConfig:
    retry = RetryConfig(
        attempts=node.number("attempts", int, 4, 1, 50),
        initial=node.duration("initial", 0.5, 0.0, 60.0),
        maximum=node.duration("max", 10.0, 0.0, 3600.0),
        budget=node.duration("budget", 120.0, 0.0, 3600.0),
        max_age=node.duration("max_age", DAY, 1.0, 30 * DAY),
    )
    node.done()
    return retry


def _load_inbound(node: Node, sources: Mapping[str, Source]) -> InboundConfig:
    references = dict(DEFAULT_REFERENCES)
    refs = node.child("references")
    for source, pattern in node.items("references"):
        try:
            re.compile(refs.get(source, str))
        except re.error as exc:
            raise refs.error(source, f"not a valid regular expression: {exc}") from None
        references[source] = pattern
    inbound = InboundConfig(
        max_body=node.number("max_body", int, 64 * 1024, 1024, 16 << 20),
        voice_prompt=node.get("voice_prompt", str, InboundConfig.voice_prompt),
        voice_goodbye=node.get("voice_goodbye", str, InboundConfig.voice_goodbye),
        voice_language=node.get("voice_language", str, InboundConfig.voice_language),
        transcription_wait=node.duration("transcription_wait", 600.0, 0.0, DAY),
        phone_index_ttl=node.duration("phone_index_ttl", 3600.0, 0.0, 30 * DAY),
        references=references,
        notes=_load_notes(node, sources),
        catch_all=_load_catch_all(node) if node.has("catch_all") else None,
    )
    node.done()
    return inbound


def _load_notes(node: Node, sources: Mapping[str, Source]) -> tuple[NoteTarget, ...]:
    items = node.get("notes", list, [])
    return tuple(
        _load_note(Node(node.file, node.where("notes") + f"[{i}]", item), sources)
        for i, item in enumerate(items)
    )


def _load_note(node: Node, sources: Mapping[str, Source]) -> NoteTarget:
    on = node.get("about", str)
    if on not in (*PARTNER_KINDS, "partner") and on not in sources:
        known = ", ".join(["supplier", "customer", "partner", *sorted(sources)])
        raise node.error("about", f"expected whom or what the reply is about: one of {known}")
    mode = node.get("mode", str)
    if mode not in NOTE_MODES:
        raise node.error("mode", "expected append (a line in a text field) or create (a record)")
    fields_node, fields = node.child("fields"), {}
    for code, text in node.items("fields"):
        try:
            fields[code] = compile_template(str(text), dict.fromkeys(NOTE_PLACEHOLDERS, "text"))
        except TemplateError as exc:
            raise fields_node.error(code, str(exc)) from None
    max_length = node.number("max_length", int, 250, 1, 1_000_000)
    note = NoteTarget(
        on=on,
        mode=mode,
        x3_class=node.get("class", str, None),
        representation=node.get("representation", str, None),
        text_field=node.get("field", str, None),
        max_length=max_length,
        fields=fields,
        marker=next((code for code, t in fields.items() if t.text == "{sid}"), None),
    )
    if mode == "append" and not note.text_field:
        raise node.error("field", "mode append needs the text field to append to")
    if mode == "append" and fields:
        raise node.error("fields", "fields go with mode create; append writes one field")
    if mode == "create" and not (note.x3_class and note.marker):
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


def _load_sending(node: Node) -> SendingConfig:
    quiet = None
    if node.has("quiet_hours"):
        window = node.child("quiet_hours")
        try:
            quiet = QuietHours.parse(window.get("start", str), window.get("end", str))
        except ValueError as exc:
            raise node.error("quiet_hours", str(exc)) from None
        window.done()
    timezone = node.get("timezone", str, "UTC")
    try:
        zone_named(timezone)
    except ValueError as exc:
        raise node.error("timezone", str(exc)) from None
    rate = node.number("rate_limit", float, None, 0.01, 1000.0)  # messages per second
    sending = SendingConfig(
        concurrency=node.number("concurrency", int, 4, 1, 64),
        rate_limit=rate,
        max_per_recipient=node.number("max_per_recipient", int, None, 1, 10_000),
        digest=node.get("digest", bool, False),
        quiet_hours=quiet,
        timezone=timezone,
        max_segments=node.number("max_segments", int, 3, 1, 24),
    )
    node.done()
    return sending


MONITORED = ("poll", "ingest")


def _load_monitoring(node: Node, base: Path) -> MonitoringConfig:
    metrics = node.get("metrics_file", str, None)
    mode = node.get("metrics_mode", (str, int), "0644")
    try:
        metrics_mode = int(str(mode), 8)
    except ValueError:
        metrics_mode = -1
    if not 0 <= metrics_mode <= 0o666:
        raise node.error("metrics_mode", f"expected a file mode such as 0644, got {mode!r}")
    heartbeats: dict[str, str] = {}
    url: str | None = None
    if isinstance(node.data.get("heartbeat_url"), dict):
        beats = node.child("heartbeat_url")
        for command in map(str, beats.data):
            if command not in MONITORED:
                raise beats.error(command, f"expected one of {', '.join(MONITORED)}")
            heartbeats[command] = _url(beats, command)
        beats.done()
    elif node.get("heartbeat_url", str, ""):
        url = _url(node, "heartbeat_url")
    monitoring = MonitoringConfig(
        metrics_file=base / metrics if metrics else None,
        metrics_mode=metrics_mode,
        heartbeats=heartbeats,
        heartbeat_url=url,
        json_logs=node.get("json_logs", bool, False),
    )
    node.done()
    return monitoring


def _load_sendgrid(node: Node) -> SendGridConfig:
    sendgrid = SendGridConfig(
        api_key=node.get("api_key", str),
        from_email=node.get("from_email", str),
        from_name=node.get("from_name", str, ""),
        reply_to=node.get("reply_to", str, None),
        api_url=_url(node, "api_url", "https://api.sendgrid.com"),
        timeout=node.duration("timeout", 15.0, *TIMEOUT),
        html=node.get("html", bool, False),
    )
    if not fits(sendgrid.from_email, "email"):
        raise node.error("from_email", f"{sendgrid.from_email!r} is not an email address")
    node.done()
    return sendgrid


def _load_groups(root: Node) -> dict[str, tuple[str, ...]]:
    groups = {}
    node = root.child("groups")
    for name, members in root.items("groups"):
        if not isinstance(members, list) or not members:
            raise node.error(name, "expected a list of E.164 phone numbers")
        for i, member in enumerate(members):
            if not isinstance(member, str) or not (is_e164(member) or fits(member, "email")):
                raise node.error(
                    name, f"[{i}] {member!r} is neither a valid E.164 phone number nor an email"
                )
        groups[name] = tuple(members)
    return groups
