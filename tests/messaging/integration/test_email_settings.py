"""Email setup over HTTP: sender identity, SMTP provider (password encrypted, never shown),
inbound webhook URL, and what each channel still lacks."""
import uuid

import pytest

from tests.messaging.helpers import messaging_tx


@pytest.fixture
def owner(api):
    email = f"owner-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Larkspur Labs", "description": "Outreach for studios."},
        "owner": {"name": "Jordan Ellis", "email": email, "password": "correct-horse-battery"},
    })
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return {"api": api.as_(body["token"]), "org_id": body["organization"]["id"]}


SMTP = {"kind": "smtp", "host": "smtp.example.org", "port": 587, "username": "jordan",
        "password": "s3cret-smtp-pass", "tls_mode": "starttls"}


def test_a_new_organization_lacks_sender_and_provider_and_sms_is_not_configurable(owner):
    resp = owner["api"].get("/api/v1/settings/channels")
    assert resp.status_code == 200
    assert resp.json() == [
        {"channel": "email", "ready": False, "missing": ["sender_identity", "email_provider"]},
        {"channel": "sms", "ready": False, "missing": ["sms_provider", "phone_number"]},
        {"channel": "phone", "ready": False, "missing": ["sms_provider", "phone_number"]},
    ]


def test_sender_and_provider_make_email_ready_and_the_password_never_comes_back(owner, stack):
    api = owner["api"]
    resp = api.put("/api/v1/settings/email/sender",
                   json={"name": "Jordan Ellis", "email": "Jordan.Ellis@Example.ORG"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["sender"]["email"] == "Jordan.Ellis@example.org"
    resp = api.put("/api/v1/settings/email/provider", json=SMTP)
    assert resp.status_code == 200, resp.text
    assert "s3cret-smtp-pass" not in resp.text

    settings = api.get("/api/v1/settings/email").json()
    assert settings["provider"] == {"kind": "smtp", "host": "smtp.example.org", "port": 587,
                                    "username": "jordan", "tls_mode": "starttls",
                                    "password_set": True}
    assert settings["readiness"] == {"channel": "email", "ready": True, "missing": []}
    url = settings["inbound"]["webhook_url"]
    assert url.startswith("https://outreach.example.org/webhooks/email/inbound/")
    with messaging_tx(stack) as tx:
        stored = tx.one("SELECT smtp_password_enc FROM email_settings WHERE org_id = %s",
                        (owner["org_id"],))["smtp_password_enc"]
    assert stored and "s3cret" not in stored


def test_updating_the_provider_without_a_password_keeps_the_stored_one(owner, stack):
    api = owner["api"]
    api.put("/api/v1/settings/email/provider", json=SMTP)
    resp = api.put("/api/v1/settings/email/provider",
                   json=dict(SMTP, host="smtp2.example.org", password=None))
    assert resp.status_code == 200, resp.text
    assert resp.json()["provider"]["password_set"] is True
    assert resp.json()["provider"]["host"] == "smtp2.example.org"


@pytest.mark.parametrize("body, field", [
    ({"name": "Jordan", "email": "not-an-address"}, "email"),
    ({"name": "", "email": "jordan@example.org"}, "name"),
    ({"email": "jordan@example.org"}, "name"),
    ({"name": "Jordan", "email": "jordan@example.org", "reply_domain": "bad domain"}, "reply_domain"),
])
def test_a_bad_sender_identity_is_refused_with_the_field_named(owner, body, field):
    resp = owner["api"].put("/api/v1/settings/email/sender", json=body)
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["errors"]


@pytest.mark.parametrize("change, field", [
    ({"port": 70000}, "port"), ({"port": "25"}, "port"), ({"tls_mode": "ssl"}, "tls_mode"),
    ({"kind": "sendmail"}, "kind"), ({"host": "bad host!"}, "host"),
])
def test_a_bad_provider_is_refused_with_the_field_named(owner, change, field):
    resp = owner["api"].put("/api/v1/settings/email/provider", json=dict(SMTP, **change))
    assert resp.status_code == 400, resp.text
    assert field in resp.json()["errors"]


def test_settings_need_sign_in(api):
    assert api.get("/api/v1/settings/email").status_code == 401


def test_the_inbound_url_accepts_mail_for_its_own_organization_only(owner, api):
    url = owner["api"].get("/api/v1/settings/email").json()["inbound"]["webhook_url"]
    path = url.split("outreach.example.org", 1)[1]
    raw = (b"From: Ana Souza <ana.souza@example.com>\r\nTo: jordan@example.org\r\n"
           b"Subject: Hello\r\nMessage-ID: <hello-" + uuid.uuid4().hex.encode() +
           b"@example.com>\r\n\r\nHello there.\r\n")
    resp = api.post(path, data=raw, headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 200, resp.text
    comm_id = resp.json()["communication_id"]
    feed = owner["api"].get("/api/v1/communications", params={"direction": "inbound"}).json()
    assert [c["id"] for c in feed["items"]] == [comm_id]
    assert feed["items"][0]["stripped_text"] == "Hello there."


def test_a_viewer_reads_settings_without_the_inbound_secret_and_cannot_change_them(owner, api):
    email = f"viewer-{uuid.uuid4().hex[:10]}@example.org"
    resp = owner["api"].post("/api/v1/team", json={
        "email": email, "password": "correct-horse-battery", "name": "Vera Viewer",
        "role": "viewer"})
    assert resp.status_code == 201, resp.text
    login = api.post("/api/v1/auth/login", json={"email": email,
                                                  "password": "correct-horse-battery"})
    viewer = api.as_(login.json()["token"], owner["org_id"])
    settings = viewer.get("/api/v1/settings/email")
    assert settings.status_code == 200
    assert settings.json()["inbound"] == {"webhook_url": None, "visible": False}
    resp = viewer.put("/api/v1/settings/email/sender",
                      json={"name": "Vera", "email": "vera@example.org"})
    assert resp.status_code == 403
