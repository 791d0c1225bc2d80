"""Building real organizations, contacts and email setup for campaigns tests, through the product's
own API (and the contacts service's RPC where its HTTP routes are not the point of the test)."""
import time
import uuid

import requests

PASSWORD = "correct horse battery staple 42"


def wait_for(check, timeout=45, interval=0.25, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def signup(api, name="Larkspur Events", description="We plan charity galas for 2,000 guests."):
    tag = uuid.uuid4().hex[:8]
    owner_email = f"owner-{tag}@larkspur.example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": f"{name} {tag}", "description": description},
        "owner": {"name": "Jordan Reyes", "email": owner_email, "password": PASSWORD}})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    client = api.as_(body["token"], body["organization"]["id"])
    client.owner_email = owner_email
    client.org_id = body["organization"]["id"]
    client.org_name = body["organization"]["name"]
    client.user_id = (body.get("user") or {}).get("id")
    return client


def ctx_of(client):
    return {"org_id": client.org_id, "user_id": client.user_id, "role": "owner"}


def set_up_email(client, stack):
    resp = client.put("/api/v1/settings/email/sender",
                      json={"name": "Jordan at Larkspur", "email": "jordan@larkspur.example.org"})
    assert resp.status_code == 200, resp.text
    resp = client.put("/api/v1/settings/email/provider", json={
        "kind": "smtp", "host": "127.0.0.1", "port": stack.smtp_port, "username": None,
        "password": None, "tls_mode": "none"})
    assert resp.status_code == 200, resp.text


def starter(client):
    """The organization's starter campaign, once organization_created has been handled."""
    def found():
        items = client.get("/api/v1/campaigns").json().get("items", [])
        return next((c for c in items if c["is_starter"]), None)
    return wait_for(found, what="the starter campaign")


def segment_with_contacts(stack, client, contacts):
    """A tag, contacts carrying it, a segment of that tag; returns (segment_id, {name: id})."""
    ctx = ctx_of(client)
    with stack.rpc() as rpc:
        tag = rpc.contacts.create_tag(ctx, {"title": f"gala-{uuid.uuid4().hex[:6]}"})
        ids = {}
        for c in contacts:
            data = {k: v for k, v in c.items() if k != "unsubscribed_email"}
            data["tags"] = [tag["title"]]
            if c.get("unsubscribed_email"):
                data["unsubscribed"] = {"email": True}
            ids[c["name"]] = rpc.contacts.create_contact(ctx, data)["id"]
        segment = rpc.contacts.create_segment(ctx, {
            "name": "Gala prospects", "rules": {"match": "all", "rules": [
                {"type": "has_tag", "tag_id": tag["id"]}]}})
    return segment["id"], ids


def mail_to(stack, address):
    messages = requests.get(f"{stack.mail_url}/messages", params={"to": address}, timeout=60).json()
    if isinstance(messages, dict):
        messages = messages.get("messages", messages.get("items", []))
    return [m for m in messages if address.lower() in [r.lower() for r in m.get("rcpt_to", [])]]


def run_detail(client, run_id):
    resp = client.get(f"/api/v1/runs/{run_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def drafts_of(client, run_id, **filters):
    params = dict(run_id=run_id, limit=500, **filters)
    resp = client.get("/api/v1/drafts", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def teammate(api, owner, role, tag=None):
    """A teammate of the owner's organization with the given role, signed in."""
    email = f"{role}-{tag or uuid.uuid4().hex[:8]}@larkspur.example.org"
    password = "another horse battery staple 7"
    resp = owner.post("/api/v1/team", json={"email": email, "password": password,
                                            "name": f"Sam {role.title()}", "role": role})
    assert resp.status_code in (200, 201), resp.text
    login = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return api.as_(login.json()["token"], owner.org_id)


class ModelEndpoint:
    """A stand-in chat-completions endpoint (a third party's, or an attacker's): records every
    request's Authorization header and answers with a fixed JSON message; with `refuse`, HTTP 400
    to every request (not retried: a writer pointed here fails at once)."""

    def __init__(self, refuse=False):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.requests.append({"path": self.path,
                                          "auth": self.headers.get("Authorization")})
                if refuse:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                content = json.dumps({"subject": "Hello", "preheader": "", "body": "Hi there"})
                data = json.dumps({"choices": [{"message": {"role": "assistant",
                                                            "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
