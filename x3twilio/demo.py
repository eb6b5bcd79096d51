"""`demo` and `sim`: the product running end to end against the built-in simulators."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import requests
import yaml

from x3twilio.errors import ExitCode, X3TwilioError
from x3twilio.model import Count, Counts
from x3twilio.simulators import RunningServer, serve
from x3twilio.simulators.sendgrid import DEFAULT_SENDER, SendGridSimulator
from x3twilio.simulators.twilio import TwilioSimulator
from x3twilio.simulators.x3 import X3Simulator

Echo = Callable[[str], None]


def example_config() -> dict[str, Any]:
    """rules.example.yaml as shipped in the package."""
    text = resources.files("x3twilio").joinpath("data/rules.example.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def sim_config(
    x3: RunningServer,
    twilio: RunningServer,
    state_dir: str = "state",
    public_url: str = "http://127.0.0.1:8080",
    api: str = "rest",
    sendgrid: RunningServer | None = None,
    quiet_hours: bool = False,
) -> dict[str, Any]:
    """The example configuration, pointed at running simulators with their credentials.

    `api="graphql"` reads X3 through its GraphQL endpoint, as the simulator's connected
    application (the same data: a record changed through one API is changed in the other).
    Without a SendGrid simulator the email rules are left out; quiet hours are left out
    unless asked for, so that what is sent does not depend on the time of day.
    """
    x3sim: X3Simulator = x3.app  # type: ignore[assignment]
    twsim: TwilioSimulator = twilio.app  # type: ignore[assignment]
    config = example_config()
    config["x3"].update(
        url=x3.url, folder=x3sim.folder, user=x3sim.user, password=x3sim.password, timeout="5s"
    )
    if api == "graphql":
        config["x3"].update(graphql_x3(x3sim))
    config["twilio"] = {
        "account_sid": twsim.account_sid,
        "auth_token": twsim.auth_token,
        "from": twsim.phone_number,
        "api_url": twilio.url,
        "timeout": "5s",
    }
    config["public_url"] = public_url
    config["state_dir"] = state_dir
    config["retry"] = {"attempts": 3, "initial": "0.1s", "max": "1s", "budget": "20s"}
    if not quiet_hours:
        config["sending"].pop("quiet_hours", None)
    if sendgrid is None:
        config.pop("sendgrid", None)
        config["rules"] = [r for r in config["rules"] if r.get("channel") != "email"]
    else:
        grid: SendGridSimulator = sendgrid.app  # type: ignore[assignment]
        config["sendgrid"].update(
            api_key=grid.api_key, from_email=DEFAULT_SENDER, api_url=sendgrid.url
        )
    return config


# The simulated site's own API operations (X3 builder): its SMS log table and a payments
# node (Sage's schema has none). Their field names are the site's, so the config names them.
SIM_OPERATIONS = ("smsLog", "payment")


def graphql_x3(x3sim: X3Simulator) -> dict[str, Any]:
    """The x3 keys for the simulator's GraphQL API: its connected app, and the nodes of the
    site's own API operations (the notes log YSMSLOG and the payments PAYMENTH)."""
    endpoint = x3sim.graphql
    partner_type = "businessPartnerType 1=customer 2=supplier"
    return {
        "api": "graphql",
        "auth": "connected_app",
        "client_id": endpoint.client_id,
        "client_secret": endpoint.client_secret,
        "token_validity": "5m",
        "nodes": {
            "YSMSLOG": {
                "node": "x3Custom.smsLog",
                "key": ["LOGNUM"],
                "fields": {
                    "LOGNUM": "id",
                    "BPTYP": partner_type,
                    "BPNUM": "businessPartner",
                    "DOCNUM": "document",
                    "PHONE": "phone",
                    "DIRECTION": "direction",
                    "MSGSID": "messageSid",
                    "TEXT": "text",
                    "LOGDATTIM": "loggedAt",
                    "UPDDATTIM": "_updateStamp",
                },
            },
            "PAYMENTH": {
                "node": "x3Custom.payment",
                "key": ["NUM"],
                "fields": {
                    "NUM": "id",
                    "PAYTYP": "entryType",
                    "PAM": "paymentMethod",
                    "BPR": "businessPartner",
                    "BPRTYP": partner_type,
                    "BPANAM": "businessPartnerName",
                    "CRY": "country",
                    "BAN": "bank",
                    "SNS": "direction 1=expense 2=revenue",
                    "AMTCUR": "amountInCurrency",
                    "CUR": "currency",
                    "AMTBAN": "amountInBankCurrency",
                    "ACCDAT": "accountingDate",
                    "DUDDAT": "dueDate",
                    "VALDAT": "valueDate",
                    "BANDAT": "bankDate",
                    "REF": "reference",
                    "DES": "description",
                    "CHQNUM": "checkNumber",
                    "STA": "status 1=entered 2=accepted 3=inDraftManagement 9=inTheBank 11=unpaid",
                    "PST": "isPosted",
                    "CPY": "company",
                    "FCY": "site",
                    "CREDATTIM": "_createStamp",
                    "UPDDATTIM": "_updateStamp",
                    "CREUSR": "_createUser",
                    "UPDUSR": "_updateUser",
                },
            },
        },
    }


