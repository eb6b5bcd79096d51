"""Who is texting: every supplier and customer phone in X3, as E.164, cached in state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from x3twilio.phones import to_e164
from x3twilio.state import write_atomic
from x3twilio.x3.base import X3Client
from x3twilio.x3.partners import PartnerDirectory, PartnerShape

FILENAME = "phonebook.json"


class Numbers(Protocol):
    """Who holds a number in X3 (PhoneBook), or a fake in tests."""

    def find(self, number: str) -> tuple[str, str] | None: ...


class PhoneBook:
    """Maps a normalised number to the (kind, code) of the partner it belongs to."""

    def __init__(
        self,
        state_dir: Path,
        client: X3Client,
        shapes: Mapping[str, PartnerShape],
        region: str,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = state_dir / FILENAME
        self.client, self.region, self.ttl, self.clock = client, region, ttl, clock
        self.shapes = shapes
        self._numbers: dict[str, list[str]] | None = None

    def find(self, number: str) -> tuple[str, str] | None:
        found = self._index().get(number)
        return (found[0], found[1]) if found else None

    def _index(self) -> dict[str, list[str]]:
        if self._numbers is None:
            cached = self._read()
            if cached is None:
                cached = self._build()
                body = {"version": 2, "built": self.clock(), "numbers": cached}
                write_atomic(self.path, json.dumps(body).encode())
            self._numbers = cached
        return self._numbers

    def _read(self) -> dict[str, list[str]] | None:
        """The cached index, or None when it is missing, stale or not what it should be
        (a cache: rebuilt from X3 rather than trusted)."""
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != 2:
            return None
        built, numbers = data.get("built"), data.get("numbers")
        if not isinstance(built, int | float) or self.clock() - built > self.ttl:
            return None
        if not isinstance(numbers, dict) or not all(_owner(v) for v in numbers.values()):
            return None
        return numbers

    def _build(self) -> dict[str, list[str]]:
        """Read every partner's addresses and contacts; the first owner of a number wins."""
        directory = PartnerDirectory(self.client, self.shapes)
        numbers: dict[str, list[str]] = {}
        for kind, shape in self.shapes.items():
            for code in self.client.keys(shape.x3_class, shape.key, shape.representation):
                record = directory.record(kind, code)
                for phone in record.phones() if record else ():
                    number = to_e164(phone.text, phone.country or self.region)
                    if number:
                        numbers.setdefault(number, [kind, code])
        return numbers


def _owner(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
