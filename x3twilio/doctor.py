"""`check` online: reach each configured service with the real credentials."""

from __future__ import annotations

from x3twilio.config import Config
from x3twilio.errors import RemoteError
from x3twilio.senders.twilio import API_VERSION
from x3twilio.transport import Retrier, make_session
from x3twilio.x3 import make_client


def check_online(config: Config) -> list[str]:
    """One line per check; raises the first RemoteError (exit 69) after reporting the rest."""
    session = make_session()
    client = make_client(config.x3, session, Retrier(config.retry))
    lines, first_error = [], None
    for source in config.used_sources():
        try:
            client.server_time(source)
            lines.append(f"✓ X3 {source.name}: {source.x3_class} answers")
        except RemoteError as exc:
            lines.append(f"✗ X3 {source.name}: {exc}")
            first_error = first_error or exc
    twilio = config.twilio
    url = f"{twilio.api_url}/{API_VERSION}/Accounts/{twilio.account_sid}/Messages.json"
    auth = (twilio.api_key_sid or twilio.account_sid, twilio.api_key_secret or twilio.auth_token)
    try:
        response = session.get(url, params={"PageSize": "1"}, auth=auth, timeout=twilio.timeout)
        ok = response.status_code == 200
        lines.append(("✓" if ok else "✗") + f" Twilio: HTTP {response.status_code}")
        if not ok:
            first_error = first_error or RemoteError(
                "Twilio", f"HTTP {response.status_code}", status=response.status_code
            )
    except OSError as exc:
        lines.append(f"✗ Twilio: {exc}")
        first_error = first_error or RemoteError("Twilio", str(exc))
    if first_error:
        for line in lines:
            print(line)  # noqa: T201 - the report matters most when something failed
        raise first_error
    return lines
