"""Priority-1 identity: sign up, sign in, who am I, the organization and its settings, and the
organization_created event other services seed from."""
import json
import time

from tests.identity.helpers import PASSWORD, log_in, sign_up, unique_email


def test_signup_creates_organization_and_owner_and_signs_in(api):
    email = unique_email()
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Sunny Schools", "description": "Solar panels for schools."},
        "owner": {"name": "Sam Sun", "email": email, "password": PASSWORD},
    })
    assert resp.status_code == 201
    body = resp.json()
    assert body["token"].startswith("tru_st_")
    assert body["user"]["email"] == email and body["user"]["name"] == "Sam Sun"
    org = body["organization"]
    assert org["name"] == "Sunny Schools" and org["slug"].startswith("sunny-schools")
    assert org["description"] == "Solar panels for schools."
    assert org["default_timezone"] == "UTC" and org["default_country"] == "US"
    assert org["auto_approve_campaign_emails"] is False
    assert org["auto_approve_response_emails"] is False
    assert org["mfa_required"] is False and org["default_response_campaign_id"] is None
    assert org["test_recipients"] == [{"email": email, "name": "Sam Sun"}]
    assert "password" not in resp.text and PASSWORD not in resp.text


def test_owner_logs_in_and_me_names_the_organization_and_role(api):
    owner = sign_up(api, org_name="Login Org")
    resp = api.post("/api/v1/auth/login", json={"email": owner["email"].upper(),
                                                "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["active_org_id"] == owner["org_id"]
    assert body["organizations"][0]["role"] == "owner"
    me = api.as_(body["token"]).get("/api/v1/me")
    assert me.status_code == 200
    who = me.json()
    assert who["email"] == owner["email"] and who["role"] == "owner"
    assert who["org_id"] == owner["org_id"]
    assert who["organizations"][0]["name"] == "Login Org"
    assert me.headers["X-Organization-Id"] == owner["org_id"]


def test_wrong_password_and_unknown_email_get_the_same_401(api):
    owner = sign_up(api)
    wrong = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": "nope-nope-nope"})
    unknown = api.post("/api/v1/auth/login", json={"email": unique_email(), "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"]
    assert "nope-nope-nope" not in wrong.text


def test_calls_without_a_valid_token_get_401(api):
    assert api.get("/api/v1/me").status_code == 401
    assert api.as_("tru_st_made-up").get("/api/v1/organization").status_code == 401


def test_signup_refuses_duplicate_email_weak_password_and_bad_input(api):
    owner = sign_up(api)
    dup = api.post("/api/v1/signup", json={
        "organization": {"name": "Other"},
        "owner": {"name": "X", "email": owner["email"], "password": PASSWORD}})
    assert dup.status_code == 409
    assert dup.json()["errors"] == {"owner": {"email": ["an account with this email already exists"]}}
    weak = api.post("/api/v1/signup", json={
        "organization": {"name": "Other"},
        "owner": {"name": "X", "email": unique_email(), "password": "password"}})
    assert weak.status_code == 400 and "password" in weak.json()["errors"]["owner"]
    bad = api.post("/api/v1/signup", json={"organization": {}, "owner": {"email": "not-an-email"}})
    assert bad.status_code == 400
    errors = bad.json()["errors"]
    assert "name" in errors["organization"] and "email" in errors["owner"]
    assert api.post("/api/v1/signup", data="{nope", headers={
        "Content-Type": "application/json"}).status_code == 400


def test_signup_without_a_password_or_with_a_weak_one_answers_400_naming_password(api):
    email = unique_email("nopass")
    missing = api.post("/api/v1/signup", json={"organization": {"name": "No Pass Co"},
                                               "owner": {"name": "Pat", "email": email}})
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"owner": {"password": ["Missing data for required field."]}}
    weak = api.post("/api/v1/signup", json={"organization": {"name": "Weak Co"},
                                            "owner": {"name": "Pat", "email": email,
                                                      "password": "password1"}})
    assert weak.status_code == 400
    assert weak.json()["errors"] == {"owner": {"password": ["is too common"]}}
    registered = api.post("/api/v1/auth/register", json={"name": "Pat", "email": email})
    assert registered.status_code == 400
    assert registered.json()["errors"] == {"password": ["Missing data for required field."]}
    assert api.post("/api/v1/auth/login", json={"email": email,
                                                "password": "password1"}).status_code == 401


def test_stored_passwords_are_argon2_and_session_tokens_only_hashed(api, stack):
    owner = sign_up(api)
    with stack.db("identity") as conn, conn.cursor() as cur:
        cur.execute("SELECT password_hash FROM users WHERE email = %s", (owner["email"],))
        assert cur.fetchone()[0].startswith("$argon2id$")
        cur.execute("SELECT count(*) FROM sessions WHERE token_hash = %s", (owner["token"],))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT expires_at > now() FROM sessions WHERE user_id = %s", (owner["user_id"],))
        assert cur.fetchone()[0] is True


def test_owner_reads_and_changes_settings_and_test_recipients(api):
    owner = sign_up(api)
    o = owner["api"]
    resp = o.patch("/api/v1/organization", json={
        "default_timezone": "Europe/Berlin", "auto_approve_campaign_emails": True,
        "description": "Now also batteries."})
    assert resp.status_code == 200
    assert resp.json()["default_timezone"] == "Europe/Berlin"
    assert o.get("/api/v1/organization").json()["auto_approve_campaign_emails"] is True
    resp = o.put("/api/v1/organization/test-recipients", json={"recipients": [
        {"email": "qa@example.org", "name": "QA"}, {"email": "Boss@Example.org", "name": "Boss"}]})
    assert resp.status_code == 200
    assert resp.json()["test_recipients"] == [{"email": "qa@example.org", "name": "QA"},
                                              {"email": "boss@example.org", "name": "Boss"}]
    bad = o.patch("/api/v1/organization", json={"default_timezone": "CEST"})
    assert bad.status_code == 400 and "default_timezone" in bad.json()["errors"]


def test_get_organization_rpc_answers_the_contract(api, stack):
    owner = sign_up(api, org_name="Rpc Org")
    with stack.rpc() as rpc:
        org = rpc.identity.get_organization({"org_id": owner["org_id"]})
        who = rpc.identity.authenticate(owner["token"], None)
    assert org["id"] == owner["org_id"] and org["name"] == "Rpc Org"
    assert org["test_recipients"] == [{"email": owner["email"], "name": "Olivia Owner"}]
    assert who["user_id"] == owner["user_id"] and who["role"] == "owner"
    assert who["organizations"][0]["org_id"] == owner["org_id"]


def test_signup_emits_organization_created_with_the_owner(api, stack):
    owner = sign_up(api, org_name="Event Org", description="Events!")
    deadline = time.time() + 10
    with stack.db("identity") as conn, conn.cursor() as cur:
        while True:
            cur.execute("SELECT payload, published_at FROM outbox WHERE event_type = "
                        "'organization_created' AND payload->>'org_id' = %s", (owner["org_id"],))
            row = cur.fetchone()
            conn.commit()
            if row and row[1] or time.time() > deadline:
                break
            time.sleep(0.2)
    payload = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    assert row[1] is not None  # published
    assert payload["name"] == "Event Org" and payload["description"] == "Events!"
    assert payload["owner_user_id"] == owner["user_id"]
    assert payload["owner_email"] == owner["email"] and payload["owner_name"] == "Olivia Owner"


def test_a_second_login_gives_an_independent_session(api):
    owner = sign_up(api)
    other = log_in(api, owner["email"])
    assert other.get("/api/v1/me").status_code == 200
    assert owner["api"].get("/api/v1/me").status_code == 200