# The demo's X3 site gave its orders a text field for replies, in a representation of its own.
DEMO_REPRESENTATIONS = {"ZPORDER": {"class": "PORDER", "extra": {"ZREPLIES": "A"}}}
ON_THE_ORDER = {
    "about": "purchase_orders",
    "mode": "append",
    "representation": "ZPORDER",
    "field": "ZREPLIES",
}


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Write it readable by its owner only: it holds the simulators' credentials."""
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)  # a file that was there keeps its mode through O_CREAT


def run_demo(workdir: Path | None, echo: Echo, api: str = "rest") -> None:
    from x3twilio.config import load_config
    from x3twilio.ingest import Ingester
    from x3twilio.pipeline import Poller
    from x3twilio.wsgi import Shim

    workdir = Path(workdir or tempfile.mkdtemp(prefix="x3twilio-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shim = RunningServer(_unready)  # its address first: it is the public URL in the config
    with (
        serve(_demo_x3(api)) as x3,
        serve(TwilioSimulator()) as twilio,
        serve(SendGridSimulator()) as sendgrid,
        shim,
    ):
        x3sim: X3Simulator = x3.app  # type: ignore[assignment]
        twsim: TwilioSimulator = twilio.app  # type: ignore[assignment]
        grid: SendGridSimulator = sendgrid.app  # type: ignore[assignment]
        path = workdir / "x3twilio.yaml"
        # Quiet hours stay out of the demo, so that it shows the same at any time of day.
        config_data = sim_config(x3, twilio, public_url=shim.url, api=api, sendgrid=sendgrid)
        if api == "rest":  # replies also on the order, in a field of the site's representation
            config_data["inbound"]["notes"].append(ON_THE_ORDER)
        write_config(path, config_data)
        config = load_config(path, env={})
        shim.httpd.set_app(Shim(config))
        echo(
            f"Simulated X3 ({'GraphQL' if api == 'graphql' else 'api1'}) at {x3.url}, "
            f"Twilio at {twilio.url}, webhook shim at {shim.url}"
        )
        echo(f"Configuration, state and audit trail in {workdir}")

        item = _book_a_large_invoice_due_today(x3)
        echo(
            f"\n1. First poll: starts from now (no history is sent); due dates are checked:"
            f"\n   reminders for what falls due, and a call to the treasurer for {item}."
        )
        echo("   " + _counts(Poller(config).run().counts))

        echo("\n2. In X3, a buyer approves a purchase order and a payment goes out.")
        order = _approve_an_order(x3)
        payment = _post_a_payment(x3)
        echo(f"   approved {order}; posted payment {payment}")
        time.sleep(1.1)  # X3 stamps changes by the second; let this second close

        echo("\n3. Next poll picks up exactly those changes.")
        echo("   " + _counts(Poller(config).run().counts))

        echo("\n4. A third poll finds nothing new and sends nothing twice.")
        echo("   " + _counts(Poller(config).run().counts))
        echo(f"\nTwilio accepted {len(twsim.messages)} SMS and {len(twsim.calls)} call(s):")
        for message in twsim.messages:
            echo(f"   → {message['to']}: {message['body']}")
        for call in twsim.calls:
            echo(f"   ☎ {call['to']}")
        echo(f"SendGrid accepted {len(grid.mails)} email(s):")
        for mail in grid.mails:
            to = mail["personalizations"][0]["to"][0]["email"]
            echo(f"   ✉ {to}: {mail['subject']}")
        echo(
            "(Quiet hours, in rules.example.yaml, are off in the demo: the same output at any "
            "hour.)"
        )

        echo("\n5. Handsets report delivery; the supplier answers by SMS, another by voicemail.")
        twsim.deliver_callbacks(shuffle=True, duplicate=True)
        texted = next(m["to"] for m in twsim.messages if order in m["body"])
        twsim.send_incoming_sms(
            f"{shim.url}/twilio/sms", texted, f"{order} bien reçu, livraison confirmée"
        )
        twsim.place_incoming_call(
            f"{shim.url}/twilio/voice",
            "+447911123456",
            transcription="Hello, the pallets for your order ship Monday.",
        )
        echo("   " + _counts(Ingester(config).run().counts, ("status", "logged", "failed")))

        echo(
            f"\n   FR001 was texted at its default contact's mobile ({texted}), found in X3's"
            "\n   contact list of the supplier; GB001's voicemail matched a phone of its address."
        )
        echo("\nReplies logged in X3 (YSMSLOG: the partner, the order it is about, the text):")
        for log in x3sim.records("YSMSLOG"):
            echo(f"   {log['BPNUM']} re {log['DOCNUM'] or '-'}: {log['TEXT']}")
        if api == "rest":
            replies = x3sim.get("PORDER", order)["ZREPLIES"]
            echo(f"And on the order itself (PORDER {order}, ZPORDER.ZREPLIES):\n   {replies}")
        echo("\nAudit trail: " + _audit_summary(config.state_dir))


def _demo_x3(api: str) -> X3Simulator:
    if api == "graphql":  # the site's own API operations, as graphql_x3 maps them
        return X3Simulator(
            representations=DEMO_REPRESENTATIONS, graphql={"operations": SIM_OPERATIONS}
        )
    return X3Simulator(representations=DEMO_REPRESENTATIONS)


def _unready(environ: object, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


def _counts(
    counts: Counts,
    keys: tuple[Count, ...] = ("records", "queued", "sent", "failed", "skipped", "deferred"),
) -> str:
    return ", ".join(f"{k} {counts[k]}" for k in keys)


def _audit_summary(state_dir: Path) -> str:
    from x3twilio.audit import read_records

    events = Counter(r["event"] for r in read_records(state_dir))
    return ", ".join(f"{event} {n}" for event, n in sorted(events.items()))


def _x3_session(x3: RunningServer) -> tuple[requests.Session, str]:
    sim: X3Simulator = x3.app  # type: ignore[assignment]
    session = requests.Session()
    session.auth = (sim.user, sim.password)
    return session, f"{x3.url}/api1/x3/erp/{sim.folder}"


def _approve_an_order(x3: RunningServer) -> str:
    """PUT APPFLG=3 on an unapproved order of FR001 through api1 $edit, as X3's UI would."""
    session, base = _x3_session(x3)
    query = (
        f"{base}/PORDER?representation=PORDER.$query&count=1"
        "&where=(BPSNUM eq 'FR001') and (APPFLG eq 1)"
    )
    key = session.get(query, timeout=5).json()["$resources"][0]["POHNUM"]
    url = f"{base}/PORDER('{key}')?representation=PORDER.$edit"
    session.put(url, json={"APPFLG": 3}, timeout=5).raise_for_status()
    return str(key)


def _book_a_large_invoice_due_today(x3: RunningServer) -> str:
    """An open item of a supplier invoice, due today by X3's clock, big enough for a call."""
    sim: X3Simulator = x3.app  # type: ignore[assignment]
    session, base = _x3_session(x3)
    body = {
        "TYP": "PISU",
        "NUM": "PIGB0119999",
        "LIG": 1,
        "DUDLIG": 1,
        "BPR": "GB001",
        "BPRTYP": 2,
        "BPRPAY": "GB001",
        "CPY": "GB10",
        "FCY": "GB011",
        "CUR": "GBP",
        "PAM": "TRF",
        "DUDDAT": sim.now().date().isoformat(),
        "AMTCUR": 12480.0,
        "PAYCUR": 0.0,
        "FLGCLE": False,
    }
    url = f"{base}/GACCDUDATE?representation=GACCDUDATE.$create"
    session.post(url, json=body, timeout=5).raise_for_status()
    return "PIGB0119999"


def _post_a_payment(x3: RunningServer) -> str:
    session, base = _x3_session(x3)
    body = {
        "NUM": "PAYDEMO0001",
        "PAYTYP": "PAYSU",
        "PAM": "TRF",
        "BPR": "FR001",
        "BPRTYP": 2,
        "BPANAM": "Acme Fournitures SARL",
        "BAN": "BNP",
        "SNS": 1,
        "AMTCUR": 1500.0,
        "CUR": "EUR",
        "AMTBAN": 1500.0,
        "REF": "PIFR0110042",
        "DES": "Invoice INV-2024-778",
        "STA": 9,
        "CPY": "FR10",
        "FCY": "FR011",
    }
    url = f"{base}/PAYMENTH?representation=PAYMENTH.$create"
    session.post(url, json=body, timeout=5).raise_for_status()
    return "PAYDEMO0001"


@dataclass(frozen=True)
class SimOptions:
    """How `x3twilio sim` serves: ports 0 let the OS pick free ones (printed)."""

    host: str = "127.0.0.1"
    x3_port: int = 0
    twilio_port: int = 0
    sendgrid_port: int = 0
    latency_ms: float = 0.0
    public_url: str = "http://127.0.0.1:8080"  # where the shim will be (`serve`'s default)
    write_to: Path | None = None


def fresh_simulators(
    latency_ms: float = 0.0,
) -> tuple[X3Simulator, TwilioSimulator, SendGridSimulator]:
    """The three simulators with credentials of their own: two runs on one host never
    accept each other's requests, and a shim never takes the other run's callbacks."""
    x3sim = X3Simulator(password=secrets.token_urlsafe(18))
    x3sim.graphql.apps[x3sim.graphql.client_id].secret = secrets.token_hex(32)
    twsim = TwilioSimulator(
        account_sid="AC" + secrets.token_hex(16), auth_token=secrets.token_hex(16)
    )
    grid = SendGridSimulator(
        api_key=f"SG.{secrets.token_urlsafe(16)[:22]}.{secrets.token_urlsafe(33)[:43]}"
    )
    x3sim.latency_ms = twsim.latency_ms = grid.latency_ms = latency_ms
    twsim.auto_callbacks = True  # handsets report delivery a moment after each send
    return x3sim, twsim, grid


def run_simulators(options: SimOptions, echo: Echo, warn: Echo) -> None:
    """Serve X3, Twilio and SendGrid until interrupted; `warn` gets one line per status
    callback the shim did not take (never a traceback)."""
    x3sim, twsim, grid = fresh_simulators(options.latency_ms)
    twsim.on_callback_failure = lambda line: warn(f"x3twilio sim: {line}")
    host = options.host
    with (
        _listen(x3sim, host, options.x3_port, "--x3-port") as x3,
        _listen(twsim, host, options.twilio_port, "--twilio-port") as twilio,
        _listen(grid, host, options.sendgrid_port, "--sendgrid-port") as sendgrid,
    ):
        echo(f"X3 (api1) at {x3.url}  user {x3sim.user}  folder {x3sim.folder}")
        echo(f"Twilio at {twilio.url}  account {twsim.account_sid}  from {twsim.phone_number}")
        echo(f"SendGrid at {sendgrid.url}  from {DEFAULT_SENDER}")
        echo(f"Webhooks go to {options.public_url} (public_url)")
        if options.write_to:
            path = options.write_to
            state_dir = str(path.resolve().parent / "state")
            config = sim_config(x3, twilio, state_dir, options.public_url, sendgrid=sendgrid)
            try:
                write_config(path, config)
            except OSError as exc:
                raise SimCannotStart(
                    ExitCode.CANTCREAT, f"cannot write {path}: {exc.strerror}"
                ) from None
            echo(f"wrote {path} (this run's credentials: a new run writes new ones)")
        echo("Ctrl-C stops.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            echo("stopped")


class SimCannotStart(X3TwilioError):
    """`sim` cannot listen or write its configuration: one line, with the exit code."""

    def __init__(self, exit_code: ExitCode, message: str) -> None:
        self.exit_code = exit_code
        super().__init__(f"sim: {message}")


def _listen(app: Any, host: str, port: int, option: str) -> RunningServer:
    try:
        return serve(app, host, port)
    except OSError as exc:
        raise SimCannotStart(
            ExitCode.UNAVAILABLE,
            f"cannot listen on {host}:{port} ({exc.strerror}): leave {option} out and the "
            "OS picks a free port",
        ) from None
