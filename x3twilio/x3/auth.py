"""Credentials for X3's APIs: connected-app JWTs, X3 Cloud OAuth2, HTTP Basic.

On-premise X3 has no token endpoint: the client signs its own HS256 JWT with the
connected application's secret and sends it on every request (SAGE_X3.md §3.2 A).
X3 Cloud uses OAuth2's authorisation-code flow (§3.2 B): `x3twilio x3 login` (see
x3twilio/x3/callback.py) stores a refresh token and the regional endpoint X3 Cloud named
once, and every run rotates the token in the state directory and calls that endpoint.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests

from x3twilio.config import OAuth2Config, X3Config
from x3twilio.errors import X3Error
from x3twilio.state import ensure_dir, write_atomic

Clock = Callable[[], float]  # seconds since the epoch

TOKEN_FILE = "x3-oauth2.json"
TOKEN_LOCK = "x3-oauth2.lock"
VERSION = 1
EARLY = 60.0  # refresh an access token this long before it expires
REFRESH_LIFETIME = 30 * 86400.0  # X3 Cloud's refresh tokens, when the answer does not say

# X3's 401 bodies read "Error NN: Invalid token" (SAGE_X3.md §3.2; partly unverified).
TOKEN_ERRORS = {
    21: "the token's iat is in X3's future: this host's clock is ahead of X3's "
    "(synchronise both with NTP)",
    41: "X3 has no connected application with this client ID (x3.client_id)",
    42: "x3.user is not an allowed user of the connected application "
    "(Administration > Settings > Authentication > Connected applications)",
    45: "the token's audience is not the connected application's URL: set x3.audience to "
    "exactly the URL registered in X3 (scheme, port and trailing slash included)",
    50: "X3 could not verify the token: its signature does not match x3.client_secret, or "
    "it expired (check both clocks, and that x3.token_validity is within the "
    "application's Tokens validity)",
}


class Auth(Protocol):
    def headers(self) -> dict[str, str]:
        """The Authorization header for the next request."""
        ...

    def renew(self) -> bool:
        """After a 401: get fresh credentials; False when a retry cannot help."""
        ...

    def explain(self, body: str) -> str:
        """Why X3 answered 401, in words an operator can act on."""
        ...

    def api_root(self, configured: str) -> str:
        """Where later calls go: x3.url, or the regional endpoint X3 Cloud named at sign-in."""
        ...


def make_auth(config: X3Config, session: requests.Session, clock: Clock = time.time) -> Auth:
    if config.auth == "connected_app":
        return ConnectedApp(config, clock)
    if config.auth == "oauth2":
        return OAuth2(config, session, clock)
    return Basic(config)


# ---------------------------------------------------------------- HTTP Basic


class Basic:
    def __init__(self, config: X3Config) -> None:
        pair = f"{config.user}:{config.password}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode()

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._header}

    def renew(self) -> bool:
        return False

    def api_root(self, configured: str) -> str:
        return configured

    def explain(self, body: str) -> str:
        return (
            "check x3.user and x3.password, and that Basic authentication is enabled "
            "for web services"
        )


# ---------------------------------------------------------------- connected application


def mint_jwt(secret: str, claims: dict[str, Any]) -> str:
    """An HS256 JSON Web Token, signed with the stdlib."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{_b64(signature.digest())}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ConnectedApp:
    """Mints a JWT for X3 and mints the next one before it expires, also mid-run."""

    def __init__(self, config: X3Config, clock: Clock = time.time) -> None:
        self.config, self.clock = config, clock
        self.audience = config.audience or config.graphql_url
        # iat goes back 30 s so an X3 clock a little behind ours accepts it (error 21);
        # a quarter of the validity for short ones, or nothing would be left of them.
        self.skew = min(30.0, config.token_validity / 4)
        self.minted = 0
        self._token, self._issued, self._expires = "", 0.0, 0.0

    def headers(self) -> dict[str, str]:
        if self.clock() >= self._expires - self.skew:
            self._mint()
        return {"Authorization": f"Bearer {self._token}"}

    def _mint(self) -> None:
        now = self.clock()
        iat = int(now - self.skew)
        exp = iat + int(self.config.token_validity)
        claims = {
            "iss": self.config.client_id,
            "sub": self.config.user,
            "aud": self.audience,
            "iat": iat,
            "exp": exp,
        }
        self._token = mint_jwt(self.config.client_secret, claims)
        self._issued, self._expires = now, float(exp)
        self.minted += 1

    def renew(self) -> bool:
        """A token that aged in flight may be refused; a fresh one refused will be again."""
        if self.clock() - self._issued < 1:
            return False
        self._mint()
        return True

    def api_root(self, configured: str) -> str:
        return configured

    def explain(self, body: str) -> str:
        found = re.search(r"Error\s*(\d+)", body)
        said = " ".join(body.split())[:80]
        if found and int(found[1]) in TOKEN_ERRORS:
            return f'X3 says "{said}": {TOKEN_ERRORS[int(found[1])]}'
        return f'X3 says "{said or "(nothing)"}": check x3.client_id, x3.client_secret and x3.user'


