"""Whom a rule's `to` means for one record: numbers and groups as written, the record's
supplier or customer as X3 holds them (read once per run through the directory)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from x3twilio.config import Config
from x3twilio.phones import to_e164
from x3twilio.rules import Recipient, Rule, fits
from x3twilio.sources import Record
from x3twilio.x3.partners import PartnerDirectory


@dataclass(frozen=True)
class Target:
    """One address a notification goes to, or why it cannot (`reason`)."""

    identity: str  # what the idempotency key sees: the E.164 number or the raw text
    to: str
    reason: str | None = None
    languages: tuple[str, ...] = ()  # X3 language codes to write in, most preferred first
    fallback: Target | None = None  # the same recipient on the rule's fallback channel


class Recipients:
    def __init__(self, config: Config, partners: PartnerDirectory) -> None:
        self.config, self.partners = config, partners

    def of(self, rule: Rule, record: Record) -> list[Target]:
        """Every address `rule` sends to about `record`, in the order its `to` lists them,
        each with its address on the rule's fallback channel when it has one."""
        out = []
        for recipient in rule.recipients:
            targets = self._targets(recipient, record, rule.channel)
            if rule.fallback and recipient.kind != "group":  # a group lists its own addresses
                other = self._targets(recipient, record, rule.fallback.channel)
                reachable = next((t for t in other if t.reason is None), None)
                targets = [replace(t, fallback=reachable) for t in targets]
            out += targets
        return out

    def partner_key(self, record: Record) -> str:
        """CLASS:CODE of the record's supplier or customer, as replies are `matched`."""
        if record.partner is None:
            return ""
        kind, code = record.partner
        shape = self.config.x3.partners.get(kind)
        return f"{shape.x3_class if shape else kind}:{code}"

    def _targets(self, recipient: Recipient, record: Record, channel: str) -> list[Target]:
        if recipient.kind == "number":
            return [Target(recipient.value, recipient.value)]
        if recipient.kind == "group":
            members = self.config.groups[recipient.value]
            return [Target(m, m) for m in members if fits(m, channel)]
        if record.partner is None:
            return [Target("none", "", "no_recipient")]
        kind, code = record.partner
        if recipient.value not in ("partner", kind):
            return []  # e.g. a supplier-only rule over an open item of a customer
        found = self.partners.record(kind, code)
        if channel == "email":
            email = found.email() if found else None
            if found is None or email is None or not fits(email, "email"):
                return [Target(f"{kind}:{code}:{email}", email or "", "no_recipient")]
            return [Target(email, email, languages=found.languages(email, self.config.region))]
        phone = found.mobile(self.config.region) if found else None
        if found is None or phone is None:
            return [Target(f"{kind}:{code}:none", "", "no_recipient")]
        number = to_e164(phone.text, phone.country or self.config.region)
        if number is None:
            return [Target(f"{kind}:{code}:{phone.text}", phone.text, "invalid_number")]
        return [Target(number, number, languages=found.languages(number, self.config.region))]
