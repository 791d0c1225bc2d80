"""Local SMTP sink for development and tests: accepts real SMTP and keeps each message as a file;
a small HTTP API lists them (GET /messages, GET /messages/<id>, DELETE /messages)."""
import email
import email.policy
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from services.common.config import ROOT, load_config


class Store:
    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.lock = threading.Lock()

    def add(self, mail_from, rcpt_tos, data):
        ident = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        with self.lock:
            with open(os.path.join(self.path, ident + ".eml"), "wb") as f:
                f.write(data)
            with open(os.path.join(self.path, ident + ".json"), "w") as f:
                json.dump({"id": ident, "mail_from": mail_from, "rcpt_to": rcpt_tos}, f)
        return ident

    def list(self):
        out = []
        for name in sorted(os.listdir(self.path)):
            if name.endswith(".json"):
                out.append(self.get(name[:-5]))
        return out

    def get(self, ident):
        with open(os.path.join(self.path, ident + ".json")) as f:
            meta = json.load(f)
        with open(os.path.join(self.path, ident + ".eml"), "rb") as f:
            raw = f.read()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        meta.update({
            "subject": str(msg.get("Subject", "")), "from": str(msg.get("From", "")),
            "to": str(msg.get("To", "")), "message_id": str(msg.get("Message-ID", "")),
            "text": body.get_content() if body else "", "raw": raw.decode("utf-8", "replace"),
        })
        return meta

    def clear(self):
        with self.lock:
            for name in os.listdir(self.path):
                os.remove(os.path.join(self.path, name))


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
            parts = self.path.strip("/").split("/")
            if parts == ["messages"]:
                return self._send(200, store.list())
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
