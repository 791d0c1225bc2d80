"""Input no database can store faithfully is refused at the edge with 400 naming where it is."""
import uuid

from tests.e2e.test_main_job import signup


def test_nul_character_in_a_json_field_is_a_400_naming_the_field(api):
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "nul\u0000org", "description": ""},
        "owner": {"name": "N", "email": f"n-{uuid.uuid4().hex[:6]}@example.org",
                  "password": "correct horse battery 42"}})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"organization.name": ["contains a NUL character"]}


def test_lone_surrogate_is_a_400_naming_the_field(api):
    client, _, _ = signup(api, "Surrogates")
    resp = client.post("/api/v1/contacts", data='{"email": "lone@example.org", "first_name": "\\ud800"}',
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"first_name": ["contains an unpaired UTF-16 surrogate"]}


def test_absurdly_nested_json_is_a_400_not_a_crash(api):
    client, _, _ = signup(api, "Nesting")
    body = '{"name": "g", "description": ' + "[" * 100000 + "]" * 100000 + "}"
    resp = client.post("/api/v1/goals", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"] in ("malformed_json", "invalid")


def test_nul_in_query_or_path_is_a_400(api):
    client, _, _ = signup(api, "Query NUL")
    resp = client.get("/api/v1/contacts", params={"q": "a\u0000b"})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"q": ["contains a NUL character"]}
    resp = client.get("/api/v1/contacts/a%00b")
    assert resp.status_code == 400
    assert "path" in resp.json()["errors"]


def test_malformed_json_is_a_400_saying_so(api):
    client, _, _ = signup(api, "Malformed")
    resp = client.post("/api/v1/goals", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"] == "malformed_json"
