"""What the `x3:` section is once loaded: X3Config with its X3 Cloud and GraphQL parts.

Each option is declared once on its field (see config.options).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from x3twilio.config.options import DAY, TIMEOUT, about
from x3twilio.x3.partners import PartnerShape, default_shapes

X3_APIS = ("rest", "graphql")
X3_AUTHS = ("basic", "connected_app", "oauth2")
GRAPHQL = "see [X3 GraphQL](#x3-graphql-connected-app-or-x3-cloud)"


@dataclass(frozen=True)
class X3Config:
    url: str = field(
        metadata=about(
            "Syracuse base URL, e.g. `https://x3.example.com:8124`: scheme and host, no "
            "credentials (they go in `x3.user`, `x3.password`), no `?query`"
        )
    )
    folder: str = field(metadata=about("the X3 endpoint (folder), e.g. `SEED`"))
    user: str = field(
        metadata=about("Basic credentials of the web-service user", default="", shown="required")
    )
    password: str = field(
        metadata=about("Basic credentials of the web-service user", default="", shown="required")
    )
    api: str = field(
        default="rest",
        metadata=about(f"`rest` (api1: HTTP Basic, or X3 Cloud's OAuth2) or `graphql` ({GRAPHQL})"),
    )
    page_size: int = field(
        default=100,
        metadata=about(
            "rows per page", low=1, high=200, problem="expected 1 to 200 (X3 guards larger pages)"
        ),
    )
    timeout: float = field(default=30.0, metadata=about("per request", **TIMEOUT))
    lookback: float = field(  # seconds re-read behind the watermark (late commits)
        default=600.0,
        metadata=about(
            "how far behind the watermark each run re-reads (late commits)",
            high=7 * DAY,
            duration=True,
        ),
    )
    settle: float = field(  # seconds below X3's clock that a run leaves for the next one
        default=0.0,
        metadata=about(
            "changes younger than this (by X3's clock) wait for the next run",
            high=3600.0,
            duration=True,
        ),
    )
    # How X3 is signed in to (x3twilio/x3/auth.py): basic and oauth2 for either API,
    # connected_app for GraphQL only; the rest of this block is GraphQL's.
    auth: str = field(
        default="basic",
        metadata=about(
            "`basic`, `connected_app` (on-premise JWT) or `oauth2` (X3 Cloud)",
            shown="`basic` (rest), `connected_app` (graphql)",
        ),
    )
    client_id: str = field(  # of the connected application, or of the X3 Cloud app
        default="",
        metadata=about("of the connected application, or of the X3 Cloud application", shown="—"),
    )
    client_secret: str = field(
        default="",
        metadata=about("of the connected application, or of the X3 Cloud application", shown="—"),
    )
    audience: str = field(  # "" = the endpoint
        default="",
        metadata=about(
            "the connected application's registered URL, exactly (trailing slash included)",
            shown="`{url}{graphql_path}`",
        ),
    )
    token_validity: float = field(
        default=300.0,
        metadata=about(
            'lifetime of each minted JWT; within the application\'s "Tokens validity"',
            low=2.0,
            high=DAY,
            duration=True,
        ),
    )
    graphql_path: str = field(
        default="/xtrem/api",
        metadata=about(
            "X3 Cloud: `url: https://api.<region>-sagex3.com/v1` and "
            "`graphql_path: /service/<endpoint>/api`"
        ),
    )
    oauth2: OAuth2Config | None = None  # x3.oauth2: declared on OAuth2Config
    packages: Mapping[str, str] = field(  # x3Purchasing -> actual root
        default_factory=dict,
        metadata=about(
            "root names of older releases, e.g. `x3Purchasing: xtremX3Purchasing` "
            "(`check` finds them)",
            shown="`{}`",
        ),
    )
    nodes: Mapping[str, GraphQLNode] = field(  # X3 class -> node
        default_factory=dict,
        metadata=about(
            "where a class lives in GraphQL: "
            '`{node: pkg.node, key: [...], fields: {CODE: "path [n=value ...]"}}` '
            "(kinds come from the schema)",
            key="nodes.CLASS",
            shown="built-in",
        ),
    )
    mutations: Mapping[str, str] = field(
        default_factory=lambda: {"update": "update", "create": "create"},
        metadata=about(
            "the mutations that write notes and created records",
            shown="`{update: update, create: create}`",
        ),
    )
    schema_max_age: float = field(  # seconds a cached GraphQL schema is trusted
        default=DAY,
        metadata=about(
            "how long the introspected GraphQL schema in the state directory is reused "
            "(`check` always reads it)",
            high=365 * DAY,
            duration=True,
        ),
    )
    state_dir: Path | None = None  # where the X3 Cloud refresh token is kept
    # Where suppliers and customers keep addresses, phones and contacts (x3.partners).
    partners: Mapping[str, PartnerShape] = field(
        default_factory=default_shapes,
        metadata=about(
            "`class`, `representation`, `key`, and `fields: {ROLE: CODE}` for where this site "
            "keeps addresses, phones and contacts (KIND: `supplier` or `customer`)",
            key="partners.KIND",
            shown="see below",
        ),
    )

    @property
    def graphql_url(self) -> str:
        return f"{self.url}{self.graphql_path}"


@dataclass(frozen=True)
class OAuth2Config:
    """X3 Cloud's authorisation-code flow (SAGE_X3.md §3.2 B)."""

    authorize_url: str = field(metadata=about("X3 Cloud's approval page"))
    token_url: str = field(metadata=about("where codes and refresh tokens are traded"))
    redirect_uri: str = field(
        metadata=about("exactly as registered for the application: `http` on loopback, or `https`")
    )
    scope: str = field(default="businessDomain.ALL api.graphQL", metadata=about("asked for"))
    customer: str = field(default="", metadata=about("the X3 Cloud customer", shown="none"))
    # api1 under the regional endpoint: Sage documents only GraphQL there, so configurable.
    api1_path: str = field(
        default="/api1/x3/erp/{folder}", metadata=about("api1 under the regional endpoint")
    )


@dataclass(frozen=True)
class GraphQLNode:
    """Where an X3 class lives in the GraphQL schema: `package.node`, key, field paths."""

    node: str | None = None  # e.g. x3Custom.smsLog; None keeps the built-in one
    key: tuple[str, ...] = ()
    fields: Mapping[str, str] = field(default_factory=dict)  # X3 code -> "path [n=value ...]"
