"""Identity input that used to slip through or fail on the server: blank names, unknown
countries, line breaks in names, NUL in OAuth credentials, a token request that is not a form."""
import base64

from tests.identity.helpers import PASSWORD, sign_up, unique_email


def test_blank_or_multi_line_organization_and_owner_names_are_refused(api):
    for org, owner, field in (("   ", "Olivia", ("organization", "name")),
                              ("Acme", "\t ", ("owner", "name")),
                              ("Acme\nBcc: x", "Olivia", ("organization", "name"))):
        resp = api.post("/api/v1/signup", json={
            "organization": {"name": org, "description": "d"},
            "owner": {"name": owner, "email": unique_email(), "password": PASSWORD}})
        assert resp.status_code == 400, resp.text
        errors = resp.json()["errors"]
        assert errors[field[0]][field[1]] in (["must not be blank"], ["a name on one line (no line breaks)"])
    ok = api.post("/api/v1/signup", json={
        "organization": {"name": "  Acme Outreach  ", "description": "d"},
        "owner": {"name": "Olivia", "email": unique_email(), "password": PASSWORD}})
    assert ok.status_code == 201 and ok.json()["organization"]["name"] == "Acme Outreach"


def test_onboarding_refuses_a_blank_organization_name(api):
    email = unique_email("new")
    reg = api.post("/api/v1/auth/register", json={"name": "Nia New", "email": email, "password": PASSWORD})
    assert reg.status_code == 201, reg.text
    user = api.as_(reg.json()["token"])
    resp = user.post("/api/v1/onboarding", json={"name": "Nia New", "organization_name": "  "})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {"organization_name": ["must not be blank"]}


def test_an_unknown_default_country_is_refused(api):
    owner = sign_up(api)["api"]
    resp = owner.patch("/api/v1/organization", json={"default_country": "ZZ"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {"default_country": ["an ISO 3166 two-letter country code such as US"]}
    assert owner.patch("/api/v1/organization", json={"default_country": "GB"}).status_code == 200


def test_a_test_recipient_name_with_a_line_break_is_refused(api):
    owner = sign_up(api)["api"]
    resp = owner.put("/api/v1/organization/test-recipients", json={"recipients": [
        {"name": "x\r\nBcc: victim@example.net", "email": "qa@example.org"}]})
    assert resp.status_code == 400, resp.text
    assert "no line breaks" in str(resp.json()["errors"])


def test_oauth_token_requests_with_nul_or_a_non_form_body_get_oauth_errors(api):
    nul = api.post("/oauth/token", data="grant_type=client_credentials&client_id=a%00&client_secret=b",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert nul.status_code == 401, nul.text
    assert nul.json()["error"] == "invalid_client"
    basic = base64.b64encode(b"a\x00:b").decode()
    via_basic = api.post("/oauth/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": f"Basic {basic}"})
    assert via_basic.status_code == 401 and via_basic.json()["error"] == "invalid_client"
    garbage = api.post("/oauth/token", data="{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400, garbage.text
    assert garbage.json()["error"] == "invalid_request"
    assert "form-encoded" in garbage.json()["error_description"]


def test_oauth_token_requests_that_are_ambiguous_or_incomplete_are_invalid_requests(api):
    owner = sign_up(api)["api"]
    client = owner.post("/api/v1/api-clients", json={"name": "Sync job"}).json()
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    both = api.post("/oauth/token", data={"grant_type": "client_credentials",
                                          "client_id": client["client_id"]},
                    headers={"Authorization": f"Basic {basic}"})
    assert both.status_code == 400 and both.json()["error"] == "invalid_request", both.text
    no_token = api.post("/oauth/token", data={"grant_type": "refresh_token"},
                        headers={"Authorization": f"Basic {basic}"})
    assert no_token.status_code == 400, no_token.text
    assert no_token.json() == {"error": "invalid_request", "error_description": "refresh_token is required"}
    wrong_type = api.post("/oauth/token", json={"grant_type": ["client_credentials"]})
    assert wrong_type.json() == {"error": "invalid_request", "error_description": "grant_type must be a string"}
    ok = api.post("/oauth/token", data={"grant_type": "client_credentials"},
                  headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200, ok.text
