"""The URLs of the file: service URLs without credentials, and the shim's public URL that
Twilio must accept as a callback."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from x3twilio.yamlnode import Node

_CREDENTIALS = {
    "x3.url": "x3.user and x3.password (from the environment: ${X3_PASSWORD})",
    "twilio.api_url": "twilio.account_sid and twilio.auth_token",
    "twilio.content_url": "twilio.account_sid and twilio.auth_token",
    "sendgrid.api_url": "sendgrid.api_key",
}


def service_url(
    node: Node, key: str, default: str | None = None, *, secret_free: bool = True
) -> str:
    """An http(s) URL with a host; `secret_free`: credentials in it are refused.

    An error never repeats a URL that holds an @: what precedes it may be a password.
    """
    value = node.get(key, str) if default is None else node.get(key, str, default)
    parts = urlsplit(value.strip())
    shown = "" if "@" in value else f", got {value!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise node.error(key, f"expected an http(s) URL such as https://host:8124{shown}")
    if secret_free and (parts.username is not None or parts.password is not None):
        raise node.error(
            key,
            "credentials in the URL are refused (URLs get logged and shown); remove them and "
            f"give {_CREDENTIALS.get(node.where(key), 'them in their own keys')}",
        )
    try:
        port = parts.port  # a port that is not a number from 0 to 65535 raises
    except ValueError:
        port = 0
    if port == 0:
        raise node.error(key, f"expected a port number from 1 to 65535{shown}")
    if parts.query or parts.fragment:
        raise node.error(key, f"expected a base URL, without ?query or #fragment{shown}")
    return str(value).strip().rstrip("/")


# A DNS label of a host name Twilio accepts in a callback URL (letters, digits, inner hyphens).
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def public_url(node: Node, default: str) -> str:
    """Where Twilio reaches the shim: the base of every StatusCallback and webhook URL.

    Twilio refuses a StatusCallback whose host is not a valid host name ("underscores are
    not allowed", error 21609) and calls back over the internet, so https; plain http only
    on a loopback host (a test, or a tunnel or proxy on this machine).
    """
    url = service_url(node, "public_url", default, secret_free=False)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        raise node.error(
            "public_url",
            "credentials in the URL are refused: Twilio would repeat them in every callback "
            "and they get logged; the shim checks Twilio's signature instead",
        )
    problem = _callback_host_problem(host)
    if problem:
        raise node.error("public_url", f"{problem}: Twilio refuses such a callback URL")
    if parts.scheme != "https" and not is_loopback(host):
        raise node.error(
            "public_url",
            f"expected https:// for {host}: Twilio calls back over the internet; plain http "
            "only on a loopback host (127.0.0.1, ::1, localhost)",
        )
    return url


def _callback_host_problem(host: str) -> str | None:
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if "_" in host:
        return f"the host {host!r} has an underscore"
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"the host {host!r} is not a valid host name"
    return None


def is_loopback(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