# ---------------------------------------------------------------- X3 Cloud: OAuth2


class OAuth2:
    """Access tokens from a rotating refresh token kept in the state directory (0600)."""

    def __init__(self, config: X3Config, session: requests.Session, clock: Clock = time.time):
        self.config, self.session, self.clock = config, session, clock
        self.store = TokenStore(config)
        self._access, self._expires = "", 0.0
        self._root: str | None = None

    def headers(self) -> dict[str, str]:
        if self.clock() >= self._expires - EARLY:
            self._obtain(refused="")
        return {"Authorization": f"Bearer {self._access}"}

    def renew(self) -> bool:
        self._obtain(refused=self._access)
        return True

    def api_root(self, configured: str) -> str:
        """The regional endpoint named at sign-in ("Your App must use this endpoint for
        future calls", Sage's make-api-calls page), else x3.url. Without a sign-in yet the
        first request says so (headers())."""
        if self._root is None:
            try:
                endpoint = self.store.read().get("endpoint")
            except X3Error:
                endpoint = None
            where = f"{self.store.path}: endpoint"
            self._root = check_endpoint(endpoint, where) if endpoint else configured
        return self._root

    def _obtain(self, refused: str) -> None:
        # Under the lock: poll and ingest may run together, and a refresh token works once.
        with self.store.locked():
            tokens = self.store.read()
            now = self.clock()
            stored = str(tokens.get("access_token") or "")
            if not stored or stored == refused or tokens.get("access_expires", 0) - EARLY <= now:
                tokens = self._refresh(tokens, now)
            self._access, self._expires = tokens["access_token"], float(tokens["access_expires"])

    def _refresh(self, tokens: dict[str, Any], now: float) -> dict[str, Any]:
        expires = float(tokens.get("refresh_expires", 0))
        if expires <= now:
            when = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC")
            raise X3Error(
                f"the X3 Cloud refresh token expired on {when}; "
                "run `x3twilio x3 login` again to sign in",
                status=401,
            )
        answer = _token_request(
            self.config,
            self.session,
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            "refresh token",
            tokens.get("endpoint"),
        )
        fresh = _tokens(answer, now, tokens)
        self.store.write(fresh)
        return fresh

    def explain(self, body: str) -> str:
        said = " ".join(body.split())[:80] or "(nothing)"
        return (
            f'X3 Cloud says "{said}" to a fresh access token: check the application\'s '
            "scopes, or run `x3twilio x3 login` again"
        )


