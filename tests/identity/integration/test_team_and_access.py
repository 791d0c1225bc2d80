"""Team management, locks, roles, several organizations, onboarding, self-service, audit log."""
import time
import uuid

from tests.identity.helpers import PASSWORD, add_teammate, log_in, sign_up, unique_email


def test_admin_adds_teammate_who_can_sign_in_with_those_credentials(api):
    owner = sign_up(api, org_name="Team Org")
    mate = add_teammate(owner["api"], "member", name="Mia Member")
    m = log_in(api, mate["email"])
    who = m.get("/api/v1/me").json()
    assert who["role"] == "member" and who["org_id"] == owner["org_id"] and who["name"] == "Mia Member"
    team = owner["api"].get("/api/v1/team").json()
    row = next(t for t in team if t["email"] == mate["email"])
    assert row["role"] == "member" and row["locked"] is False and row["created_at"]
    assert row["organization"] == {"id": owner["org_id"], "name": "Team Org"}


def test_adding_teammate_refuses_unknown_role_weak_password_and_duplicates(api):
    owner = sign_up(api)
    o = owner["api"]
    bad = o.post("/api/v1/team", json={"email": unique_email(), "password": PASSWORD,
                                      "name": "X", "role": "superuser"})
    assert bad.status_code == 400 and "role" in bad.json()["errors"]
    weak = o.post("/api/v1/team", json={"email": unique_email(), "password": "short",
                                       "name": "X", "role": "member"})
    assert weak.status_code == 400 and "password" in weak.json()["errors"]
    mate = add_teammate(o, "viewer")
    dup = o.post("/api/v1/team", json={"email": mate["email"], "password": PASSWORD,
                                      "name": "X", "role": "member"})
    assert dup.status_code == 409 and "email" in dup.json()["errors"]


def test_adding_a_teammate_without_a_password_or_with_a_weak_one_answers_400_naming_password(api):
    o = sign_up(api)["api"]
    email = unique_email("nopass")
    missing = o.post("/api/v1/team", json={"email": email, "name": "Pat", "role": "member"})
    assert missing.status_code == 400
    assert missing.json()["errors"] == {"password": ["Missing data for required field."]}
    common = o.post("/api/v1/team", json={"email": email, "password": "password1", "name": "Pat",
                                         "role": "member"})
    assert common.status_code == 400 and common.json()["errors"] == {"password": ["is too common"]}
    short = o.post("/api/v1/team", json={"email": email, "password": "abc", "name": "Pat",
                                        "role": "member"})
    assert short.json()["errors"] == {"password": ["must be at least 8 characters"]}
    assert email not in [m["email"] for m in o.get("/api/v1/team").json()]
    assert api.post("/api/v1/auth/login", json={"email": email,
                                                "password": "password1"}).status_code == 401


def test_a_teammate_joins_the_organization_named_by_organization_id(api):
    owner = sign_up(api, org_name="Join A")
    b = owner["api"].post("/api/v1/onboarding", json={"name": "Olivia Owner",
                                                      "organization_name": "Join B"})
    a_id, b_id = owner["org_id"], b.json()["active_org_id"]
    in_b = api.as_(owner["token"])  # the session's active organization is now B
    email = unique_email("joiner")
    added = in_b.post("/api/v1/team", json={"email": email, "password": PASSWORD, "name": "Jo Joiner",
                                           "role": "member", "organization_id": a_id})
    assert added.status_code == 201, added.text
    assert added.json()["organization"] == {"id": a_id, "name": "Join A"}
    assert added.headers["X-Organization-Id"] == a_id
    in_a = api.as_(owner["token"], a_id)
    assert email in [m["email"] for m in in_a.get("/api/v1/team").json()]
    assert email not in [m["email"] for m in in_b.get("/api/v1/team").json()]
    who = log_in(api, email).get("/api/v1/me").json()
    assert (who["org_id"], who["role"]) == (a_id, "member")
    entry = in_a.get("/api/v1/audit-log").json()["entries"][0]
    assert entry["action"] == "team.member_added" and entry["after"]["email"] == email
    assert in_b.get("/api/v1/audit-log").json()["entries"] == []
    # Without organization_id the active organization (B) is the one joined.
    plain = in_b.post("/api/v1/team", json={"email": unique_email("plain"), "password": PASSWORD,
                                           "name": "Pia Plain", "role": "viewer"})
    assert plain.json()["organization"] == {"id": b_id, "name": "Join B"}


