"""Simulator of X3 Cloud's API gateway (OAuth2 sign-in, token API, regional endpoint).

Built from Sage's developer pages, not from the client:
https://developer.sage.com/x3/authorization-token-endpoints/make-api-calls/ ,
.../authorization-token-endpoints/authorization-api/ , .../token-api/ , the root API and
folders pages under https://developer.sage.com/x3/data-integration/guides/ , and the FAQs.

- `GET {home}/token/authorise?client_id&scope&customer&redirect_uri&state`: the consent
  page. The user "accepts" by submitting its form; the gateway answers that POST with a
  307 to the redirect URI, so the browser re-POSTs `authorizationCode`, `state` and
  `endpoint` (form-encoded) to the application's callback. A customer the gateway does
  not know comes back the same way with `error` (Sage: "HTTP 307 POST error=...").
- `POST {root}/token`, a JSON body: `authorization_code` and `refresh_token` grants. An
  access token lasts 5 minutes, a refresh token 30 days, and works once (rotation).
- The customer's regional root `{region}` (another path on the same server, named in the
  callback's `endpoint` as an absolute URL): bearer tokens only, then forwarded to the X3
  simulator with `environ[GATEWAY_USER]` set: GraphQL at `service/{endPoint}/api` (root
  API page), and api1 at `api1/...` (not documented by Sage under the gateway: an
  assumption, kept configurable in the client as x3.oauth2.api1_path), `folders`.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from x3twilio.simulators import Reply, StartResponse, read_body, send
from x3twilio.simulators.x3 import API_PREFIX, X3Simulator
from x3twilio.simulators.x3_pages import GATEWAY_USER

HOME = "/v1"  # the regional root the application starts from (its x3.url)
XTREM_PATH = "/xtrem/api"  # X3's own GraphQL endpoint, behind the gateway
SCOPES = ("api.graphQL", "api.dataIngestion", "api.dataDelivery")
CODE_TTL = 600.0


@dataclass
class CloudOAuth:
    """The gateway's registered application and the tokens it issued (inspectable)."""

    client_id: str = "x3twilio-cloud"
    client_secret: str = "sim-cloud-secret"
    redirect_uris: set[str] = field(default_factory=set)  # as in Sage's app registry
    customer: str = "https://x3.customer.example"
    access_ttl: float = 300.0  # 5 minutes (token API page)
    refresh_ttl: float = 30 * 86400.0  # 30 days
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # pairing -> (uri, code)
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)  # code -> (uri, expiry)
    access: dict[str, float] = field(default_factory=dict)  # token -> expiry
    refresh: dict[str, float] = field(default_factory=dict)
    refreshes: int = 0
    exchanges: list[str] = field(default_factory=list)  # the path of each token call


