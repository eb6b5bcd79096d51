"""Clients of Sage X3's web APIs, behind one interface.

Both clients hand back records in api1's shape (X3 codes such as POHNUM, APPFLG as
local-menu integers), so that sources, rules and the audit trail cannot tell which API
was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import requests

    from x3twilio.config import X3Config
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


def make_client(
    config: X3Config,
    session: requests.Session,
    retrier: Retrier,
    needs: Mapping[str, Iterable[str]] | None = None,
) -> X3Client:
    """The client for `config.api`; `needs`: per source, the X3 codes its rules read (GraphQL
    asks for those alone; api1's representation decides what it sends)."""
    if config.api == "graphql":
        from x3twilio.x3.graphql import GraphQLClient

        return GraphQLClient(config, session, retrier, needs=needs)
    from x3twilio.x3.rest import RestClient

    return RestClient(config, session, retrier)
