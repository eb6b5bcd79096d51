"""Deciding, in-process: the pure plan over resolved addresses, the recipients it is handed,
and the two sinks (the real one and the dry run) behind the same pass."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_poll import ONLY_PO_APPROVED
from tests.test_seams import FR001, NOW, FakeSender, FakeX3, order
from x3twilio.audit import AuditLog, read_records
from x3twilio.config import Config, load_config
from x3twilio.decoding import Undecodable
from x3twilio.model import Counts, Notification, notification_id
from x3twilio.outbox import Outbox
from x3twilio.pipeline import Poller
from x3twilio.plan import decide, matching
from x3twilio.recipients import Recipients, Target
from x3twilio.sinks import Applied, DryRun
from x3twilio.sources import Record, decode
from x3twilio.x3.partners import Address, Contact, PartnerDirectory, PartnerRecord

TODAY = date(2026, 12, 2)
FRENCH = {
    "en": "Order {order_number}: please deliver by {expected_date:%d %B %Y}.",
    "fr": "Commande {order_number} : livraison attendue le {expected_date:%d %B %Y}.",
}


def load(tmp_path: Path, rules: list[dict[str, Any]], **extra: Any) -> Config:
    x3 = {"url": "https://x3.example.com:8124", "folder": "SEED", "user": "u", "password": "p"}
    twilio = {"account_sid": "AC" + "0" * 32, "auth_token": "0" * 32, "from": "+15017122661"}
    body = {"x3": x3, "twilio": twilio, "public_url": "https://x.example.com", "rules": rules}
    path = tmp_path / "x3twilio.yaml"
    path.write_text(yaml.safe_dump({**body, **extra}))
    return load_config(path, env={})


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(tmp_path, ONLY_PO_APPROVED)


def record(config: Config, **changes: Any) -> Record:
    return decode(config.sources["purchase_orders"], {**order("PO1"), **changes})


def test_a_rule_fires_only_on_the_records_it_matches(config):
    (rule,) = config.rules
    assert matching(config.rules, record(config), TODAY) == [rule]
    assert matching(config.rules, record(config, APPFLG=1), TODAY) == []


def test_each_target_is_one_notification_with_an_id_from_the_decision_alone(config):
    (rule,) = config.rules
    po = record(config)
    targets = [Target("+33698765432", "+33698765432"), Target("FR001:none", "", "no_recipient")]
    first, skipped = decide(rule, po, targets, NOW, partner="BPS:FR001")
    assert first.id == notification_id(rule.name, "purchase_orders", "PO1", "sms", "+33698765432")
    assert (first.status, first.to, first.partner) == ("pending", "+33698765432", "BPS:FR001")
    assert first.body.startswith("Order PO1 is approved: please deliver by 09 Dec 2026.")
    assert (skipped.status, skipped.reason) == ("skipped", "no_recipient")
    assert decide(rule, po, targets, NOW, partner="BPS:FR001") == [first, skipped]  # pure


def test_each_recipient_gets_the_text_of_their_language(tmp_path):
    rules = [{**ONLY_PO_APPROVED[0], "message": FRENCH}]
    config = load(tmp_path, rules)
    (rule,) = config.rules
    to = "+33698765432"
    by_language = {
        codes: decide(rule, record(config), [Target(to, to, languages=codes)], NOW)[0].body
        for codes in [("FRA",), ("", "FRA"), ("ENG", "FRA"), ()]
    }
    assert by_language[("FRA",)] == "Commande PO1 : livraison attendue le 09 décembre 2026."
    assert by_language[("", "FRA")] == by_language[("FRA",)]  # the partner's, lacking the contact's
    assert by_language[("ENG", "FRA")] == "Order PO1: please deliver by 09 December 2026."
    assert by_language[()] == by_language[("ENG", "FRA")]  # no language known: the first key


class Directory:
    def __init__(self, *partners: PartnerRecord) -> None:
        self.partners = {p.code: p for p in partners}
        self.reads: list[str] = []

    def partner(self, shape: Any, code: str) -> PartnerRecord | None:
        self.reads.append(code)
        return self.partners.get(code)


def test_the_recipients_are_the_partners_mobile_in_the_contacts_language(config):
    british = Contact("C2", mobile="+44 7911 123456", language="ENG")
    partner = PartnerRecord("supplier", "FR001", "FRA", "FR", (), (british,))
    directory = Directory(partner)
    recipients = Recipients(config, PartnerDirectory(directory, config.x3.partners))
    (rule,) = config.rules
    assert recipients.of(rule, record(config)) == [
        Target("+447911123456", "+447911123456", languages=("ENG", "FRA"))
    ]
    assert recipients.partner_key(record(config)) == "BPSUPPLIER:FR001"
    recipients.of(rule, record(config))
    assert directory.reads == ["FR001"]  # read once per run


def test_a_partner_missing_in_x3_or_without_a_mobile_is_a_reason_not_an_address(config):
    (rule,) = config.rules
    without = PartnerRecord("supplier", "FR001", "FRA", "FR", (), ())
    for directory in (Directory(), Directory(without)):
        recipients = Recipients(config, PartnerDirectory(directory, config.x3.partners))
        assert recipients.of(rule, record(config)) == [
            Target("supplier:FR001:none", "", "no_recipient")
        ]
    assert FR001.languages("+33698765432", "FR") == ("FRA",)


def note(**changes: Any) -> Notification:
    base = Notification("n-1", "po", "purchase_orders", "PO1", "sms", "+33698765432", "hi")
    return Notification(**{**base.__dict__, **changes})


def test_the_real_sink_keeps_and_audits_and_reports_duplicates(config):
    outbox = Outbox(config.state_dir)
    audit = AuditLog(config.state_dir, "r-1", lambda: NOW)
    told: list[tuple[str, str, dict[str, Any]]] = []
    counts: Counts = Counter()

    def notify(event: Any, n: Notification, **extra: Any) -> None:
        told.append((event, n.id, extra))

    sink = Applied(outbox, audit, notify, counts, lambda: NOW)
    sink.store([("purchase_orders", "PO1", "s1")], [note(), note(id="n-2", status="skipped")], True)
    sink.store([], [note()], dupes=True)
    assert [(e, i) for e, i, _ in told] == [
        ("notification.queued", "n-1"),
        ("notification.skipped", "n-2"),
        ("notification.skipped", "n-1"),
    ]
    assert told[0][2]["segments"] == 1 and told[2][2]["reason"] == "duplicate"
    assert (counts["queued"], counts["skipped"], counts["duplicate"]) == (1, 1, 1)
    sink.reject(config.sources["purchase_orders"], Undecodable("PO9", "ORDDAT", "x", "no date"))
    audit.close()
    (rejected,) = [r for r in read_records(config.state_dir) if r["event"] == "record.rejected"]
    assert (rejected["record"], rejected["field"], rejected["value"]) == ("PO9", "ORDDAT", "x")


def test_the_dry_run_sink_records_what_is_new_and_writes_nothing(tmp_path):
    quiet = {"quiet_hours": {"start": "21:00", "end": "07:00"}}
    config = load(tmp_path, ONLY_PO_APPROVED, sending=quiet)
    outbox = Outbox(config.state_dir)
    outbox.add([], [note()], "2026-12-02T09:00:00.000Z")
    outbox.close()
    counts: Counts = Counter()
    late = datetime(2026, 12, 2, 22, 0, tzinfo=UTC)  # 23:00 in Paris: quiet hours hold it
    sink = DryRun(config, Outbox(config.state_dir, readonly=True), counts, lambda: late)
    rule = config.rules[0].name
    sink.store([], [note(rule=rule), note(id="n-2", rule=rule)], dupes=True)
    assert [(n.id, n.reason) for n in sink.decided] == [("n-2", "quiet_hours")]
    assert sink.decided[0].not_before.startswith("2026-12-03T")
    assert (counts["decided"], counts["deferred"]) == (1, 1)
    assert Outbox(config.state_dir, readonly=True).known(["n-2"]) == set()


def test_a_fallback_with_no_receipt_by_its_time_is_sent_once(tmp_path):

    fallback = {"channel": "email", "after": "30m", "subject": "Order {order_number}"}
    mail = {"api_key": "SG." + "a" * 22 + "." + "b" * 43, "from_email": "po@example.com"}
    config = load(tmp_path, [{**ONLY_PO_APPROVED[0], "fallback": fallback}], sendgrid=mail)
    x3, sms, email = FakeX3([order("PO1")]), FakeSender(), FakeSender()
    email.channel = "email"
    office = Address("A1", True, "FR", emails=("orders@fr001.example.com",))
    x3.partners["FR001"] = PartnerRecord(
        "supplier", "FR001", "FRA", "FR", (office,), FR001.contacts
    )
    clock = [NOW]

    def run(**options: Any) -> Any:
        senders = {"sms": sms, "email": email}
        return Poller(config, x3=x3, senders=senders, clock=lambda: clock[0], **options).run()  # type: ignore[arg-type]

    run(since=NOW - timedelta(days=1))
    assert [n.channel for n in sms.sent] == ["sms"] and email.sent == []
    clock[0] = NOW + timedelta(minutes=29)
    run()
    assert email.sent == []  # no receipt yet, but its time has not come
    clock[0] = NOW + timedelta(minutes=31)
    run()
    run()
    ((sent),) = email.sent
    assert (sent.to, sent.subject, sent.fallback_of) == (
        "orders@fr001.example.com",
        "Order PO1",
        sms.sent[0].id,
    )