def test_a_teammate_can_only_be_added_to_an_organization_the_caller_manages(api):
    me, theirs, stranger = sign_up(api), sign_up(api), sign_up(api)
    # I am only a member of `theirs`.
    assert theirs["api"].post("/api/v1/team", json={"email": me["email"], "password": PASSWORD,
                                                    "name": "Me", "role": "member"}).status_code == 201
    email = unique_email("nowhere")
    body = {"email": email, "password": PASSWORD, "name": "Nia Nowhere", "role": "member"}
    as_member = me["api"].post("/api/v1/team", json=dict(body, organization_id=theirs["org_id"]))
    assert as_member.status_code == 403 and as_member.json()["error"] == "forbidden"
    foreign = me["api"].post("/api/v1/team", json=dict(body, organization_id=stranger["org_id"]))
    assert foreign.status_code == 404
    assert foreign.json() == {"error": "not_found", "message": "organization not found"}
    garbled = me["api"].post("/api/v1/team", json=dict(body, organization_id="not-a-uuid"))
    assert garbled.status_code == 400 and list(garbled.json()["errors"]) == ["organization_id"]
    # An admin of `third`, locked there: 403 for that organization; the session still works.
    third = sign_up(api)
    assert third["api"].post("/api/v1/team", json={"email": me["email"], "password": PASSWORD,
                                                   "name": "Me", "role": "admin"}).status_code == 201
    my_id = next(m["user_id"] for m in third["api"].get("/api/v1/team").json()
                 if m["email"] == me["email"])
    assert third["api"].post(f"/api/v1/team/{my_id}/lock", json={}).status_code == 200
    locked = me["api"].post("/api/v1/team", json=dict(body, organization_id=third["org_id"]))
    assert locked.status_code == 403 and locked.json()["error"] == "forbidden", locked.text
    assert me["api"].get("/api/v1/me").status_code == 200
    for org in (theirs, stranger):
        assert email not in [m["email"] for m in org["api"].get("/api/v1/team").json()]
    assert api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 401


def test_locked_teammate_is_stopped_on_the_very_next_request_and_cannot_sign_in(api):
    owner = sign_up(api)
    mate = add_teammate(owner["api"], "admin")
    m = log_in(api, mate["email"])
    assert m.get("/api/v1/organization").status_code == 200  # cached in the gateway now
    resp = owner["api"].post(f"/api/v1/team/{mate['user_id']}/lock")
    assert resp.status_code == 200 and resp.json()["locked"] is True
    assert m.get("/api/v1/organization").status_code == 401
    assert m.get("/api/v1/me").status_code == 401
    again = api.post("/api/v1/auth/login", json={"email": mate["email"], "password": PASSWORD})
    assert again.status_code == 401
    assert owner["api"].post(f"/api/v1/team/{mate['user_id']}/unlock").status_code == 200
    assert m.get("/api/v1/organization").status_code == 200


def test_role_change_applies_at_once(api):
    owner = sign_up(api)
    mate = add_teammate(owner["api"], "admin")
    m = log_in(api, mate["email"])
    assert m.get("/api/v1/team").status_code == 200
    resp = owner["api"].patch(f"/api/v1/team/{mate['user_id']}", json={"role": "viewer"})
    assert resp.status_code == 200 and resp.json()["role"] == "viewer"
    assert m.get("/api/v1/team").status_code == 403
    assert m.get("/api/v1/organization").status_code == 200


