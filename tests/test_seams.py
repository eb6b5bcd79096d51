"""The seams, in-process: the poller and its dispatcher over a fake X3 client, a fake sender and
a fixed clock, with the real outbox, watermarks and audit trail in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_poll import ONLY_PO_APPROVED
from x3twilio.config import Config, load_config
from x3twilio.decoding import parse_stamp
from x3twilio.model import Notification
from x3twilio.pipeline import Poller
from x3twilio.x3.base import Page
from x3twilio.x3.partners import Contact, PartnerRecord

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # 11:00 in Paris: no quiet hours hold it
MOBILE = Contact("C1", default=True, mobile="06 98 76 54 32")
FR001 = PartnerRecord("supplier", "FR001", "FRA", "FR", (), (MOBILE,))


def order(number: str, *, approved: bool = True, changed: datetime = NOW - timedelta(hours=1)):
    return {
        "POHNUM": number, "BPSNUM": "FR001", "ORDDAT": "2026-11-30", "CPY": "FR10",
        "POHFCY": "FR011", "CUR": "EUR", "ORDREF": "", "APPFLG": 3 if approved else 1,
        "CLEFLG": False, "RCPFLG": 1, "INVFLG": 1, "TOTORD": 1250.5, "TTVORD": 1500.6,
        "EXTRCPDAT1": "2026-12-09", "UPDDATTIM": changed.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }  # fmt: skip


class FakeX3:
    """X3 as the poller sees it: a clock, pages of changes, partners."""

    def __init__(self, orders: list[dict[str, Any]]) -> None:
        self.orders, self.partners = orders, {"FR001": FR001}
        self.windows: list[tuple[datetime, datetime]] = []

    def server_time(self, source: Any) -> datetime:
        return NOW

    def changes(self, source: Any, lo: datetime, hi: datetime) -> Iterator[Page]:
        self.windows.append((lo, hi))
        yield Page([o for o in self.orders if lo <= parse_stamp(o["UPDDATTIM"]) < hi], NOW)

    def due(self, source: Any, code: str, first: date, last: date) -> Iterator[Page]:
        yield Page([], NOW)

    def partner(self, shape: Any, code: str) -> PartnerRecord | None:
        return self.partners.get(code)


class FakeSender:
    channel, reconciles = "sms", True

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, n: Notification, in_flight_since: datetime | None, **options: Any) -> str:
        self.sent.append(n)
        return f"SM{len(self.sent):032x}"

    def find_sent(self, n: Notification, since: datetime) -> str | None:
        return None


@pytest.fixture
def config(tmp_path: Path) -> Config:
    x3 = {"url": "https://x3.example.com:8124", "folder": "SEED", "user": "u", "password": "p"}
    twilio = {"account_sid": "AC" + "0" * 32, "auth_token": "0" * 32, "from": "+15017122661"}
    path = tmp_path / "x3twilio.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "x3": x3,
                "twilio": twilio,
                "public_url": "https://x3twilio.example.com",
                "rules": ONLY_PO_APPROVED,
            }
        )
    )
    return load_config(path, env={})


def poller(config: Config, x3: FakeX3, sms: FakeSender, **options: Any) -> Poller:
    return Poller(config, x3=x3, senders={"sms": sms}, clock=lambda: NOW, **options)  # type: ignore[arg-type]


def test_an_approved_order_is_decided_sent_once_and_never_again(config):
    x3, sms = FakeX3([order("PO1"), order("PO2", approved=False)]), FakeSender()
    report = poller(config, x3, sms, since=NOW - timedelta(days=1)).run()
    assert [(n.record, n.to) for n in sms.sent] == [("PO1", "+33698765432")]
    assert sms.sent[0].body.startswith("Order PO1 is approved: please deliver by 09 Dec 2026.")
    assert report.counts["sent"] == 1 and report.exit_code == 0

    again = poller(config, x3, sms).run()  # the watermark and the outbox: nothing twice
    assert len(sms.sent) == 1 and again.counts["sent"] == 0
    lo, hi = x3.windows[-1]
    assert hi == NOW and lo == NOW - timedelta(hours=1) - timedelta(seconds=config.x3.lookback)


def test_a_dry_run_decides_through_the_same_path_and_sends_nothing(config):
    x3, sms = FakeX3([order("PO1")]), FakeSender()
    report = poller(config, x3, sms, dry_run=True, since=NOW - timedelta(days=1)).run()
    assert [(n.record, n.reason) for n in report.decided] == [("PO1", None)]
    assert sms.sent == [] and not (config.state_dir / "outbox.sqlite3").exists()


def test_a_partner_without_a_mobile_is_skipped_with_its_reason(config):
    x3, sms = FakeX3([order("PO1")]), FakeSender()
    x3.partners["FR001"] = PartnerRecord("supplier", "FR001", "FRA", "FR", (), ())
    report = poller(config, x3, sms, since=NOW - timedelta(days=1)).run()
    assert sms.sent == [] and report.counts["skipped"] == 1
