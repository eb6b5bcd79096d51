"""Compute and check `X-Twilio-Signature`, exactly as Twilio's helper libraries do.

The signed string is the full URL Twilio requested, verbatim, followed by every
form field as name + value, names sorted by code point and, for a repeated name,
its distinct values sorted. The signature is base64(HMAC-SHA1(auth token, string)).
A JSON-bodied webhook signs the URL alone and carries the body's hex SHA-256 in
the `bodySHA256` query parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qs, urlsplit

FormFields = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]
Params = FormFields | str | bytes | None

DEFAULT_PORTS = {"https": "443", "http": "80"}


def compute_signature(url: str, params: Params, auth_token: str) -> str:
    """Return the X-Twilio-Signature Twilio sends for this URL and these params.

    `params` is the form fields (a mapping whose values may be lists for repeated
    names, or (name, value) pairs), or the raw body of a JSON webhook, which is not
    part of the signed string.
    """
    signed = url if isinstance(params, str | bytes) else url + field_string(params)
    mac = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def validate_signature(url: str, params: Params, signature: str | None, auth_token: str) -> bool:
    """Check a webhook's signature against its URL and params, port variants included."""
    if not signature:
        return False
    if isinstance(params, str | bytes) and not body_hash_matches(url, params):
        return False
    given = signature.encode()
    # Collected once: an iterator of pairs would be spent by the first candidate.
    fields = params if isinstance(params, str | bytes) else collect_fields(params)
    # Not short-circuited: each candidate costs the same whatever the outcome.
    matches = [
        hmac.compare_digest(compute_signature(candidate, fields, auth_token).encode(), given)
        for candidate in url_variants(url)
    ]
    return any(matches)


def field_string(params: FormFields | None) -> str:
    """Concatenate name + value for every field, names sorted, each value once, sorted."""
    fields = collect_fields(params)
    return "".join(name + value for name in sorted(fields) for value in sorted(set(fields[name])))


def collect_fields(params: FormFields | None) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if params is None:
        return fields
    pairs = params.items() if isinstance(params, Mapping) else params
    for name, value in pairs:
        values = [value] if isinstance(value, str) else list(value)
        fields.setdefault(name, []).extend(values)
    return fields


def body_hash_matches(url: str, body: str | bytes) -> bool:
    """A JSON body is genuine when its hex SHA-256 equals the URL's bodySHA256."""
    try:
        claimed = parse_qs(urlsplit(url).query).get("bodySHA256", [""])[0]
    except ValueError:
        return False
    if not claimed:
        return False
    raw = body.encode() if isinstance(body, str) else body
    return hmac.compare_digest(hashlib.sha256(raw).hexdigest().encode(), claimed.encode())


def url_variants(url: str) -> list[str]:
    """The URL without its port and with the default port added, as the SDKs try both.

    Only the authority changes; the path and query stay byte for byte as given.
    """
    start = url.find("//")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: nothing to vary
        return [url]
    netloc = parts.netloc
    start += 2
    end = start + len(netloc)
    if not netloc or url[start:end] != netloc:  # urlsplit dropped stray characters
        return [url]
    userinfo, at, hostport = netloc.rpartition("@")
    host, port = split_port(hostport)
    default = DEFAULT_PORTS.get(parts.scheme, "80")
    with_port = hostport if port else f"{host}:{default}"
    return [
        url[:start] + userinfo + at + host + url[end:],
        url[:start] + userinfo + at + with_port + url[end:],
    ]


def split_port(hostport: str) -> tuple[str, str]:
    """Split "host:port" (IPv6 literals in brackets) into host and port ("" if none)."""
    bracket = hostport.rfind("]")
    colon = hostport.rfind(":")
    if colon <= bracket:
        return hostport, ""
    return hostport[:colon], hostport[colon + 1 :]