def test_last_owner_cannot_be_demoted_locked_or_removed(api):
    owner = sign_up(api)
    o, uid = owner["api"], owner["user_id"]
    assert o.patch(f"/api/v1/team/{uid}", json={"role": "admin"}).status_code == 409
    assert o.delete(f"/api/v1/team/{uid}").status_code == 409
    second = add_teammate(o, "owner")
    assert o.patch(f"/api/v1/team/{uid}", json={"role": "admin"}).status_code == 200
    s = log_in(api, second["email"])
    assert s.patch(f"/api/v1/team/{second['user_id']}", json={"role": "member"}).status_code == 409
    assert s.post(f"/api/v1/team/{second['user_id']}/lock").status_code == 409


def test_admin_cannot_touch_owners_or_grant_ownership(api):
    owner = sign_up(api)
    admin = add_teammate(owner["api"], "admin")
    a = log_in(api, admin["email"])
    assert a.post(f"/api/v1/team/{owner['user_id']}/lock").status_code == 403
    assert a.post("/api/v1/team", json={"email": unique_email(), "password": PASSWORD,
                                        "name": "X", "role": "owner"}).status_code == 403
    member = add_teammate(a, "member")
    assert a.delete(f"/api/v1/team/{member['user_id']}").status_code == 204
    assert all(t["user_id"] != member["user_id"] for t in a.get("/api/v1/team").json())


def test_removed_teammate_loses_access_at_once(api):
    owner = sign_up(api)
    mate = add_teammate(owner["api"], "member")
    m = log_in(api, mate["email"])
    assert m.get("/api/v1/organization").status_code == 200
    assert owner["api"].delete(f"/api/v1/team/{mate['user_id']}").status_code == 204
    resp = m.get("/api/v1/organization")
    assert resp.status_code == 403 and resp.json()["error"] == "no_organization"


def test_member_and_viewer_cannot_manage_team_or_settings(api):
    owner = sign_up(api)
    for role in ("member", "viewer"):
        mate = add_teammate(owner["api"], role)
        m = log_in(api, mate["email"])
        assert m.get("/api/v1/team").status_code == 403
        assert m.patch("/api/v1/organization", json={"name": "Hacked"}).status_code == 403
        assert m.post("/api/v1/api-clients", json={"name": "x"}).status_code == 403
    assert owner["api"].get("/api/v1/organization").json()["name"] != "Hacked"


def test_user_in_two_organizations_switches_per_session_and_per_request(api):
    first = sign_up(api, org_name="First Org")
    second = sign_up(api, org_name="Second Org")
    mate = add_teammate(second["api"], "member")
    # The same person joins the first organization as a viewer (their password stays theirs).
    again = first["api"].post("/api/v1/team", json={"email": mate["email"], "password": "ignored-pass-1",
                                                    "name": "Ignored", "role": "viewer"})
    assert again.status_code == 201
    m = log_in(api, mate["email"])
    orgs = {o["name"]: o for o in m.get("/api/v1/me").json()["organizations"]}
    assert set(orgs) == {"First Org", "Second Org"}
    per_request = api.as_(m.token, first["org_id"]).get("/api/v1/organization")
    assert per_request.json()["name"] == "First Org"
    assert per_request.headers["X-Organization-Id"] == first["org_id"]
    switched = m.post("/api/v1/sessions/active-organization", json={"org_id": first["org_id"]})
    assert switched.status_code == 200
    assert m.get("/api/v1/organization").json()["name"] == "First Org"
    assert m.get("/api/v1/me").json()["role"] == "viewer"
    m.post("/api/v1/sessions/active-organization", json={"org_id": second["org_id"]})
    assert m.get("/api/v1/organization").json()["name"] == "Second Org"
    outsider = sign_up(api)
    assert m.post("/api/v1/sessions/active-organization",
                  json={"org_id": outsider["org_id"]}).status_code == 404
    assert api.as_(m.token, outsider["org_id"]).get("/api/v1/organization").status_code == 404
    assert api.as_(m.token, "not-a-uuid").get("/api/v1/organization").status_code == 404


