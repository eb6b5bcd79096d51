"""Sage X3 REST api1 (SData JSON) client: keyset-paged queries and $details reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import requests

from x3twilio.config import X3Config
from x3twilio.decoding import stamp_literal
from x3twilio.errors import X3Error, X3FieldError
from x3twilio.sources import Source, not_exposed
from x3twilio.transport import Retrier, date_header, reason_of, retry_after, snippet, try_json
from x3twilio.x3.auth import Auth, make_auth
from x3twilio.x3.base import Page
from x3twilio.x3.partners import PartnerRecord, PartnerShape

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_CODE = re.compile(r"\b[A-Z][A-Z0-9_]*\b")


class RestClient:
    def __init__(
        self,
        config: X3Config,
        session: requests.Session,
        retrier: Retrier,
        auth: Auth | None = None,
    ) -> None:
        self.config, self.session, self.retrier = config, session, retrier
        self.auth = auth or make_auth(config, session)
        # X3 Cloud: the regional endpoint named at sign-in, else x3.url.
        self.root = self.auth.api_root(config.url)
        prefix = config.oauth2.api1_path if config.oauth2 else "/api1/x3/erp/{folder}"
        self.base = self.root + prefix.replace("{folder}", quote(config.folder))

    def query(
        self, source: Source, where: str | None, count: int | None = None, prefetch: bool = True
    ) -> Iterator[Page]:
        """Every page of a $query, following $links.$next.$url verbatim.

        With `prefetch`, the next page is read while the caller works on this one.
        """
        order = ",".join(source.key)
        url = (
            f"{self.base}/{source.x3_class}?representation={source.representation}.$query"
            f"&count={count or self.config.page_size}&orderBy={quote(order)}"
        )
        if where:
            url += f"&where={quote(where)}"
        try:
            yield from self._pages(url, prefetch)
        except X3FieldError as exc:
            raise not_exposed(source, exc.code, f"X3 says: {exc}") from None

    def _pages(self, url: str, prefetch: bool) -> Iterator[Page]:
        visited = {url}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="x3-page") as pool:
            fetch: Future[tuple[dict[str, Any], datetime | None]] | None = pool.submit(
                self.retrier.call, self._get, url
            )
            while fetch is not None:
                body, server_time = fetch.result()
                page, next_url = Page(_resources(body, url), server_time), self._next(body, url)
                if next_url in visited:
                    raise X3Error(f"paging loops: $links.$next repeats {next_url}")
                fetch = None
                if next_url:
                    url = next_url
                    visited.add(url)
                    if prefetch:
                        fetch = pool.submit(self.retrier.call, self._get, url)
                yield page
                if next_url and fetch is None:
                    fetch = pool.submit(self.retrier.call, self._get, url)

    def _next(self, body: dict[str, Any], url: str) -> str | None:
        """The next page's URL, only if it is on this X3 server: credentials never go to
        another scheme, host or port, whatever a page says."""
        link = _next_url(body)
        if link is None:
            return None
        here, there = urlsplit(self.root), urlsplit(link)
        if not (there.scheme and there.netloc):
            raise X3Error(f"the answer from {url} has a $links.$next that is not a URL: {link!r}")
        if (there.scheme, there.hostname, there.port) != (here.scheme, here.hostname, here.port):
            named = "x3.url" if self.root == self.config.url else "X3 Cloud's endpoint"
            raise X3Error(
                f"the answer from {url} points its next page at {there.scheme}://{there.netloc},"
                f" not at {named} ({here.scheme}://{here.netloc}); it was not followed (a proxy "
                "rewriting Syracuse's links? set x3.url to the address X3 itself uses)"
            )
        return link

    def changes(self, source: Source, lo: datetime, hi: datetime) -> Iterator[Page]:
        """Records stamped in [lo, hi), and-ed with the source's own filter."""
        ts = source.timestamp
        where = f"({ts} ge @{stamp_literal(lo)}@) and ({ts} lt @{stamp_literal(hi)}@)"
        return self.query(source, _and(where, source.where))

    def due(self, source: Source, code: str, first: date, last: date) -> Iterator[Page]:
        """Open records whose date `code` falls in [first, last]."""
        where = f"({code} ge @{first.isoformat()}@) and ({code} le @{last.isoformat()}@)"
        return self.query(source, _and(_and(where, source.open_where), source.where))

    def keys(self, x3_class: str, key: str, representation: str | None = None) -> Iterator[str]:
        """Every key of a class (suppliers, customers), page by page."""
        listing = Source(x3_class, x3_class, representation or x3_class, (key,), {})
        for page in self.query(listing, None):
            yield from (str(row[key]) for row in page.resources if row.get(key))

    def find(
        self, x3_class: str, field: str, value: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """The first record whose `field` equals `value`, if any."""
        listing = Source(x3_class, x3_class, representation or x3_class, (field,), {})
        quoted = value.replace("'", "''")
        page = next(self.query(listing, f"({field} eq '{quoted}')", count=1, prefetch=False))
        return page.resources[0] if page.resources else None

    def sample(self, x3_class: str, representation: str) -> dict[str, Any] | None:
        """One record of a class's `$query`, as it comes (for discovery)."""
        url = f"{self.base}/{x3_class}?representation={representation}.$query&count=1"
        page = next(self._pages(url, prefetch=False))
        return page.resources[0] if page.resources else None

    def prototype(self, x3_class: str, representation: str, facet: str) -> dict[str, Any] | None:
        """What a representation says it exposes (`$prototypes`), or None if not served."""
        url = f"{self.base}/{x3_class}/$prototypes('{representation}.{facet}')"
        try:
            body, _ = self.retrier.call(self._get, url)
        except X3Error as exc:
            if exc.status in (400, 404, 405, 501):
                return None
            raise
        properties = body.get("$properties")
        return properties if isinstance(properties, dict) else None

    def partner(self, shape: PartnerShape, code: str) -> PartnerRecord | None:
        body = self.details(shape.x3_class, code, shape.representation)
        return None if body is None else shape.read(code, body)

    def server_time(self, source: Source) -> datetime:
        """X3's clock (from a one-row query), which bounds this run's change window."""
        page = next(self.query(source, None, count=1, prefetch=False))
        if page.server_time is None:
            raise X3Error(f"{self.config.url} sends no Date header; cannot read X3's clock")
        return page.server_time

    def details(
        self, x3_class: str, key: str, representation: str | None = None
    ) -> dict[str, Any] | None:
        """One record's $details (children included), or None when X3 says it does not exist."""
        url = self._record_url(x3_class, key, representation, "$details")
        try:
            body, _ = self.retrier.call(self._get, url)
        except X3Error as exc:
            if exc.status == 404:
                return None
            raise
        return body

    def edit(
        self,
        x3_class: str,
        key: str,
        changes: dict[str, Any],
        representation: str | None = None,
    ) -> dict[str, Any]:
        """PUT only the changed properties through the $edit facet (api1 has no ETag)."""
        url = self._record_url(x3_class, key, representation, "$edit")
        return self.retrier.call(self._send, "PUT", url, changes)

    def create(
        self, x3_class: str, body: dict[str, Any], representation: str | None = None
    ) -> dict[str, Any]:
        """POST one $create, not retried here: a lost answer may hide a created record,
        so callers retry only after checking whether it exists."""
        url = f"{self.base}/{x3_class}?representation={representation or x3_class}.$create"
        return self._send("POST", url, body)

    def _record_url(self, x3_class: str, key: str, representation: str | None, facet: str) -> str:
        rep = representation or x3_class
        return f"{self.base}/{x3_class}('{quote(key, safe='~')}')?representation={rep}.{facet}"

    def _send(self, method: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
        return _json_body(self._request(method, url, json=body), url)

    def _get(self, url: str) -> tuple[dict[str, Any], datetime | None]:
        response = self._request("GET", url)
        return _json_body(response, url), date_header(response)

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        response = self._call(method, url, **kwargs)
        if response.status_code == 401 and self.auth.renew():  # an access token aged out
            response = self._call(method, url, **kwargs)
        if response.status_code == 401:
            raise X3Error(
                f"credentials refused (HTTP 401) at {url}: {self.auth.explain(response.text)}",
                status=401,
            )
        _raise_for_status(response, url)
        return response

    def _call(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {"Accept": "application/json", **self.auth.headers()}
        try:
            return self.session.request(
                method, url, timeout=self.config.timeout, headers=headers, **kwargs
            )
        except requests.Timeout:
            raise X3Error(
                f"no answer within {self.config.timeout:g}s from {url}", transient=True
            ) from None
        except requests.ConnectionError as exc:
            raise X3Error(f"cannot reach {url}: {reason_of(exc)}", transient=True) from None


def _and(where: str, extra: str | None) -> str:
    return f"{where} and ({extra})" if extra else where


def _raise_for_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _diagnoses(try_json(response)) or snippet(response)
    _refuse_licence(detail, url, status)
    unknown = _named_property(detail, url) if status in (400, 500) else None
    if unknown is not None:  # X3 answers 500 for an unknown property: a setup mistake
        raise X3FieldError(unknown, detail)
    raise X3Error(
        f"HTTP {status} from {url}: {detail}",
        status=status,
        transient=status in _TRANSIENT_STATUS,
        retry_after=retry_after(response),
    )


def _named_property(detail: str, url: str) -> str | None:
    """The property of this request's `where`/`orderBy` that X3's diagnosis names, if any."""
    params = parse_qs(urlsplit(url).query)
    used = [
        code
        for name in ("where", "orderBy")
        for text in params.get(name, [])
        for code in _CODE.findall(re.sub(r"'[^']*'|@[^@]*@", "", text))
    ]
    return next((code for code in used if re.search(rf"\b{code}\b", detail)), None)


def _refuse_licence(detail: str, url: str, status: int) -> None:
    """X3 stops answering web services when the licence's daily data volume is used up."""
    if re.search(r"licen[cs]e", detail, re.IGNORECASE):
        raise X3Error(
            f"X3's licence refuses web-service calls at {url} (HTTP {status}: {detail}). "
            "The web-service data volume of the licence (WSSIZELIMIT, WSGRACELIMIT) is "
            "probably used up: it resets with the licence period; ask the X3 administrator "
            "to raise it, or poll less often (a longer cron interval, fewer sources)",
            status=status,
        )


def _json_body(response: requests.Response, url: str) -> dict[str, Any]:
    body = try_json(response)
    if not isinstance(body, dict):
        kind = response.headers.get("Content-Type", "no content type")
        # A login page means a proxy or Syracuse session redirect, not a hiccup.
        transient = "html" not in kind
        raise X3Error(
            f"answered HTTP {response.status_code} with {kind} instead of JSON from {url}: "
            f"{snippet(response)}",
            status=response.status_code,
            transient=transient,
        )
    problem = _diagnoses(body)
    if problem:
        _refuse_licence(problem, url, response.status_code)
        raise X3Error(f"X3 reported an error for {url}: {problem}", status=response.status_code)
    return body


def _diagnoses(body: Any) -> str:
    """The error messages of an SData $diagnoses list (X3 sends them even on a 2xx)."""
    if not isinstance(body, dict):
        return ""
    found = body.get("$diagnoses") or []
    errors = [
        str(d.get("$message", "")).strip()
        for d in found
        if isinstance(d, dict) and d.get("$severity") in ("error", "fatal")
    ]
    return "; ".join(e for e in errors if e)


def _resources(body: dict[str, Any], url: str) -> list[dict[str, Any]]:
    resources = body.get("$resources")
    if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
        raise X3Error(f"the answer from {url} has no $resources list")
    return resources


def _next_url(body: dict[str, Any]) -> str | None:
    links = body.get("$links")
    link = links.get("$next") if isinstance(links, dict) else None
    if isinstance(link, dict):
        link = link.get("$url")
    if link in (None, ""):
        return None
    if not isinstance(link, str):
        raise X3Error(f"a page's $links.$next is not a URL: {link!r}")
    return link