class CloudGateway:
    """X3 Cloud's gateway in front of one X3Simulator; a thread-safe WSGI app."""

    def __init__(
        self,
        x3: X3Simulator,
        region: str = "/eu/v1",
        endpoint_name: str = "X3CLOUDV2_SEED",
        user: str | None = None,
    ) -> None:
        self.x3 = x3
        self.region = region  # the customer's regional root, announced in the callback
        self.services = {endpoint_name: x3.folder}  # GraphQL endPoint -> X3 folder
        self.user = user or x3.user  # who accepted the pairing (scope user.? or a domain)
        self.oauth = CloudOAuth()
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request
        self.forwarded = 0  # requests passed on to the X3 simulator
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            self.calls.append((method, path))
        for root in (HOME, self.region):
            if path == f"{root}/token" and method == "POST":
                return send(start_response, self._token(environ, path))
        if path == f"{HOME}/token/authorise" and method == "GET":
            return send(start_response, self._authorise(environ))
        if path == f"{HOME}/token/authorise/consent" and method == "POST":
            return send(start_response, self._consent(environ))
        if path in (HOME, self.region) and method == "GET":
            return send(start_response, Reply(200, self._root_api(environ, path)))
        if path.startswith(f"{self.region}/"):
            return self._regional(environ, start_response, path[len(self.region) :])
        return send(start_response, _oauth_error(404, "not_found", f"no route {path}"))

    def _now(self) -> float:
        return self.x3.now().timestamp()

    def _base(self, environ: dict[str, Any]) -> str:
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def _root_api(self, environ: dict[str, Any], root: str) -> dict[str, Any]:
        """What GET on a regional root lists (Sage's root API page)."""
        base = self._base(environ) + root
        return {
            "customerAccess": {"authorise": f"{base}/token/authorise", "token": f"{base}/token"},
            "customerUsage": {
                "folder": f"{base}/folders",
                "graphQL": f"{base}/service/{{endPoint}}/api",
                "dataIngestion": f"{base}/dataingestion/{{folderName}}",
                "dataDelivery": f"{base}/datadelivery/{{folderName}}",
            },
            "businessDomains": ["ALL"],
        }

    # ------------------------------------------------------------ pairing (authorise)

    def _authorise(self, environ: dict[str, Any]) -> Reply:
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        oauth = self.oauth
        uri = params.get("redirect_uri", "")
        # An unknown client or an unregistered redirect URI is never redirected to.
        if params.get("client_id") != oauth.client_id:
            return _oauth_error(400, "invalid_client", "unknown client_id")
        if uri not in oauth.redirect_uris:
            return _oauth_error(400, "invalid_request", "redirect_uri is not registered")
        problem = _scope_problem(params.get("scope", ""))
        if problem:
            return _oauth_error(400, "invalid_scope", problem)
        pairing = secrets.token_urlsafe(12)
        fields = {"state": params.get("state", "")}
        if params.get("customer") != oauth.customer:
            fields["error"] = "Could not associate the customer configuration"
        else:
            fields["authorizationCode"] = secrets.token_urlsafe(16)
            fields["endpoint"] = self._base(environ) + self.region
        with self._lock:
            oauth.pending[pairing] = (uri, fields.get("authorizationCode", ""))
        page = _consent_page(f"{HOME}/token/authorise/consent", {**fields, "pairing": pairing})
        return Reply(200, page, "text/html; charset=utf-8")

    def _consent(self, environ: dict[str, Any]) -> Reply:
        """The user accepted: 307 to the redirect URI, which the browser re-POSTs to."""
        form = {k: v[0] for k, v in parse_qs(read_body(environ).decode("latin-1")).items()}
        with self._lock:
            uri, code = self.oauth.pending.pop(form.get("pairing", ""), ("", ""))
            if code:
                self.oauth.codes[code] = (uri, self._now() + CODE_TTL)
        if not uri:
            return _oauth_error(400, "invalid_request", "unknown or used pairing request")
        return Reply(307, b"", "text/plain", [("Location", uri)])

    # ------------------------------------------------------------ token API

    def _token(self, environ: dict[str, Any], path: str) -> Reply:
        if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
            return _oauth_error(400, "invalid_request", "the body must be JSON")
        try:
            body = json.loads(read_body(environ) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _oauth_error(400, "invalid_request", "expected a JSON object")
        with self._lock:  # a refresh token works once, even for two runs at a time
            self.oauth.exchanges.append(path)
            return self._grant(body)

    def _grant(self, body: dict[str, Any]) -> Reply:
        oauth, now = self.oauth, self._now()
        given_id, given_secret = str(body.get("client_id")), str(body.get("client_secret"))
        if not (
            hmac.compare_digest(given_id.encode(), oauth.client_id.encode())
            and hmac.compare_digest(given_secret.encode(), oauth.client_secret.encode())
        ):
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        grant = body.get("grant_type")
        if grant == "authorization_code":
            uri, expiry = oauth.codes.pop(str(body.get("code")), ("", 0.0))
            if expiry <= now or uri != body.get("redirect_uri"):
                return _oauth_error(400, "invalid_grant", "unknown, used or expired code")
        elif grant == "refresh_token":
            expiry = oauth.refresh.pop(str(body.get("refresh_token")), 0.0)  # rotation
            if expiry <= now:
                return _oauth_error(400, "invalid_grant", "refresh token expired or used")
            oauth.refreshes += 1
        else:
            return _oauth_error(400, "unsupported_grant_type", str(grant))
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        oauth.access[access] = now + oauth.access_ttl
        oauth.refresh[refresh] = now + oauth.refresh_ttl
        answer = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(oauth.access_ttl),
            "refresh_token": refresh,
            "refresh_token_expires_in": int(oauth.refresh_ttl),
        }
        return Reply(200, answer)

    # ------------------------------------------------------------ the customer's APIs

    def _regional(
        self, environ: dict[str, Any], start_response: StartResponse, rest: str
    ) -> Iterable[bytes]:
        refused = self._check_bearer(environ)
        if refused is not None:
            return send(start_response, refused)
        if rest == "/folders" and environ["REQUEST_METHOD"] == "GET":
            return send(start_response, Reply(200, self._folders(environ)))
        name, _, tail = rest.removeprefix("/service/").partition("/")
        if rest.startswith("/service/") and tail == "api":
            folder = self.services.get(name)
            if folder is None:
                return send(start_response, _oauth_error(404, "not_found", name))
            return self._forward(environ, start_response, XTREM_PATH, folder)
        if rest.startswith(API_PREFIX):
            return self._forward(environ, start_response, rest, None)
        return send(start_response, _oauth_error(404, "not_found", f"no route {rest}"))

    def _check_bearer(self, environ: dict[str, Any]) -> Reply | None:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        challenge = [("WWW-Authenticate", "Bearer")]
        if scheme.lower() != "bearer" or not token:
            body = {"error": "invalid_request", "error_description": "a Bearer token is required"}
            return Reply(401, body, headers=challenge)
        with self._lock:
            expiry = self.oauth.access.get(token, 0.0)
        if expiry <= self._now():
            body = {"error": "invalid_token", "error_description": "unknown or expired token"}
            return Reply(401, body, headers=challenge)
        return None

    def _folders(self, environ: dict[str, Any]) -> dict[str, Any]:
        base = self._base(environ) + self.region
        folders = [
            {"name": folder, "$urls": {"dataService": f"{base}/service/{name}/api"}}
            for name, folder in self.services.items()
        ]
        return {"folders": folders}

    def _forward(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        path: str,
        folder: str | None,
    ) -> Iterable[bytes]:
        """Pass the request on to X3 as the user who accepted the pairing; X3's absolute
        links are rewritten to the regional root, as a gateway in front of it does."""
        inner = {k: v for k, v in environ.items() if k != "HTTP_AUTHORIZATION"}
        query = environ.get("QUERY_STRING", "")
        inner.update(PATH_INFO=path, RAW_URI=f"{path}?{query}" if query else path)
        inner[GATEWAY_USER] = self.user
        if folder is not None:
            inner["HTTP_X_XTREM_ENDPOINT"] = folder
        with self._lock:
            self.forwarded += 1
        captured: list[Any] = []

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            captured[:] = [status, headers]
            return lambda data: None

        body = b"".join(self.x3(inner, start))
        base = self._base(environ)
        body = body.replace(
            f"{base}{API_PREFIX}".encode(), f"{base}{self.region}{API_PREFIX}".encode()
        )
        status, headers = captured
        kept = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*kept, ("Content-Length", str(len(body)))])
        return [body]


def _scope_problem(scope: str) -> str:
    """Sage's FAQ: the APIs wanted, and for GraphQL a data access (user.? or a domain)."""
    words = scope.split()
    if not any(word in SCOPES for word in words):
        return f"scope names no API ({', '.join(SCOPES)})"
    unknown = [
        w for w in words if w not in SCOPES and not w.startswith(("businessDomain.", "user."))
    ]
    if unknown:
        return f"unknown scope {unknown[0]!r}"
    if "api.graphQL" in words and not any(
        w.startswith(("businessDomain.", "user.")) for w in words
    ):
        return "api.graphQL needs a data access in the scope: user.? or businessDomain.NAME"
    return ""


def _consent_page(action: str, fields: dict[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in fields.items()
    )
    return (
        "<!doctype html><html><head><title>Sage X3 - application approval</title></head>"
        f'<body><form method="post" action="{html.escape(action)}">{hidden}'
        '<button type="submit">Accept</button></form></body></html>'
    )


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})
