"""Sending SMS through Twilio's REST API (the Messages resource), with requests: explicit
timeouts, retries with backoff on 429/5xx and on connections that never reached Twilio, a clear
permanent failure (Twilio's error code and message) on any other 4xx.

The base URL is configuration (TWILIO_API_BASE, default https://api.twilio.com), so the same code
talks to Twilio or to a stand-in speaking its wire format."""
import logging
import time
from collections import namedtuple

import phonenumbers
import requests

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
TIMEOUT = (5, 30)           # (connect, read) seconds
ATTEMPTS = 3                # tries within one batch before the message goes back to the queue
BACKOFF = (0.5, 2.0)        # seconds between those tries
MAX_RETRY_AFTER = 10        # a 429's Retry-After is honoured up to this many seconds per try

# kind: sent | transient (safe to try again later: Twilio did not take it) | permanent |
# unknown (the request may have reached Twilio but no answer came: never re-sent on our own).
Outcome = namedtuple("Outcome", "kind sid provider_status error error_code")


def messages_url(base, account_sid):
    return f"{(base or DEFAULT_API_BASE).rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"


def status_callback_url(public_base_url):
    return f"{(public_base_url or '').rstrip('/')}/webhooks/twilio/sms/status"


def e164(value, region="US"):
    """The number in E.164, or None when it cannot be one."""
    try:
        number = phonenumbers.parse((value or "").strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def credentials(row, secrets):
    """(account_sid, basic-auth user, basic-auth password) for a Twilio settings row: the Account
    SID and Auth Token, or an API key SID and its secret in key/secret style; None if incomplete."""
    config = (row or {}).get("config") or {}
    account = config.get("account_sid")
    if config.get("credential_style") == "api_key":
        user, password = config.get("api_key_sid"), secrets.get("api_key_secret")
    else:
        user, password = account, secrets.get("auth_token")
    if not (account and user and password):
        return None
    return account, user, password


def form(to, body, from_=None, messaging_service_sid=None, status_callback=None):
    data = {"To": to, "Body": body or ""}
    if from_:
        data["From"] = from_
    if messaging_service_sid:
        data["MessagingServiceSid"] = messaging_service_sid
    if status_callback:
        data["StatusCallback"] = status_callback
    return data


class TwilioClient:
    """One HTTP session per batch (keep-alive), closed by `close()`."""

    def __init__(self, base, account_sid, username, password, timeout=TIMEOUT, sleep=time.sleep,
                 session=None):
        self.url = messages_url(base, account_sid)
        self.auth = (username, password)
        self.timeout = timeout
        self.sleep = sleep
        self.session = session or requests.Session()

    def send(self, data):
        """POST one message; an Outcome. Retries only what Twilio certainly did not take."""
        error, code = None, None
        for attempt in range(ATTEMPTS):
            wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
            try:
                resp = self.session.post(self.url, data=data, auth=self.auth,
                                         timeout=self.timeout)
            except (requests.ConnectionError, requests.exceptions.ConnectTimeout) as err:
                if _may_have_arrived(err):
                    return Outcome("unknown", None, None, _unknown_message(err), None)
                error, code = f"cannot reach Twilio: {type(err).__name__}", None
                log.warning("Twilio unreachable (attempt %s): %s", attempt + 1, error)
            except requests.Timeout as err:
                return Outcome("unknown", None, None, _unknown_message(err), None)
            except requests.RequestException as err:
                return Outcome("permanent", None, None, f"request to Twilio failed: {err}", None)
            else:
                if resp.status_code in (200, 201):
                    payload = _json(resp)
                    sid = payload.get("sid")
                    if not sid:
                        return Outcome("unknown", None, None,
                                       "Twilio answered without a message sid", None)
                    return Outcome("sent", sid, payload.get("status"), None, None)
                code, error = twilio_error(resp)
                if resp.status_code == 429 or resp.status_code >= 500:
                    log.warning("Twilio refused for now (attempt %s): %s", attempt + 1, error)
                    if resp.status_code == 429:
                        wait = max(wait, _retry_after(resp))
                else:
                    return Outcome("permanent", None, None, error, code)
            if attempt < ATTEMPTS - 1:
                self.sleep(wait)
        return Outcome("transient", None, None, error, code)

    def close(self):
        self.session.close()


def twilio_error(resp):
    """(code, "Twilio error <code>: <message> (HTTP <status>)") from Twilio's JSON error body."""
    payload = _json(resp)
    code = payload.get("code")
    message = payload.get("message") or resp.reason or "error"
    code = str(code) if code is not None else None
    prefix = f"Twilio error {code}" if code else "Twilio error"
    return code, f"{prefix}: {message} (HTTP {resp.status_code})"


def _json(resp):
    try:
        payload = resp.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _retry_after(resp):
    try:
        return min(float(resp.headers.get("Retry-After") or 0), MAX_RETRY_AFTER)
    except ValueError:
        return 0


def _may_have_arrived(err):
    """A connection that was refused or timed out while connecting never carried the request; one
    dropped after sending may have (Twilio could have accepted the message)."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return False
    text = repr(err)
    return any(s in text for s in ("RemoteDisconnected", "Connection aborted",
                                   "ConnectionResetError", "BrokenPipe"))


def _unknown_message(err):
    return ("no answer from Twilio after the request was sent "
            f"({type(err).__name__}); the message may have gone out, so it is not sent again "
            "automatically: check the Twilio console")


def send_batch(client, items, on_result=None):
    """Send (form data, key) items; each result is (key, Outcome). `on_result` is called as each
    finishes, so the caller can record the sid before the next message goes out."""
    results = []
    try:
        for data, key in items:
            outcome = client.send(data)
            results.append((key, outcome))
            if on_result:
                on_result(key, outcome)
    finally:
        client.close()
    return results