def test_onboarding_creates_organization_for_a_registered_user(api):
    email = unique_email("newbie")
    reg = api.post("/api/v1/auth/register", json={"name": "Nora", "email": email, "password": PASSWORD})
    assert reg.status_code == 201
    n = api.as_(reg.json()["token"])
    assert n.get("/api/v1/me").json()["org_id"] is None
    blocked = n.get("/api/v1/organization")
    assert blocked.status_code == 403 and blocked.json()["error"] == "no_organization"
    resp = n.post("/api/v1/onboarding", json={"name": "Nora North", "organization_name": "North Co",
                                             "organization_description": "We knit sweaters."})
    assert resp.status_code == 201
    org = resp.json()["organization"]
    assert org["name"] == "North Co" and org["description"] == "We knit sweaters."
    assert org["test_recipients"] == [{"email": email, "name": "Nora North"}]
    who = n.get("/api/v1/me").json()
    assert who["org_id"] == org["id"] and who["role"] == "owner" and who["name"] == "Nora North"
    assert n.get("/api/v1/organization").json()["id"] == org["id"]
    # The campaigns service seeds the new organization from identity.organization_created.
    writer, reviewer, campaign = _starter_kit(n)
    assert writer["name"] == "Starter writer" and reviewer["name"] == "Starter reviewer"
    assert campaign["writer_agent_id"] == writer["id"]
    assert campaign["reviewer_agent_id"] == reviewer["id"]
    # Someone who already has an organization may create another the same way.
    again = n.post("/api/v1/onboarding", json={"name": "Nora North", "organization_name": "South Co"})
    assert again.status_code == 201, again.text
    assert again.json()["active_org_id"] != org["id"]
    assert sorted(o["name"] for o in n.get("/api/v1/me").json()["organizations"]) == ["North Co",
                                                                                      "South Co"]
    assert n.get("/api/v1/organization").json()["name"] == "South Co"


def _starter_kit(a, timeout=15):
    """The starter writer and reviewer agents and the starter campaign seeded in a's active
    organization (waiting for the campaigns service to handle organization_created)."""
    deadline = time.time() + timeout
    while True:
        agents = a.get("/api/v1/agents").json().get("items", [])
        campaigns = a.get("/api/v1/campaigns").json().get("items", [])
        writers = [x for x in agents if x["type"] == "writer" and x["is_starter"]]
        reviewers = [x for x in agents if x["type"] == "reviewer" and x["is_starter"]]
        starters = [c for c in campaigns if c["is_starter"]]
        if (writers and reviewers and starters) or time.time() > deadline:
            break
        time.sleep(0.3)
    assert len(writers) == 1, f"no starter writer agent was seeded: {agents}"
    assert len(reviewers) == 1, f"no starter reviewer agent was seeded: {agents}"
    assert len(starters) == 1, f"no starter campaign was seeded: {campaigns}"
    return writers[0], reviewers[0], starters[0]


def test_onboarding_needs_the_users_name_and_the_organization_name(api):
    reg = api.post("/api/v1/auth/register", json={"name": "Nora", "email": unique_email("nameless"),
                                                  "password": PASSWORD})
    n = api.as_(reg.json()["token"])
    nameless = n.post("/api/v1/onboarding", json={"organization_name": "Nameless Co"})
    assert nameless.status_code == 400
    assert nameless.json()["errors"] == {"name": ["Missing data for required field."]}
    blank = n.post("/api/v1/onboarding", json={"name": "", "organization_name": "Blank Co"})
    assert blank.status_code == 400 and list(blank.json()["errors"]) == ["name"]
    no_org = n.post("/api/v1/onboarding", json={"name": "Nora North"})
    assert no_org.status_code == 400
    assert no_org.json()["errors"] == {"organization_name": ["Missing data for required field."]}
    assert n.get("/api/v1/me").json()["organizations"] == []


