"""Administrative actions in contacts and messaging reach identity's audit log (who, what, when,
before/after) and never carry a secret."""
import json
import time

from tests.identity.helpers import add_teammate, log_in, sign_up

SMTP = {"kind": "smtp", "host": "smtp.example.org", "port": 587, "username": "jordan",
        "password": "s3cret-smtp-pass", "tls_mode": "starttls"}
TWILIO_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"


def entries(api, count, timeout=15):
    """The newest entries once at least `count` exist (they arrive by event)."""
    deadline = time.time() + timeout
    while True:
        log = api.get("/api/v1/audit-log").json()["entries"]
        if len(log) >= count or time.time() > deadline:
            return log
        time.sleep(0.2)


def test_settings_and_data_source_changes_are_audited_without_secrets(api):
    owner = sign_up(api)
    admin = add_teammate(owner["api"], "admin")
    admin_api = log_in(api, admin["email"], org_id=owner["org_id"])
    baseline = len(entries(owner["api"], 0, timeout=0))
    assert admin_api.put("/api/v1/settings/email/sender", json={
        "name": "Jordan Ellis", "email": "jordan.ellis@example.org"}).status_code == 200
    assert admin_api.put("/api/v1/settings/email/provider", json=SMTP).status_code == 200
    assert admin_api.put("/api/v1/settings/email/provider",
                         json=dict(SMTP, host="smtp2.example.org", password=None)).status_code == 200
    assert admin_api.put("/api/v1/settings/providers/twilio", json={
        "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": TWILIO_TOKEN}).status_code == 200
    assert admin_api.delete("/api/v1/settings/providers/twilio").status_code == 204
    source = admin_api.post("/api/v1/data-sources", json={
        "kind": "sftp", "name": "Drop", "mapping": {"email": "Email"},
        "sftp": {"host": "sftp.example.org", "username": "u", "password": "sftp-pass-9",
                 "path": "/exports"}}).json()
    assert admin_api.patch(f"/api/v1/data-sources/{source['id']}", json={"name": "Drop 2"}).status_code == 200
    assert admin_api.delete(f"/api/v1/data-sources/{source['id']}").status_code == 204
    group = admin_api.post("/api/v1/contacts/unsubscribe-groups", json={
        "channel": "email", "name": "Newsletter"})
    assert group.status_code == 201, group.text

    log = entries(owner["api"], baseline + 9)
    ours = [e for e in log if e["actor_email"] == admin["email"]]
    assert [e["action"] for e in ours] == [
        "unsubscribe_group.created", "data_source.deleted", "data_source.updated",
        "data_source.created", "provider.twilio.removed", "provider.twilio.updated",
        "email_provider.updated", "email_provider.updated", "email_sender.updated"]
    by_action = {}
    for e in ours:
        by_action.setdefault(e["action"], []).append(e)
    second, first = by_action["email_provider.updated"]
    assert first["before"] is None and first["after"]["host"] == "smtp.example.org"
    assert first["after"]["password_changed"] is True and "password_changed" not in second["after"]
    assert (second["before"]["host"], second["after"]["host"]) == ("smtp.example.org", "smtp2.example.org")
    assert second["after"]["password_set"] is True
    renamed = by_action["data_source.updated"][0]
    assert (renamed["before"]["name"], renamed["after"]["name"]) == ("Drop", "Drop 2")
    assert renamed["target_id"] == source["id"] and renamed["target_type"] == "data_source"
    assert by_action["provider.twilio.updated"][0]["after"]["auth_token_set"] is True
    # The Twilio API key SID is shown, not a secret; the auth token only as set.
    twilio = by_action["provider.twilio.updated"][0]["after"]
    assert (twilio["account_sid"], twilio["api_key_sid"]) == ("AC0123456789abcdef0123456789abcdef", None)
    text = json.dumps(log)
    for secret in ("s3cret-smtp-pass", TWILIO_TOKEN, "sftp-pass-9", "webhooks/"):
        assert secret not in text


def test_a_change_that_changes_nothing_writes_no_entry(api):
    owner = sign_up(api)["api"]
    sender = {"name": "Jordan Ellis", "email": "jordan.ellis@example.org"}
    assert owner.put("/api/v1/settings/email/sender", json=sender).status_code == 200
    first = entries(owner, 1)
    assert first[0]["action"] == "email_sender.updated"
    assert owner.put("/api/v1/settings/email/sender", json=sender).status_code == 200
    assert owner.put("/api/v1/settings/email/sender", json=dict(sender, name="Jo Ellis")).status_code == 200
    log = entries(owner, len(first) + 1)
    assert [e["action"] for e in log[:2]] == ["email_sender.updated", "email_sender.updated"]
    assert (log[0]["before"]["name"], log[0]["after"]["name"]) == ("Jordan Ellis", "Jo Ellis")
    assert len(log) == len(first) + 1  # the repeated PUT left nothing


def test_rotating_a_provider_secret_is_audited_without_the_secret(api):
    owner = sign_up(api)["api"]
    body = {"account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": TWILIO_TOKEN}
    assert owner.put("/api/v1/settings/providers/twilio", json=body).status_code == 200
    rotated = "rotated-token-9f8e7d6c5b4a"
    assert owner.put("/api/v1/settings/providers/twilio", json=dict(body, auth_token=rotated)).status_code == 200
    log = entries(owner, 2)
    assert [e["action"] for e in log[:2]] == ["provider.twilio.updated"] * 2
    assert log[0]["after"]["auth_token_changed"] is True and log[0]["after"]["auth_token_set"] is True
    assert rotated not in json.dumps(log) and TWILIO_TOKEN not in json.dumps(log)
