"""What a loaded configuration is: frozen dataclasses, each option declared once on its field.

`about(...)` on a field is the option's one declaration (see config.options): its default,
bounds and meaning, read by the section loaders and printed into README by config.reference.
The `x3:` section's classes are in config.x3_model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from x3twilio.config.options import DAY, TIMEOUT, about
from x3twilio.config.x3_model import X3Config
from x3twilio.locales import X3_LANGUAGES
from x3twilio.quiethours import QuietHours
from x3twilio.rules import Rule
from x3twilio.sources import Source
from x3twilio.templates import Template


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str = field(metadata=about("the account"))
    auth_token: str = field(metadata=about("the account's Auth Token; it also validates webhooks"))
    from_number: str | None = field(
        default=None,
        metadata=about("the sending number (E.164); or", key="from", kind=str, shown="—"),
    )
    messaging_service_sid: str | None = field(
        default=None, metadata=about("a Messaging Service (`MG…`)", kind=str, shown="—")
    )
    whatsapp_from: str | None = field(
        default=None,
        metadata=about(
            "the WhatsApp sender (`whatsapp:+E164`) of `channel: whatsapp` rules; or the "
            "Messaging Service",
            kind=str,
            shown="—",
        ),
    )
    api_key_sid: str | None = field(
        default=None,
        metadata=about(
            "send with an API key instead of the Auth Token (with its secret)", kind=str
        ),
    )
    api_key_secret: str | None = field(
        default=None, metadata=about("the API key's secret", kind=str)
    )
    api_url: str = field(
        default="https://api.twilio.com", metadata=about("changed only for the simulator")
    )
    content_url: str = field(  # WhatsApp templates: Twilio's Content API is another host
        default="https://content.twilio.com",
        metadata=about("the Content API (WhatsApp templates); changed only for the simulator"),
    )
    timeout: float = field(default=15.0, metadata=about("per request", **TIMEOUT))
    previous_auth_token: str | None = field(  # still accepted on webhooks during a rotation
        default=None,
        metadata=about(
            "also accepted on webhooks while you rotate the Auth Token", default="", kind=str
        ),
    )
    voice_language: str = field(  # voice notifications: <Say language=…>
        default="en-GB", metadata=about("the language voice notifications speak")
    )
    voice: str = field(
        default="alice", metadata=about("the voice they speak with")
    )  # <Say voice=…>
    # Seconds after a create went unanswered before Twilio's list is trusted to show whether it
    # was accepted. Measured: a create that Twilio took 1.5 s over, with the client giving up
    # at 0.5 s, appeared in the list 1 s after the client gave up; ten times that, and still
    # short enough for the run that made the request to settle it within its retry budget. A
    # run killed mid-request cannot tell when its requests stopped: the next run counts from
    # its own start (sending.py).
    settle: float = field(
        default=10.0,
        metadata=about(
            "how long after an unanswered create Twilio's list is trusted: such a notification "
            "is never re-posted in the same run; a run waits for it within `retry.budget`, "
            "otherwise a later run looks it up",
            low=0.1,
            high=3600.0,
            duration=True,
        ),
    )


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

    on: str = field(
        metadata=about(
            "whom or what the reply is about: `supplier`, `customer`, `partner` or a source",
            key="about",
        )
    )
    mode: str = field(metadata=about("`append` (a line in a text field) or `create` (a record)"))
    x3_class: str | None = field(  # None: the partner's or the source's class
        default=None,
        metadata=about("create: the class; append: the partner's or source's", key="class"),
    )
    representation: str | None = field(  # None: the partner's or the source's
        default=None, metadata=about("the partner's or the source's when not given")
    )
    text_field: str | None = field(
        default=None, metadata=about("append: the text field", key="field")
    )
    max_length: int = field(  # BPSREM is 250 where it exists
        default=250, metadata=about("append: what the field holds", low=1, high=1_000_000)
    )
    fields: Mapping[str, Template] = field(  # create: code -> template
        default_factory=dict,
        metadata=about("create: `{CODE: template}`, one of them exactly `{sid}`", shown="none"),
    )
    marker: str | None = None  # create: the field holding the message SID (idempotency)


@dataclass(frozen=True)
class InboundConfig:
    max_body: int = field(
        default=64 * 1024,
        metadata=about("larger webhook bodies get 413, in bytes", low=1024, high=16 << 20),
    )
    voice_prompt: str = field(
        default="Please leave a message for our purchasing team after the tone.",
        metadata=about("what a caller hears before the voicemail"),
    )
    voice_goodbye: str = field(default="Thank you. Goodbye.", metadata=about("and after it"))
    voice_language: str = field(default="en-GB", metadata=about("the language they are said in"))
    transcription_wait: float = field(
        default=600.0,
        metadata=about(
            "a voicemail whose transcription has not come is logged without it after this",
            high=DAY,
            duration=True,
        ),
    )
    phone_index_ttl: float = field(
        default=3600.0,
        metadata=about(
            "how long the index of supplier and customer phones is kept before X3 is read again",
            high=30 * DAY,
            duration=True,
        ),
    )
    references: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_REFERENCES),
        metadata=about(
            "regular expression of a document number in a reply",
            key="references.SOURCE",
            shown="`PO…`, `PI…`, `SI…`, `PAY…` patterns",
        ),
    )
    notes: tuple[NoteTarget, ...] = field(
        default=(),
        metadata=about(
            "where replies land in X3, a list of targets (below); see "
            "[where replies land](#where-replies-land)",
            shown="none",
        ),
    )
    catch_all: tuple[str, str] | None = field(  # (supplier|customer, code) for unknown senders
        default=None,
        metadata=about(
            "`{kind: supplier, code: ZZSMS}`: where replies from unknown numbers are noted"
        ),
    )


@dataclass(frozen=True)
class SendingConfig:
    """How fast and when notifications go out."""

    concurrency: int = field(
        default=4, metadata=about("requests to Twilio/SendGrid in flight at once", low=1, high=64)
    )
    rate_limit: float | None = field(  # messages per second, all channels together
        default=None,
        metadata=about(
            "messages per second, evenly spaced, never above", low=0.01, high=1000.0, kind=float
        ),
    )
    max_per_recipient: int | None = field(
        default=None,
        metadata=about("per run; the rest waits for the next run", low=1, high=10_000, kind=int),
    )
    digest: bool = field(
        default=False,
        metadata=about("fold what passes `max_per_recipient` into one message per recipient"),
    )
    quiet_hours: QuietHours | None = field(
        default=None,
        metadata=about('`{start: "20:00", end: "07:30"}` in each recipient\'s local time'),
    )
    timezone: str = field(
        default="UTC",
        metadata=about("for recipients whose number tells no zone (emails, some countries)"),
    )
    max_segments: int = field(
        default=3,
        metadata=about("`check` warns about SMS templates longer than this", low=1, high=24),
    )


@dataclass(frozen=True)
class MonitoringConfig:
    metrics_file: Path | None = field(
        default=None,
        metadata=about(
            "Prometheus textfile written after each `poll` and `ingest`, with every command's "
            "series (relative to the file)",
            kind=str,
        ),
    )
    metrics_mode: int = field(  # the exporter runs as another user; the file holds no secret
        default=0o644,
        metadata=about(
            "the textfile's mode (the exporter runs as another user; it holds no secret)",
            default="0644",
            kind=(str, int),
        ),
    )
    # Pinged /start and /<exit code> (healthchecks.io), one check per command: a URL with
    # {command}, or a map command -> URL. A plain URL is poll's alone.
    heartbeats: Mapping[str, str] = field(default_factory=dict)
    heartbeat_url: str | None = field(  # with {command}, or poll's
        default=None,
        metadata=about(
            "pinged at `…/start` and `…/<exit code>` (healthchecks.io): a URL with `{command}` "
            "(one check per command), or a map `{poll: URL, ingest: URL}`; a plain URL is "
            "`poll`'s alone"
        ),
    )
    json_logs: bool = field(  # every audit event also as one JSON line on stderr
        default=False,
        metadata=about(
            "also print every audit record as one JSON line on stderr, phone numbers masked "
            "(journald, Loki)"
        ),
    )

    def heartbeat(self, command: str) -> str | None:
        if command in self.heartbeats:
            return self.heartbeats[command]
        url = self.heartbeat_url
        if url is None or ("{command}" not in url and command != "poll"):
            return None
        return url.replace("{command}", command)


@dataclass(frozen=True)
class SendGridConfig:
    api_key: str = field(metadata=about("a SendGrid key", shown="required for email"))
    from_email: str = field(metadata=about("a verified sender", shown="required for email"))
    from_name: str = field(default="", metadata=about("sender name", shown="none"))
    reply_to: str | None = field(default=None, metadata=about("reply address", kind=str))
    api_url: str = field(
        default="https://api.sendgrid.com",
        metadata=about("EU subusers use `https://api.eu.sendgrid.com`"),
    )
    timeout: float = field(default=15.0, metadata=about("per request", **TIMEOUT))
    html: bool = field(default=False, metadata=about("also send an HTML part"))


@dataclass(frozen=True)
class RetryConfig:
    attempts: int = field(default=4, metadata=about("tries per remote call", low=1, high=50))
    initial: float = field(
        default=0.5,
        metadata=about("first backoff: exponential with full jitter", high=60.0, duration=True),
    )
    maximum: float = field(
        default=10.0, metadata=about("its cap", key="max", high=3600.0, duration=True)
    )
    budget: float = field(  # total seconds of retrying per run
        default=120.0, metadata=about("total retrying per run", high=3600.0, duration=True)
    )
    max_age: float = field(  # a notification not sent by then is failed as expired
        default=DAY,
        metadata=about(
            "a notification still unsent after this fails as `expired` (replay can still send it)",
            low=1.0,
            high=30 * DAY,
            duration=True,
        ),
    )


@dataclass(frozen=True)
class Config:
    file: Path
    x3: X3Config
    twilio: TwilioConfig
    public_url: str = field(
        metadata=about(
            "where Twilio reaches the webhook shim; status callbacks go to "
            "`{public_url}/twilio/status`. An absolute `https` URL (plain `http` only on "
            "loopback) whose host Twilio accepts (no underscore), without credentials, query "
            "or fragment: anything else is exit 78 at load",
            default="http://127.0.0.1:8080",
        )
    )
    state_dir: Path = field(
        metadata=about(
            "watermarks, outbox, audit trail, lock (relative to the file)", default="state"
        )
    )
    region: str = field(
        metadata=about(
            "country for phone numbers in national format when X3 gives none",
            key="defaults.region",
            default="US",
        )
    )
    retry: RetryConfig
    sending: SendingConfig
    monitoring: MonitoringConfig
    sendgrid: SendGridConfig | None
    inbound: InboundConfig
    groups: Mapping[str, tuple[str, ...]] = field(
        metadata=about(
            "a list of E.164 numbers and/or emails (each rule uses those that fit its channel)",
            key="groups.NAME",
            shown="—",
        )
    )
    sources: Mapping[str, Source] = field(
        metadata=about(
            "override `class`, `representation`, `key`, `timestamp`, `created`, `where`, "
            "`open_where`, `partner`, `fields`, or declare a custom source",
            key="sources.NAME",
            shown="built-ins",
        )
    )
    rules: tuple[Rule, ...] = field(metadata=about("see below", shown="—"))
    languages: Mapping[str, str] = field(  # X3 code -> tag: which text of a rule to send
        default_factory=lambda: dict(X3_LANGUAGES),
        metadata=about(
            "the language tag (`fr_FR`) an X3 language code (`LAN`, `CNTLAN`) stands for, "
            "adding to or replacing the built-in codes; see [languages](#languages)",
            key="languages.CODE",
            shown=", ".join(f"`{code}` {tag}" for code, tag in X3_LANGUAGES.items()),
        ),
    )

    def used_sources(self) -> list[Source]:
        """The sources some rule reads, in rule order."""
        names = dict.fromkeys(rule.source for rule in self.rules)
        return [self.sources[name] for name in names]
