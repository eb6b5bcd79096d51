"""What every X3 client hands back and promises: `Page` and the `X3Client` protocol.

Its own module so that the clients (api1's and GraphQL's) and `make_client`, which picks one,
share these without importing one another.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from x3twilio.sources import Source
    from x3twilio.transport import Retrier
    from x3twilio.x3.partners import PartnerRecord, PartnerShape


@dataclass(frozen=True)
class Page:
    resources: list[dict[str, Any]]
    server_time: datetime | None  # X3's clock, from the Date header


class X3Client(Protocol):
    retrier: Retrier

    def server_time(self, source: Source) -> datetime:
        """X3's clock: it bounds each run's change window."""
        ...

    def changes(self, source: Source, lo: datetime, hi: datetime) -> Iterator[Page]:
        """Records of `source` stamped in [lo, hi), with the source's own filter."""
        ...

    def due(self, source: Source, code: str, first: date, last: date) -> Iterator[Page]:
        """Open records of `source` whose date field `code` is in [first, last]."""
        ...

    def details(
        self, x3_class: str, key: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """One record with its children, or None when it does not exist."""
        ...

    def partner(self, shape: PartnerShape, code: str) -> PartnerRecord | None:
        """One supplier or customer with its addresses and contacts, or None."""
        ...

    def keys(self, x3_class: str, key: str, representation: str | None = None) -> Iterator[str]:
        """Every key of a class (suppliers, customers)."""
        ...

    def find(
        self, x3_class: str, field: str, value: str, representation: str | None = None
    ) -> dict[str, Any] | None: ...

    def edit(
        self,
        x3_class: str,
        key: str,
        changes: dict[str, Any],
        representation: str | None = None,
    ) -> dict[str, Any]: ...

    def create(
        self, x3_class: str, body: dict[str, Any], representation: str | None = None
    ) -> dict[str, Any]:
        """One create, not retried (callers check first whether it exists)."""
        ...
