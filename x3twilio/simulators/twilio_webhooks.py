"""Twilio's side of the webhooks, as data: the parameters it posts and how it retries.

Incoming messages and calls with their recording and transcription callbacks, message
status callbacks, and the connection overrides of a webhook URL's #fragment.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import requests

from x3twilio.segments import segment_info
from x3twilio.simulators.twilio_resources import API_BASE, API_VERSION, geo, new_sid, rfc2822

USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True)
class Overrides:
    """Connection overrides from a webhook URL's #fragment (TWILIO.md §7.8)."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retries: int = 1
    policy: frozenset[str] = frozenset({"ct"})

    @classmethod
    def parse(cls, fragment: str) -> Overrides:
        options = dict(parse_qsl(fragment))
        try:
            return cls(
                connect_timeout=int(options.get("ct", 5000)) / 1000,
                read_timeout=int(options.get("rt", 15000)) / 1000,
                retries=min(int(options.get("rc", 1)), 5),
                policy=frozenset(options.get("rp", "ct").split(",")),
            )
        except ValueError:
            return cls()

    def retry_after_error(self, error: requests.RequestException) -> bool:
        if "all" in self.policy:
            return True
        if isinstance(error, requests.ConnectTimeout | requests.ConnectionError):
            return "ct" in self.policy
        return "rt" in self.policy and isinstance(error, requests.Timeout)

    def retry_after_status(self, status: int) -> bool:
        family = f"{status // 100}xx"
        return status >= 400 and ("all" in self.policy or family in self.policy)


@dataclass
class PendingCallback:
    """A status change still to be reported to a message's StatusCallback."""

    message_sid: str
    status: str
    url: str | None


def find_record(response: requests.Response) -> ET.Element | None:
    """The <Record> verb of a TwiML answer, if the answer is TwiML and has one."""
    if not response.ok:
        return None
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return None
    return next(root.iter("Record"), None)


def wants_transcription(record: ET.Element) -> bool:
    # A transcribeCallback implies transcription, as Twilio's <Record> docs say.
    return record.get("transcribe", "").lower() == "true" or "transcribeCallback" in record.attrib


@dataclass
class IncomingCall:
    """The identifiers one simulated incoming call shares across its webhooks."""

    account: str
    from_: str
    to: str
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    recording_sid: str = field(default_factory=lambda: new_sid("RE"))
    transcription_sid: str = field(default_factory=lambda: new_sid("TR"))

    @property
    def recording_url(self) -> str:
        return f"{API_BASE}/{API_VERSION}/Accounts/{self.account}/Recordings/{self.recording_sid}"

    def voice_params(self) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": "ringing",
            "Called": self.to,
            **geo("Called", self.to),
            "Caller": self.from_,
            **geo("Caller", self.from_),
            "Direction": "inbound",
            "From": self.from_,
            **geo("From", self.from_),
            "To": self.to,
            **geo("To", self.to),
        }

    def action_params(self) -> dict[str, str]:
        return self.voice_params() | {
            "CallStatus": "completed",
            "Digits": "hangup",
            "RecordingDuration": "7",
            "RecordingSid": self.recording_sid,
            "RecordingUrl": self.recording_url,
        }

    def recording_params(self, started: datetime) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "CallSid": self.call_sid,
            "ErrorCode": "0",
            "RecordingChannels": "1",
            "RecordingDuration": "7",
            "RecordingSid": self.recording_sid,
            "RecordingSource": "RecordVerb",
            "RecordingStartTime": rfc2822(started),
            "RecordingStatus": "completed",
            "RecordingUrl": self.recording_url,
        }

    def transcription_params(self, text: str) -> dict[str, str]:
        return {
            "AccountSid": self.account,
            "ApiVersion": API_VERSION,
            "CallSid": self.call_sid,
            "CallStatus": "completed",
            "Called": self.to,
            "Caller": self.from_,
            "Direction": "inbound",
            "ForwardedFrom": "",
            "From": self.from_,
            "RecordingSid": self.recording_sid,
            "RecordingUrl": self.recording_url,
            "To": self.to,
            "TranscriptionSid": self.transcription_sid,
            "TranscriptionStatus": "completed",
            "TranscriptionText": text,
            "TranscriptionType": "fast",
            "TranscriptionUrl": f"{self.recording_url}/Transcriptions/{self.transcription_sid}",
        }


def incoming_sms_params(account: str, sid: str, from_: str, to: str, body: str) -> dict[str, str]:
    """The parameters of an incoming-message webhook, as captured from Twilio."""
    return {
        **geo("To", to),
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        **geo("From", from_),
        "To": to,
        "NumSegments": str(segment_info(body).segments),
        "MessageSid": sid,
        "AccountSid": account,
        "From": from_,
        "ApiVersion": API_VERSION,
    }


def status_params(message: Mapping[str, Any], status: str, now: datetime) -> dict[str, str]:
    """A message status callback body (TWILIO.md §7.5)."""
    params = {
        "MessageStatus": status,
        "ApiVersion": API_VERSION,
        "SmsSid": message["sid"],
        "SmsStatus": status,
        "To": message["to"],
        "From": message["from"] or "",
        "MessageSid": message["sid"],
        "AccountSid": message["account_sid"],
    }
    if message["messaging_service_sid"]:
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    if status == "delivered":
        params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
    if status in ("undelivered", "failed") and message["error_code"]:
        params["ErrorCode"] = str(message["error_code"])
    return params
