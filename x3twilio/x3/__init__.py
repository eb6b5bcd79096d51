"""Clients of Sage X3's web APIs, behind one interface.

Both clients hand back records in api1's shape (X3 codes such as POHNUM, APPFLG as
local-menu integers), so that sources, rules and the audit trail cannot tell which API
was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from x3twilio.config import X3Config
    from x3twilio.transport import Retrier
    from x3twilio.x3.base import X3Client


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
