"""Concurrent requests that compete for something unique (an organization's slug, an email, a
membership) each get a clear answer, never a 500."""
import uuid

from tests.identity.helpers import PASSWORD, add_teammate, at_once, sign_up, unique_email

N = 8


def _signup(api, org_name, email):
    return api.as_(None).post("/api/v1/signup", json={
        "organization": {"name": org_name, "description": ""},
        "owner": {"name": "Olivia Owner", "email": email, "password": PASSWORD}})


def test_concurrent_signups_with_the_same_organization_name_all_succeed_with_distinct_slugs(api):
    name = f"Racing Co {uuid.uuid4().hex[:6]}"
    answers = at_once(lambda i: _signup(api, name, unique_email("race")))
    assert [r.status_code for r in answers] == [201] * N, [r.text[:200] for r in answers]
    slugs = [r.json()["organization"]["slug"] for r in answers]
    base = name.lower().replace(" ", "-")
    assert len(set(slugs)) == N
    assert sorted(slugs) == sorted([base] + [f"{base}-{n}" for n in range(2, N + 1)])


def test_concurrent_signups_with_the_same_email_create_one_account_and_409_the_rest(api):
    email = unique_email("same")
    answers = at_once(lambda i: _signup(api, f"Same Mail {i} {uuid.uuid4().hex[:6]}", email))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [409] * (N - 1), [r.text[:200] for r in answers]
    refused = next(r for r in answers if r.status_code == 409).json()
    assert refused["errors"] == {"owner": {"email": ["an account with this email already exists"]}}


def test_concurrent_team_adds_of_one_new_email_to_several_organizations_share_one_account(api):
    owners = [sign_up(api, org_name=f"Team Race {i}") for i in range(4)]
    email = unique_email("shared")
    answers = at_once(lambda i: api.as_(owners[i]["token"]).post("/api/v1/team", json={
        "email": email, "password": PASSWORD, "name": "Sam Shared", "role": "member"}), n=4)
    assert [r.status_code for r in answers] == [201] * 4, [r.text[:200] for r in answers]
    assert len({r.json()["user_id"] for r in answers}) == 1
    assert sorted(r.json()["existing_account"] for r in answers) == [False, True, True, True]


def test_concurrent_team_adds_of_one_email_to_one_organization_add_once_and_409_the_rest(api):
    owner = sign_up(api)
    email = unique_email("twice")
    answers = at_once(lambda i: api.as_(owner["token"]).post("/api/v1/team", json={
        "email": email, "password": PASSWORD, "name": "Tess Twice", "role": "member"}))
    assert sorted(r.status_code for r in answers) == [201] + [409] * (N - 1), \
        [r.text[:200] for r in answers]
    team = owner["api"].get("/api/v1/team").json()
    assert [m["email"] for m in team].count(email) == 1


def test_concurrent_slug_changes_to_the_same_slug_give_it_to_one_organization(api):
    owners = [sign_up(api, org_name=f"Slug Race {i}") for i in range(N)]
    slug = f"wanted-{uuid.uuid4().hex[:6]}"
    answers = at_once(lambda i: api.as_(owners[i]["token"]).patch(
        "/api/v1/organization", json={"slug": slug}))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [400] * (N - 1), [r.text[:200] for r in answers]
    refused = next(r for r in answers if r.status_code == 400).json()
    assert refused["errors"] == {"slug": ["this slug is already taken"]}


def test_a_teammate_add_with_an_existing_account_is_explicit(api):
    other = sign_up(api, org_name="Other Org")
    owner = sign_up(api)
    fresh = add_teammate(owner["api"], "member")
    listed = [m for m in owner["api"].get("/api/v1/team").json() if m["user_id"] == fresh["user_id"]]
    assert listed and "existing_account" not in listed[0]
    added = owner["api"].post("/api/v1/team", json={
        "email": other["email"], "password": "a-different-password-9", "name": "Someone Else",
        "role": "member"})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["existing_account"] is True and body["password_set"] is False
    assert "password" in body["notice"] and "not changed" in body["notice"]
    assert set(body) == {"user_id", "email", "name", "role", "locked", "created_at",
                         "organization", "existing_account", "password_set", "notice"}
    assert body["organization"] == {"id": owner["org_id"], "name": "Acme Outreach"}
    # The existing password still works; the one typed by the adding admin does not.
    assert api.post("/api/v1/auth/login", json={"email": other["email"],
                                                "password": PASSWORD}).status_code == 200
    assert api.post("/api/v1/auth/login", json={"email": other["email"],
                                                "password": "a-different-password-9"}).status_code == 401
    new = owner["api"].post("/api/v1/team", json={
        "email": unique_email("brand-new"), "password": PASSWORD, "name": "Nina New", "role": "viewer"})
    assert new.status_code == 201
    assert new.json()["existing_account"] is False and new.json()["password_set"] is True
    assert "notice" not in new.json()
