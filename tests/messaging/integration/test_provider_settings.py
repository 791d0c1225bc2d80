"""Provider integrations over HTTP (Settings → SMS and the webhook providers): Twilio-style
credentials in token or key/secret form make SMS ready once the number is set; secrets are
stored encrypted and never come back; only those who manage channel setup may change them or
see the webhook URLs."""
import uuid

import pytest

from tests.identity.helpers import add_teammate, log_in, sign_up
from tests.messaging.helpers import messaging_tx

ACCOUNT_SID = "AC" + "1" * 32
TOKEN = "twilio-auth-token-" + "9" * 14
KEY_SID = "SK" + "2" * 32
KEY_SECRET = "twilio-api-key-secret-77"


@pytest.fixture
def owner(api):
    return sign_up(api, org_name="Larkspur Labs")


def readiness(api, channel):
    return next(r for r in api.get("/api/v1/settings/channels").json() if r["channel"] == channel)


def release(api):
    api.delete("/api/v1/settings/providers/twilio")


def unique_number():
    return f"+1202555{uuid.uuid4().int % 10000:04d}"


def test_sms_is_ready_only_with_both_credentials_and_a_number(owner):
    api = owner["api"]
    assert readiness(api, "sms") == {"channel": "sms", "ready": False,
                                     "missing": ["sms_provider", "phone_number"]}
    resp = api.put("/api/v1/settings/providers/twilio",
                   json={"account_sid": ACCOUNT_SID, "auth_token": TOKEN})
    assert resp.status_code == 200, resp.text
    assert readiness(api, "sms") == {"channel": "sms", "ready": False, "missing": ["phone_number"]}
    number = unique_number()
    resp = api.put("/api/v1/settings/providers/twilio",
                   json={"account_sid": ACCOUNT_SID, "phone_number": number})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["auth_token_set"] is True and body["phone_number"] == number
    assert readiness(api, "sms") == {"channel": "sms", "ready": True, "missing": []}
    assert readiness(api, "phone") == {"channel": "phone", "ready": True, "missing": []}
    release(api)


def test_key_and_secret_credentials_are_accepted_and_never_returned(owner, stack):
    api = owner["api"]
    number = unique_number()
    number_spaced = f"+1 (202) 555-{number[-4:]} "
    resp = api.put("/api/v1/settings/providers/twilio", json={
        "account_sid": ACCOUNT_SID, "credential_style": "api_key", "api_key_sid": KEY_SID,
        "api_key_secret": KEY_SECRET, "phone_number": number_spaced, "auth_token": TOKEN})
    assert resp.status_code == 200, resp.text
    assert resp.json()["phone_number"] == number
    assert KEY_SECRET not in resp.text and TOKEN not in resp.text
    listed = api.get("/api/v1/settings/providers")
    assert KEY_SECRET not in listed.text and TOKEN not in listed.text
    twilio = listed.json()["twilio"]
    assert (twilio["credential_style"], twilio["api_key_sid"], twilio["api_key_secret_set"]) == \
        ("api_key", KEY_SID, True)
    assert twilio["webhook_urls"]["sms_inbound"].startswith("https://outreach.example.org/webhooks/twilio/")
    with messaging_tx(stack) as tx:
        stored = tx.one("SELECT secrets_enc FROM provider_settings WHERE org_id = %s AND "
                        "provider = 'twilio'", (owner["org_id"],))["secrets_enc"]
    assert stored and KEY_SECRET not in stored and TOKEN not in stored
    assert readiness(api, "sms")["ready"] is True
    release(api)


def test_key_style_without_its_secret_and_bad_sids_are_refused_per_field(owner):
    api = owner["api"]
    resp = api.put("/api/v1/settings/providers/twilio",
                   json={"account_sid": ACCOUNT_SID, "credential_style": "api_key"})
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) == {"api_key_sid", "api_key_secret"}
    resp = api.put("/api/v1/settings/providers/twilio",
                   json={"account_sid": "not-a-sid", "auth_token": TOKEN,
                         "phone_number": "call me"})
    assert resp.status_code == 400
    assert {"account_sid", "phone_number"} <= set(resp.json()["errors"])
    resp = api.put("/api/v1/settings/providers/sendgrid",
                   json={"event_verification_key": "bm90IGEga2V5"})
    assert resp.status_code == 400 and "event_verification_key" in resp.json()["errors"]


def test_a_number_connected_to_one_organization_cannot_be_claimed_by_another(api, owner):
    number = unique_number()
    first = owner["api"].put("/api/v1/settings/providers/twilio", json={
        "account_sid": ACCOUNT_SID, "auth_token": TOKEN, "phone_number": number})
    assert first.status_code == 200, first.text
    other = sign_up(api, org_name="Someone Else")
    resp = other["api"].put("/api/v1/settings/providers/twilio", json={
        "account_sid": ACCOUNT_SID, "auth_token": TOKEN, "phone_number": number})
    assert resp.status_code == 409
    release(owner["api"])
    resp = other["api"].put("/api/v1/settings/providers/twilio", json={
        "account_sid": ACCOUNT_SID, "auth_token": TOKEN, "phone_number": number})
    assert resp.status_code == 200, resp.text
    release(other["api"])


def test_only_managers_change_providers_and_see_webhook_urls(api, owner):
    owner["api"].put("/api/v1/settings/providers/postmark",
                     json={"inbound_username": "postmark", "inbound_password": "pm-secret-1234"})
    mate = add_teammate(owner["api"], "member")
    member = log_in(api, mate["email"], org_id=owner["org_id"])
    resp = member.put("/api/v1/settings/providers/mailgun", json={"signing_key": "k" * 20})
    assert resp.status_code == 403
    assert member.delete("/api/v1/settings/providers/postmark").status_code == 403
    seen = member.get("/api/v1/settings/providers")
    assert seen.status_code == 200
    assert seen.json()["postmark"]["webhook_urls"] is None
    assert seen.json()["postmark"]["inbound_password_set"] is True
    assert "pm-secret-1234" not in seen.text
    mine = owner["api"].get("/api/v1/settings/providers").json()["postmark"]
    assert mine["webhook_urls"]["inbound"].endswith("/inbound")


def test_disconnecting_a_provider_forgets_it(owner):
    api = owner["api"]
    assert api.put("/api/v1/settings/providers/mailgun",
                   json={"signing_key": "mg-signing-key-123456"}).status_code == 200
    assert api.get("/api/v1/settings/providers").json()["mailgun"]["signing_key_set"] is True
    assert api.delete("/api/v1/settings/providers/mailgun").status_code == 204
    assert api.get("/api/v1/settings/providers").json()["mailgun"] is None
    assert api.delete("/api/v1/settings/providers/mailgun").status_code == 404
    assert api.delete("/api/v1/settings/providers/nope").status_code == 404
