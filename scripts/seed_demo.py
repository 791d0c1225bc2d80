"""Seeds the demo organization "Larkspur Labs" over the HTTP API, idempotently: a second run
signs in instead of signing up, re-applies the email settings (the sink's port may have changed),
re-imports the same CSV (the importer dedupes, so nothing doubles) and reuses the tag and segment.

    GATEWAY_URL=http://127.0.0.1:8000 python -m scripts.seed_demo
"""
import json
import os
import sys

import requests

from services.common.config import ROOT, load_config

DEMO_ORG = "Larkspur Labs"
DEMO_EMAIL = os.environ.get("DEMO_EMAIL", "demo@example.org")
# A local demo login, printed for the person who ran `make run`; never used outside this machine.
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "larkspur-demo-2026")
CSV = os.path.join(ROOT, "tests", "fixtures", "contacts",
                   "mailchimp_subscribed_members_export_7c2e41a0b9.csv")
# The Mailchimp export's columns (see ../shared/cases/README.md for the mapping used there).
MAPPING = {
    "email": "Email Address", "first_name": "First Name", "last_name": "Last Name",
    "phone": "Phone Number", "country": "CC", "timezone": "TIMEZONE", "tags": "TAGS",
    "custom": "rest",
}
TAG = "Larkspur newsletter"
SEGMENT = "Newsletter readers"


class ApiError(Exception):
    def __init__(self, method, path, resp):
        try:
            body = resp.json()
        except ValueError:
            body = resp.text[:300]
        self.status, self.body = resp.status_code, body
        super().__init__(f"{method} {path} -> {resp.status_code}: {json.dumps(body)[:600]}")


class Client:
    """The gateway over HTTP, carrying the bearer token and organization once signed in."""

    def __init__(self, base=None):
        self.base = (base or gateway_url()).rstrip("/")
        self.token = self.org_id = None
        self.session = requests.Session()

    def call(self, method, path, expect=(200, 201, 204), **kw):
        headers = kw.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.org_id:
            headers["X-Organization-Id"] = self.org_id
        url = path if path.startswith("http") else f"{self.base}/api/v1{path}"
        resp = self.session.request(method, url, headers=headers, timeout=60, **kw)
        if resp.status_code not in expect:
            raise ApiError(method, path, resp)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def signed_in(self, token, org_id):
        self.token, self.org_id = token, org_id
        return self


def run_env():
    """What `make run` wrote about the stack it started (ports it chose), if it is up."""
    found = {}
    path = os.path.join(ROOT, "var", "run.env")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key:
                    found[key] = value
    return found


def gateway_url():
    return (os.environ.get("GATEWAY_URL") or run_env().get("GATEWAY_URL")
            or f"http://127.0.0.1:{load_config()['GATEWAY_PORT']}")


def smtp_sink_port():
    return (os.environ.get("SMTP_SINK_PORT") or run_env().get("SMTP_SINK_PORT")
            or str(load_config()["SMTP_SINK_PORT"]))


def items(answer):
    """A list answer, whether bare or wrapped ({"contacts": [...], "next_cursor": ...})."""
    if isinstance(answer, list):
        return answer
    for key, value in (answer or {}).items():
        if isinstance(value, list) and key not in ("errors", "warnings"):
            return value
    return []


def sign_in_or_up(api, org_name, email, password, owner_name, description):
    """Log in when the account exists (a second run), else sign up. -> (token, org_id, created)."""
    try:
        answer = api.post("/auth/login", json={"email": email, "password": password})
    except ApiError as err:
        if err.status not in (400, 401, 404):
            raise
    else:
        org_id = answer.get("active_org_id")
        for org in answer.get("organizations") or []:
            if org.get("name") == org_name:
                org_id = org.get("id") or org.get("org_id")
        return answer["token"], org_id, False
    answer = api.post("/signup", json={
        "organization": {"name": org_name, "description": description},
        "owner": {"name": owner_name, "email": email, "password": password}})
    return answer["token"], answer["organization"]["id"], True