def test_profile_and_password_change_needs_the_current_password(api):
    owner = sign_up(api)
    other = log_in(api, owner["email"])
    o = owner["api"]
    assert o.patch("/api/v1/me", json={"name": "Renamed"}).json()["name"] == "Renamed"
    assert o.get("/api/v1/me").json()["name"] == "Renamed"
    wrong = o.put("/api/v1/me/password", json={"current_password": "wrong-one-123",
                                               "new_password": "brand-new-pass-9"})
    assert wrong.status_code == 400 and "current_password" in wrong.json()["errors"]
    weak = o.put("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "12345678"})
    assert weak.status_code == 400 and "new_password" in weak.json()["errors"]
    ok = o.put("/api/v1/me/password", json={"current_password": PASSWORD,
                                            "new_password": "brand-new-pass-9"})
    assert ok.status_code == 200
    assert o.get("/api/v1/me").status_code == 200
    assert other.get("/api/v1/me").status_code == 401  # other sessions end
    assert api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                "password": "brand-new-pass-9"}).status_code == 200


def test_user_lists_and_revokes_own_sessions(api):
    owner = sign_up(api)
    second = log_in(api, owner["email"])
    sessions = owner["api"].get("/api/v1/me/sessions").json()
    assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
    other_id = next(s["id"] for s in sessions if not s["current"])
    assert second.get("/api/v1/me").status_code == 200
    assert owner["api"].delete(f"/api/v1/me/sessions/{other_id}").status_code == 204
    assert second.get("/api/v1/me").status_code == 401
    assert owner["api"].delete(f"/api/v1/me/sessions/{uuid.uuid4()}").status_code == 404
    assert owner["api"].post("/api/v1/auth/logout").status_code == 204
    assert owner["api"].get("/api/v1/me").status_code == 401


def test_slug_is_unique_and_validated(api):
    a, b = sign_up(api), sign_up(api)
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    assert a["api"].patch("/api/v1/organization", json={"slug": slug}).json()["slug"] == slug
    taken = b["api"].patch("/api/v1/organization", json={"slug": slug})
    assert taken.status_code == 400 and taken.json()["errors"]["slug"] == ["this slug is already taken"]
    assert b["api"].patch("/api/v1/organization", json={"slug": "Bad Slug!"}).status_code == 400


def test_audit_log_records_admin_actions_with_before_and_after(api):
    owner = sign_up(api)
    o = owner["api"]
    o.patch("/api/v1/organization", json={"default_timezone": "America/New_York"})
    mate = add_teammate(o, "member")
    o.patch(f"/api/v1/team/{mate['user_id']}", json={"role": "admin"})
    o.post(f"/api/v1/team/{mate['user_id']}/lock")
    log = o.get("/api/v1/audit-log").json()["entries"]
    actions = [e["action"] for e in log]
    assert actions[:4] == ["team.member_locked", "team.role_changed", "team.member_added",
                           "organization.updated"]
    role = log[1]
    assert role["before"] == {"role": "member"} and role["after"] == {"role": "admin"}
    assert role["actor_email"] == owner["email"] and role["target_id"] == mate["user_id"]
    assert log[3]["before"] == {"default_timezone": "UTC"}
    assert log[3]["after"] == {"default_timezone": "America/New_York"}
    assert PASSWORD not in str(log)
    page = o.get("/api/v1/audit-log?limit=2").json()
    assert len(page["entries"]) == 2 and page["next_cursor"]
    rest = o.get(f"/api/v1/audit-log?limit=2&cursor={page['next_cursor']}").json()
    assert rest["entries"][0]["action"] == "team.member_added"
