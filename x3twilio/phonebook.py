"""Who is texting: every supplier and customer phone in X3, as E.164, cached in state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from x3twilio.phones import to_e164
from x3twilio.state import write_atomic
from x3twilio.x3 import X3Client
from x3twilio.x3.partners import PARTNER_CLASSES, PartnerDirectory, dimensioned

FILENAME = "phonebook.json"
_KEYS = {"supplier": "BPSNUM", "customer": "BPCNUM"}


class PhoneBook:
    """Maps a normalised number to the (kind, code) of the partner it belongs to."""

    def __init__(
        self,
        state_dir: Path,
        client: X3Client,
        region: str,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = state_dir / FILENAME
        self.client, self.region, self.ttl, self.clock = client, region, ttl, clock
        self._numbers: dict[str, list[str]] | None = None

    def find(self, number: str) -> tuple[str, str] | None:
        found = self._index().get(number)
        return (found[0], found[1]) if found else None

    def _index(self) -> dict[str, list[str]]:
        if self._numbers is None:
            cached = self._read()
            if cached is None:
                cached = self._build()
                body = {"version": 1, "built": self.clock(), "numbers": cached}
                write_atomic(self.path, json.dumps(body).encode())
            self._numbers = cached
        return self._numbers

    def _read(self) -> dict[str, list[str]] | None:
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        if data.get("version") != 1 or self.clock() - data.get("built", 0) > self.ttl:
            return None
        numbers: dict[str, list[str]] = data["numbers"]
        return numbers

    def _build(self) -> dict[str, list[str]]:
        """Read every partner's addresses and contacts; the first owner of a number wins."""
        directory = PartnerDirectory(self.client)
        numbers: dict[str, list[str]] = {}
        for kind, x3_class in PARTNER_CLASSES.items():
            for code in self.client.keys(x3_class, _KEYS[kind]):
                for text, country in _phones(directory.record(kind, code) or {}):
                    number = to_e164(text, country or self.region)
                    if number:
                        numbers.setdefault(number, [kind, code])
        return numbers


def _phones(record: dict[str, Any]) -> Iterator[tuple[str, str | None]]:
    addresses = [a for a in record.get("BPADDRESS") or [] if isinstance(a, dict)]
    country = addresses[0].get("CRY") if addresses else None
    for address in addresses:
        for code in ("MOB", "TEL"):
            for text in dimensioned(address, code):
                yield text, address.get("CRY") or country
    for contact in record.get("CONTACT") or []:
        if isinstance(contact, dict):
            for code in ("MOB", "TEL"):
                for text in dimensioned(contact, code):
                    yield text, country