def configure_email(api, sender_name, sender_email, smtp_host, smtp_port):
    api.put("/settings/email/sender", json={"name": sender_name, "email": sender_email})
    api.put("/settings/email/provider", json={
        "kind": "smtp", "host": smtp_host, "port": int(smtp_port), "username": None, "password": None,
        "tls_mode": "none"})
    return api.get("/settings/email")


def import_csv(api, path, mapping):
    with open(path, "rb") as f:
        return api.post("/contacts/imports", files={"file": (os.path.basename(path), f, "text/csv")},
                        data={"mapping": json.dumps(mapping)})


def ensure_tag(api, title):
    for tag in items(api.get("/tags", params={"kind": "contact"})):
        if tag.get("title") == title:
            return tag
    return api.post("/tags", json={"title": title, "kind": "contact", "colour": "#7b5ea7"})


def tag_contacts(api, tag_id, contact_ids):
    return api.post(f"/tags/{tag_id}/contacts", json={"contact_ids": contact_ids})


def all_contacts(api):
    contacts, cursor = [], None
    while True:
        params = {"limit": 500}
        if cursor:
            params["after"] = cursor
        page = api.get("/contacts", params=params)
        contacts += items(page)
        cursor = (page or {}).get("next_cursor") if isinstance(page, dict) else None
        if not cursor:
            return contacts


def ensure_segment(api, name, tag_id):
    for segment in items(api.get("/segments")):
        if segment.get("name") == name:
            return segment
    return api.post("/segments", json={
        "name": name, "description": "Contacts carrying the tag",
        "rules": {"match": "all", "rules": [{"type": "has_tag", "tag_id": tag_id}]}})


def main():
    api = Client()
    smtp_port = smtp_sink_port()
    token, org_id, created = sign_in_or_up(
        api, DEMO_ORG, DEMO_EMAIL, DEMO_PASSWORD, "Jordan Ellis",
        "Demo organization seeded by make run")
    api.signed_in(token, org_id)
    print(f"  organization {DEMO_ORG}: {'created' if created else 'already there, signed in'}")
    configure_email(api, "Jordan Ellis", "jordan.ellis@example.org", "127.0.0.1", smtp_port)
    print(f"  email: sender Jordan Ellis <jordan.ellis@example.org>, SMTP 127.0.0.1:{smtp_port} "
          "(the local sink, no TLS)")
    result = import_csv(api, CSV, MAPPING)
    print(f"  contacts imported from {os.path.basename(CSV)}: {summary(result)}")
    tag = ensure_tag(api, TAG)
    contacts = all_contacts(api)
    tag_contacts(api, tag["id"], [c["id"] for c in contacts])
    segment = ensure_segment(api, SEGMENT, tag["id"])
    print(f"  tag '{TAG}' on {len(contacts)} contacts; segment '{SEGMENT}' ({segment['id']})")
    print(f"  demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")


def summary(result):
    """The import's outcome in words: "30 created, 0 updated, ... (records 30)"."""
    result = result or {}
    counts = result.get("counts") if isinstance(result.get("counts"), dict) else result
    parts = []
    for key in ("created", "updated", "unchanged", "merged", "rejected"):
        value = counts.get(key)
        if isinstance(value, list):
            value = len(value)
        if value is not None:
            parts.append(f"{value} {key}")
    warnings = result.get("warnings")
    if isinstance(warnings, list) and warnings:
        parts.append(f"{len(warnings)} warning(s)")
    if result.get("status") and result.get("status") not in ("done", "completed", "finished"):
        parts.append(f"status {result['status']}")
    return ", ".join(parts) or json.dumps(result)[:200]


if __name__ == "__main__":
    try:
        main()
    except (ApiError, requests.RequestException) as err:
        sys.exit(f"seeding failed: {err}")
