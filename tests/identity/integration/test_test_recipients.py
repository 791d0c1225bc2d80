"""Test recipients: who a test run writes to. E-mail for e-mail runs, a phone for SMS/call runs."""
from tests.e2e.test_main_job import signup


def test_test_recipients_keep_a_phone_in_e164_for_sms_test_runs(api):
    client, owner_email, _ = signup(api, "Recipients Co")
    resp = client.put("/api/v1/organization/test-recipients", json={"recipients": [
        {"email": owner_email, "name": "Olive", "phone": "(202) 555-0143"},
        {"phone": "+33 1 99 00 12 34", "name": "FR phone only"}]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["test_recipients"] == [
        {"email": owner_email, "name": "Olive", "phone": "+12025550143"},
        {"email": None, "name": "FR phone only", "phone": "+33199001234"},
    ]


def test_a_recipient_needs_an_email_or_a_valid_phone(api):
    client, _, _ = signup(api, "Recipients Bad")
    resp = client.put("/api/v1/organization/test-recipients", json={"recipients": [{"name": "nobody"}]})
    assert resp.status_code == 400
    assert "email" in str(resp.json()["errors"])
    resp = client.put("/api/v1/organization/test-recipients",
                      json={"recipients": [{"phone": "555-0144", "name": "no area code"}]})
    assert resp.status_code == 400
    assert list(resp.json()["errors"]) == ["recipients.0.phone"]


def test_sms_test_run_preflight_passes_once_a_test_recipient_has_a_phone(api):
    client, owner_email, _ = signup(api, "Recipients SMS")
    campaign = client.post("/api/v1/campaigns", json={"name": "Texts", "channel": "sms"})
    cid = campaign.json()["id"]
    before = client.get(f"/api/v1/campaigns/{cid}/preflight", params={"type": "test"}).json()
    assert "test_recipients" in {r["requirement"] for r in before["reasons"]}
    client.put("/api/v1/organization/test-recipients",
               json={"recipients": [{"email": owner_email, "phone": "+12025550143"}]})
    after = client.get(f"/api/v1/campaigns/{cid}/preflight", params={"type": "test"}).json()
    assert "test_recipients" not in {r["requirement"] for r in after["reasons"]}
