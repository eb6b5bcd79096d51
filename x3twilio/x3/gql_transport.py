"""The GraphQL client's transport: one operation POSTed to X3's Xtrem gateway, and what goes
wrong (HTTP errors; GraphQL `errors` and error diagnoses sent with HTTP 200) as an X3Error."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from x3twilio.config import X3Config
from x3twilio.errors import X3Error
from x3twilio.transport import date_header, reason_of, retry_after, snippet, try_json
from x3twilio.x3.auth import Auth
from x3twilio.x3.gql_props import dig
from x3twilio.x3.rest import _json_body

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class GraphQLTransport:
    """POSTs operations to `url` with the folder header and the credentials, renewed once
    on a 401."""

    def __init__(self, config: X3Config, session: requests.Session, auth: Auth) -> None:
        self.config, self.session, self.auth = config, session, auth

    @property
    def url(self) -> str:
        """Per request: after an X3 Cloud sign-in the API root is the regional endpoint."""
        return self.auth.api_root(self.config.url) + self.config.graphql_path

    def run(
        self, query: str, variables: dict[str, Any], label: str = "GraphQL"
    ) -> tuple[dict[str, Any], datetime | None]:
        """POST one operation; the `data`, and X3's clock from the Date header."""
        url = self.url
        response = self._post(url, query, variables)
        if response.status_code == 401 and self.auth.renew():
            response = self._post(url, query, variables)
        self._raise_for_status(url, response)
        body = _json_body(response, url)
        problem = graphql_errors(body)
        if problem:
            raise X3Error(f"X3 reported an error for {label} at {url}: {problem}", status=200)
        data = body.get("data")
        if not isinstance(data, dict):
            raise X3Error(f"the answer for {label} from {url} has no data")
        return data, date_header(response)

    def _post(self, url: str, query: str, variables: dict[str, Any]) -> requests.Response:
        headers = {
            "Accept": "application/json",
            "x-xtrem-endpoint": self.config.folder,
            **self.auth.headers(),
        }
        try:
            return self.session.post(
                url,
                json={"query": query, "variables": variables},
                headers=headers,
                timeout=self.config.timeout,
            )
        except requests.Timeout:
            raise X3Error(
                f"no answer within {self.config.timeout:g}s from {url}", transient=True
            ) from None
        except requests.ConnectionError as exc:
            raise X3Error(f"cannot reach {url}: {reason_of(exc)}", transient=True) from None

    def _raise_for_status(self, url: str, response: requests.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            explained = self.auth.explain(response.text)
            raise X3Error(f"credentials refused (HTTP 401) at {url}: {explained}", status=401)
        detail = graphql_errors(try_json(response)) or snippet(response)
        raise X3Error(
            f"HTTP {status} from {url}: {detail}",
            status=status,
            transient=status in _TRANSIENT_STATUS,
            retry_after=retry_after(response),
        )


def graphql_errors(body: Any) -> str:
    """GraphQL's `errors` (sent with HTTP 200) and error-level `extensions.diagnoses`."""
    if not isinstance(body, dict):
        return ""
    messages = []
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            where = ".".join(str(p) for p in error.get("path") or [])
            text = str(error.get("message", "")).strip()
            messages.append(f"{text} (at {where})" if where else text)
    diagnoses = dig(body, "extensions", "diagnoses") or []
    for diagnosis in diagnoses if isinstance(diagnoses, list) else []:
        if isinstance(diagnosis, dict) and _severe(diagnosis):
            text = diagnosis.get("message") or diagnosis.get("$message") or ""
            messages.append(str(text).strip())
    text = "; ".join(m for m in dict.fromkeys(messages) if m)
    if "Cannot query field" in text:
        text += " - the schema may have changed since it was read: run `x3twilio check`"
    return text


def _severe(diagnosis: Mapping[str, Any]) -> bool:
    severity = diagnosis.get("severity", diagnosis.get("$severity"))
    if isinstance(severity, int) and not isinstance(severity, bool):
        return severity >= 3  # Xtrem's ValidationSeverity: 3 error, 4 exception
    return str(severity).lower() in ("error", "fatal", "exception")
