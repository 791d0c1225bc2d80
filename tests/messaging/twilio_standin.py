"""A stand-in for Twilio's REST API, for tests only: a tiny HTTP server on 127.0.0.1 that speaks
the Messages resource's real wire format (POST /2010-04-01/Accounts/{AccountSid}/Messages.json,
form-encoded, HTTP Basic auth with AccountSid:AuthToken or API key SID:secret), answers with
Twilio's Message JSON or Twilio's error bodies, and records what it accepted for assertions.

Accounts are registered by the tests (`add_account`); scripted answers (`fail_next`) let a test
see retries and permanent failures. `status_callback` builds the signed callback Twilio would post
to a message's StatusCallback URL (tests post it to the gateway themselves)."""
import base64
import datetime
import email.utils
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from services.messaging import signatures

PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")


def error_body(code, message, status):
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class TwilioStandIn:
    def __init__(self, host="127.0.0.1", port=0):
        self._lock = threading.Lock()
        self._accounts = {}          # account_sid -> auth_token
        self._keys = {}              # api key sid -> (account_sid, secret)
        self._script = []            # (http status, body dict, headers) answered before anything
        self.received = []           # every accepted message: dict of what came and what we said
        self.requests = []           # every request (accepted or not): (path, user, form)
        self.next_sids = []          # sids to hand out before random ones (tests that need one)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                status, body, headers = standin._handle(self.path, self.headers, raw)
                self._reply(status, body, headers)

            def do_GET(self):
                self._reply(404, error_body(20404, "The requested resource was not found", 404), {})

            def _reply(self, status, body, headers):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = None

    # -- control ------------------------------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_account(self, account_sid, auth_token, api_keys=None):
        with self._lock:
            self._accounts[account_sid] = auth_token
            for key_sid, secret in (api_keys or {}).items():
                self._keys[key_sid] = (account_sid, secret)

    def fail_next(self, status, code=None, message=None, times=1, headers=None):
        """The next `times` requests (after authentication) get this answer instead."""
        body = error_body(code, message, status) if code else {"status": status,
                                                               "message": message or "error"}
        with self._lock:
            self._script.extend([(status, body, dict(headers or {}))] * times)

    def messages(self, account_sid=None, to=None):
        with self._lock:
            return [m for m in self.received
                    if (account_sid is None or m["account_sid"] == account_sid)
                    and (to is None or m["to"] == to)]

    # -- the API ------------------------------------------------------------------------------

    def _handle(self, path, headers, raw):
        form = {}
        for name, value in parse_qsl(raw, keep_blank_values=True):
            form.setdefault(name, value)
        match = PATH.match(urlsplit(path).path)
        user = self._authenticate(match.group(1) if match else None,
                                  headers.get("Authorization"))
        with self._lock:
            self.requests.append({"path": path, "user": user, "form": form})
        if user is None:
            return 401, error_body(20003, "Authenticate", 401), \
                {"WWW-Authenticate": 'Basic realm="Twilio API"'}
        if not match:
            return 404, error_body(20404, "The requested resource was not found", 404), {}
        with self._lock:
            scripted = self._script.pop(0) if self._script else None
        if scripted:
            return scripted
        if not form.get("To"):
            return 400, error_body(21604, "A 'To' phone number is required.", 400), {}
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 400, error_body(21603, "A 'From' phone number is required.", 400), {}
        if not form.get("Body") and not form.get("MediaUrl"):
            return 400, error_body(21602, "Message body is required.", 400), {}
        if not re.match(r"^\+[1-9]\d{6,14}$", form["To"]):
            return 400, error_body(21211, f"Invalid 'To' Phone Number: {form['To']}", 400), {}
        account = match.group(1)
        with self._lock:
            sid = self.next_sids.pop(0) if self.next_sids else "SM" + uuid.uuid4().hex
        now = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))
        service = form.get("MessagingServiceSid")
        message = {
            "account_sid": account, "api_version": "2010-04-01", "body": form["Body"],
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": form.get("From"), "messaging_service_sid": service,
            "num_media": "0", "num_segments": str(_segments(form["Body"])),
            "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued" if form.get("From") else "accepted",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": form["To"], "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        with self._lock:
            self.received.append({"account_sid": account, "user": user, "sid": sid,
                                  "to": form["To"], "from": form.get("From"),
                                  "messaging_service_sid": service, "body": form["Body"],
                                  "status_callback": form.get("StatusCallback"), "form": form})
        return 201, message, {}

    def _authenticate(self, account_sid, header):
        given = signatures.basic_auth(header)
        if given is None or account_sid is None:
            return None
        user, password = given
        with self._lock:
            if user == account_sid and self._accounts.get(account_sid) == password:
                return user
            key = self._keys.get(user)
        if key and key == (account_sid, password):
            return user
        return None

    # -- callbacks ----------------------------------------------------------------------------

    def status_callback(self, message, status, auth_token, error_code=None):
        """(form pairs, X-Twilio-Signature) of the status callback Twilio posts for `message`
        (one of `received`) to its StatusCallback URL, signed with the account's auth token."""
        pairs = [("SmsSid", message["sid"]), ("SmsStatus", status),
                 ("MessageStatus", status), ("To", message["to"]),
                 ("MessageSid", message["sid"]), ("AccountSid", message["account_sid"]),
                 ("From", message["from"] or ""), ("ApiVersion", "2010-04-01")]
        if message.get("messaging_service_sid"):
            pairs.append(("MessagingServiceSid", message["messaging_service_sid"]))
        if error_code:
            pairs.append(("ErrorCode", str(error_code)))
        return pairs, signatures.twilio_signature(auth_token, message["status_callback"], pairs)


def inbound_sms(account_sid, from_, to, body, auth_token, url):
    """(form pairs, X-Twilio-Signature) of Twilio's incoming-message webhook to `url`."""
    sid = "SM" + uuid.uuid4().hex
    pairs = [("ToCountry", "US"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("SmsSid", sid),
             ("SmsStatus", "received"), ("Body", body), ("To", to), ("NumSegments", "1"),
             ("MessageSid", sid), ("AccountSid", account_sid), ("From", from_),
             ("ApiVersion", "2010-04-01")]
    return pairs, signatures.twilio_signature(auth_token, url, pairs)


def _segments(body):
    gsm = all(ord(c) < 128 for c in body)
    single, multi = (160, 153) if gsm else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