class TokenStore:
    """The refresh token (and the current access token) in the state directory."""

    def __init__(self, config: X3Config) -> None:
        if config.state_dir is None:
            raise X3Error("auth oauth2 needs a state directory for its refresh token")
        self.dir = config.state_dir
        self.path = config.state_dir / TOKEN_FILE

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        ensure_dir(self.dir)
        fd = os.open(self.dir / TOKEN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits: the other run's refresh takes a moment
            yield
        finally:
            os.close(fd)

    def read(self) -> dict[str, Any]:
        try:
            data: Any = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise X3Error(
                f"no X3 Cloud sign-in yet ({self.path} is missing): run `x3twilio x3 login` once",
                status=401,
            ) from None
        except (OSError, ValueError) as exc:
            raise X3Error(f"{self.path} is unreadable ({exc}); run `x3twilio x3 login`") from None
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise X3Error(f"{self.path}: unknown format; run `x3twilio x3 login` again")
        return data

    def write(self, tokens: dict[str, Any]) -> None:
        ensure_dir(self.dir)
        body = {"version": VERSION, **tokens}
        write_atomic(self.path, json.dumps(body, indent=2, sort_keys=True).encode() + b"\n")


def _tokens(
    answer: dict[str, Any], now: float, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The stored form of a token answer; a refresh that rotates nothing keeps the old one."""
    old = old or {}
    access = answer.get("access_token")
    if not isinstance(access, str) or not access:
        raise X3Error("the X3 Cloud token answer has no access_token")
    rotated = answer.get("refresh_token")
    refresh = rotated if isinstance(rotated, str) and rotated else old.get("refresh_token")
    if not refresh:
        raise X3Error("the X3 Cloud token answer has no refresh_token")
    lifetime = float(answer.get("refresh_token_expires_in") or REFRESH_LIFETIME)
    stored = {
        "access_token": access,
        "access_expires": now + float(answer.get("expires_in") or 300),
        "refresh_token": refresh,
        "refresh_expires": now + lifetime if rotated else float(old["refresh_expires"]),
    }
    if old.get("endpoint"):
        stored["endpoint"] = old["endpoint"]
    return stored


def check_endpoint(url: Any, where: str) -> str:
    """The regional API root X3 Cloud named: absolute https (http on loopback, for tests
    and tunnels), no credentials, query or fragment; bearer tokens go there."""
    parts = urlsplit(url) if isinstance(url, str) else None
    secure = parts is not None and parts.scheme == "https"
    loopback = parts is not None and parts.scheme == "http" and _loopback(parts.hostname)
    try:
        port_ok = parts is not None and parts.port != 0
    except ValueError:
        port_ok = False
    if (
        parts is None
        or not parts.hostname
        or not (secure or loopback)
        or not port_ok
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        shown = repr(url) if isinstance(url, str) and "@" not in url else "a value"
        raise X3Error(
            f"{where}: X3 Cloud's endpoint must be an https URL such as "
            f"https://api.eu-prod-sagex3.com/v1, got {shown}; run `x3twilio x3 login` again"
        )
    return str(url).rstrip("/")


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _token_request(
    config: X3Config,
    session: requests.Session,
    grant: dict[str, str],
    what: str,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """POST the grant as JSON; with a regional endpoint, to its token route (Sage's
    make-api-calls page exchanges the code at the endpoint the callback named)."""
    oauth2 = _oauth2(config)
    body = {**grant, "client_id": config.client_id, "client_secret": config.client_secret}
    url = f"{endpoint}/token" if endpoint else oauth2.token_url
    try:
        response = session.post(url, json=body, timeout=config.timeout)
    except requests.Timeout:
        raise X3Error(f"no answer within {config.timeout:g}s from {url}", transient=True) from None
    except requests.ConnectionError:
        raise X3Error(f"cannot reach {url}", transient=True) from None
    try:
        answer: Any = response.json()
    except ValueError:
        answer = None
    if response.status_code >= 500:
        raise X3Error(f"HTTP {response.status_code} from {url}", transient=True)
    if response.status_code >= 400 or not isinstance(answer, dict):
        said = answer if isinstance(answer, dict) else {}
        reason = f"{said.get('error', 'refused')}: {said.get('error_description', '')}".strip()
        raise X3Error(
            f"X3 Cloud refused the {what} at {url} (HTTP {response.status_code}, {reason}); "
            + (
                "check x3.client_id and x3.client_secret"
                if said.get("error") == "invalid_client"
                else "it expired or was already used: run `x3twilio x3 login` again"
            ),
            status=response.status_code,
        )
    return answer


def _oauth2(config: X3Config) -> OAuth2Config:
    if config.oauth2 is None:
        raise X3Error("x3.oauth2 is not configured (authorize_url, token_url, redirect_uri)")
    return config.oauth2


# ---------------------------------------------------------------- `x3twilio x3 login`


def authorize_url(config: X3Config, state: str) -> str:
    """Where a person signs in to X3 Cloud and consents, once."""
    oauth2 = _oauth2(config)
    params = {
        "client_id": config.client_id,
        "scope": oauth2.scope,
        "redirect_uri": oauth2.redirect_uri,
        "state": state,
    }
    if oauth2.customer:
        params["customer"] = oauth2.customer
    return f"{oauth2.authorize_url}?{urlencode(params)}"


def exchange_code(
    config: X3Config,
    code: str,
    endpoint: str | None = None,
    session: requests.Session | None = None,
    clock: Clock = time.time,
) -> Path:
    """Trade a one-time authorisation code for tokens and store them, with the regional
    endpoint the callback named (None: x3.url serves this customer); returns the file."""
    if endpoint is not None:
        endpoint = check_endpoint(endpoint, "the sign-in callback")
    answer = _token_request(
        config,
        session or requests.Session(),
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": _oauth2(config).redirect_uri,
        },
        "authorisation code",
        endpoint,
    )
    tokens = _tokens(answer, clock())
    if endpoint:
        tokens["endpoint"] = endpoint
    store = TokenStore(config)
    with store.locked():
        store.write(tokens)
    return store.path
