"""Local SMTP sink for development and tests: accepts real SMTP and keeps each message as a file;
a small HTTP API lists them (GET /messages[?to=address], GET /messages/<id> with the raw
message, DELETE /messages)."""
import email
import email.policy
import json
import os
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.common.config import ROOT, load_config


class Store:
    """Each message as <id>.eml (the bytes received) and <id>.json (envelope and parsed summary,
    written once on arrival so listing thousands of messages stays fast)."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.lock = threading.Lock()

    def add(self, mail_from, rcpt_tos, data):
        ident = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        meta = dict(summarize(data), id=ident, mail_from=mail_from, rcpt_to=list(rcpt_tos))
        with self.lock:
            with open(os.path.join(self.path, ident + ".eml"), "wb") as f:
                f.write(data)
            tmp = os.path.join(self.path, ident + ".json.tmp")
            with open(tmp, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, os.path.join(self.path, ident + ".json"))
        return ident

    def list(self, to=None):
        """Summaries in arrival order; `to` keeps those with that envelope recipient."""
        out = []
        for name in sorted(os.listdir(self.path)):
            if name.endswith(".json"):
                with open(os.path.join(self.path, name)) as f:
                    meta = json.load(f)
                if to is None or to.lower() in (r.lower() for r in meta["rcpt_to"]):
                    out.append(meta)
        return out

    def get(self, ident):
        with open(os.path.join(self.path, ident + ".json")) as f:
            meta = json.load(f)
        with open(os.path.join(self.path, ident + ".eml"), "rb") as f:
            meta["raw"] = f.read().decode("utf-8", "replace")
        return meta

    def clear(self):
        with self.lock:
            for name in os.listdir(self.path):
                os.remove(os.path.join(self.path, name))


def summarize(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body else ""
    except Exception:  # a malformed body is still kept; the raw bytes are on disk
        text = ""
    return {
        "subject": str(msg.get("Subject", "")), "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")), "message_id": str(msg.get("Message-ID", "")),
        "reply_to": str(msg.get("Reply-To", "")), "text": text,
    }


class Handler:
    def __init__(self, store):
        self.store = store

    async def handle_DATA(self, server, session, envelope):
        self.store.add(envelope.mail_from, envelope.rcpt_tos, envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def accept_any_login(server, session, envelope, mechanism, auth_data):
    """The sink is a development stand-in for a real relay: any credentials are accepted, so a
    provider configured with a username and password works against it unchanged."""
    return AuthResult(success=True)


def http_handler(store):
    class H(BaseHTTPRequestHandler):
        def _send(self, code, data):
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if parts == ["messages"]:
                to = urllib.parse.parse_qs(url.query).get("to", [None])[0]
                return self._send(200, store.list(to))
            if len(parts) == 2 and parts[0] == "messages":
                try:
                    return self._send(200, store.get(os.path.basename(parts[1])))
                except FileNotFoundError:
                    return self._send(404, {"error": "not_found"})
            self._send(404, {"error": "not_found"})

        def do_DELETE(self):
            if self.path.strip("/") == "messages":
                store.clear()
                return self._send(204, {})
            self._send(404, {"error": "not_found"})

        def log_message(self, *args):
            pass

    return H


def main():
    config = load_config()
    path = config["SMTP_SINK_DIR"]
    if not os.path.isabs(path):
        path = os.path.join(ROOT, path)
    store = Store(path)
    host = config["SMTP_SINK_HOST"]
    controller = Controller(Handler(store), hostname=host, port=int(config["SMTP_SINK_PORT"]),
                            authenticator=accept_any_login, auth_require_tls=False)
    controller.start()
    http = ThreadingHTTPServer((host, int(config["SMTP_SINK_HTTP_PORT"])), http_handler(store))
    print(f"SMTP sink on {host}:{config['SMTP_SINK_PORT']}, messages at "
          f"http://{host}:{config['SMTP_SINK_HTTP_PORT']}/messages, stored in {path}", flush=True)
    try:
        http.serve_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
