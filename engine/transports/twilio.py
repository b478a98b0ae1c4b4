"""Twilio transport: the official SDK's Messages API, over one pooled HTTP session.

`TWILIO_API_BASE` replaces the SDK's `api` domain base URL (https://api.twilio.com),
which the SDK reads on every request: that is how tests and benchmarks point it at
a local stub, and how a regional endpoint would be used.

WhatsApp goes through the same Messages API: `whatsapp:`-prefixed addresses, from the
WhatsApp sender (`whatsapp_from`) or the Messaging Service, and always as a Content
Template (`ContentSid` + `ContentVariables`): a business may open a conversation only with
a template WhatsApp has approved (a free-form body fails with 63016).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from engine.transports import (
    AccountError,
    AmbiguousError,
    OutgoingSms,
    OutgoingWhatsApp,
    PermanentError,
    TransientError,
)
from engine.transports.http import RequestNotSent, leaving, note_writes

# Twilio error codes: the recipient has replied STOP (or its carrier says so).
OPT_OUT_CODES = {21610}
RATE_LIMIT_CODES = {20429, 14107}
# Authentication failed, account suspended: about us, not about the recipient.
ACCOUNT_CODES = {20003, 20005, 30002}
WHATSAPP_PREFIX = "whatsapp:"
# WhatsApp refused a message outside its 24-hour window that was no approved template.
OUTSIDE_WHATSAPP_WINDOW = 63016


class TwilioTransport:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        whatsapp_from: str | None = None,
        api_base: str = "https://api.twilio.com",
        status_callback: str | None = None,
        timeout: float = 15.0,
        ca_bundle: str | None = None,
    ) -> None:
        if not (messaging_service_sid or from_number or whatsapp_from):
            raise ValueError("a Twilio transport needs a Messaging Service SID, a From number or a WhatsApp sender")
        # pool_connections keeps one requests.Session, and so its TCP/TLS connections, for every call.
        http = TwilioHttpClient(pool_connections=True, timeout=timeout)
        self._client = Client(account_sid, auth_token, http_client=http)
        self._client.api.base_url = api_base.rstrip("/")
        if http.session is not None:
            for adapter in http.session.adapters.values():
                note_writes(adapter.poolmanager)
            _settle_environment(http.session, self._client.api.base_url, ca_bundle)
        self._sender = (
            {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else {"from_": from_number}
            if from_number
            else None
        )
        # WhatsApp's own sender number, or the Messaging Service (which then holds a WhatsApp sender).
        self._whatsapp_sender = (
            {"from_": WHATSAPP_PREFIX + whatsapp_from.removeprefix(WHATSAPP_PREFIX)}
            if whatsapp_from
            else {"messaging_service_sid": messaging_service_sid}
            if messaging_service_sid
            else None
        )
        self._status_callback = status_callback

    def send_sms(self, sms: OutgoingSms) -> str:
        if self._sender is None:
            raise AccountError("no SMS sender is configured (TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID)")
        params: dict[str, str] = {"to": sms.to, "body": sms.text, **self._sender}
        return self._create(params, sms.reference)

    def send_whatsapp(self, message: OutgoingWhatsApp) -> str:
        if self._whatsapp_sender is None:
            raise AccountError("no WhatsApp sender is configured (TWILIO_WHATSAPP_FROM or a Messaging Service)")
        params: dict[str, str] = {
            "to": WHATSAPP_PREFIX + message.to,
            "content_sid": message.content_sid,
            "content_variables": json.dumps(dict(message.variables), ensure_ascii=False),
            **self._whatsapp_sender,
        }
        return self._create(params, message.reference)

    def _create(self, params: dict[str, Any], reference: str) -> str:
        if self._status_callback:
            # Our reference rides in the callback URL (which Twilio signs): a callback can find
            # its message even before we have written down the SID Twilio answered with.
            params["status_callback"] = self._status_callback + (f"?m={quote(reference)}" if reference else "")
        try:
            with leaving():
                message = self._client.messages.create(**params)
        except TwilioRestException as error:
            raise _rest_failure(error) from None
        except RequestNotSent as error:
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                raise AccountError(f"Twilio's TLS certificate is not trusted here: {error}") from None
            # Refused, or reset before our request was written: Twilio never had it.
            raise TransientError(f"Twilio unreachable: {error}") from None
        except requests.exceptions.ConnectTimeout as error:
            raise TransientError(f"Twilio unreachable: {error}") from None
        except requests.exceptions.SSLError as error:
            # A certificate we do not trust fails the handshake (nothing sent, and nothing will be
            # until someone fixes it); any other TLS failure may come after the request left.
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                raise AccountError(f"Twilio's TLS certificate is not trusted here: {error}") from None
            raise AmbiguousError(f"Twilio connection lost: {error}") from None
        except requests.exceptions.ConnectionError as error:
            # Never connected (nothing sent), or dropped after the request may have left.
            if _never_connected(error):
                raise TransientError(f"Twilio unreachable: {error}") from None
            raise AmbiguousError(f"Twilio connection lost: {error}") from None
        except requests.exceptions.ReadTimeout as error:
            raise AmbiguousError(f"Twilio did not answer in time: {error}") from None
        return str(message.sid)


def _settle_environment(session: requests.Session, base_url: str, ca_bundle: str | None) -> None:
    """What requests would read from the environment on every request (proxies, NO_PROXY,
    REQUESTS_CA_BUNDLE), read once here: looking it up again for each text cost a tenth of
    its CPU, and a process's environment does not change under it. A private CA (tests, an
    internal gateway) given as `ca_bundle` wins over REQUESTS_CA_BUNDLE."""
    found = session.merge_environment_settings(base_url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(found.get("proxies") or {})
    session.verify = ca_bundle or found.get("verify", True)


def _rest_failure(error: TwilioRestException) -> TransientError | PermanentError:
    code = error.code
    text = f"Twilio {error.status} ({code}): {error.msg}"
    if error.status == 429 or code in RATE_LIMIT_CODES:
        return TransientError(text, code=str(code or 429))
    if error.status >= 500:
        return TransientError(text, code=str(code or error.status))
    if error.status in (401, 403) or code in ACCOUNT_CODES:
        return AccountError(text, code=str(code or error.status))
    return PermanentError(text, code=str(code or error.status), opted_out=code in OPT_OUT_CODES)


def _never_connected(error: requests.exceptions.ConnectionError) -> bool:
    """True when the TCP connection was never made, so the request cannot have left."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))
