"""Goals, templates, agents and campaigns over HTTP: starter kit, validation, versions, isolation."""
import uuid

from tests.campaigns.integration.helpers import signup, starter


def test_a_new_organization_gets_starter_writer_reviewer_and_email_campaign(api):
    org = signup(api)
    campaign = starter(org)
    agents = org.get("/api/v1/agents").json()["items"]
    writer = next(a for a in agents if a["type"] == "writer")
    reviewer = next(a for a in agents if a["type"] == "reviewer")
    assert (writer["is_starter"], writer["provider"]) == (True, "builtin")
    assert (reviewer["is_starter"], reviewer["provider"]) == (True, "builtin")
    assert campaign["channel"] == "email" and campaign["status"] == "active"
    assert campaign["writer_agent_id"] == writer["id"]
    assert campaign["reviewer_agent_id"] == reviewer["id"]
    assert campaign["goal_id"] and campaign["template_id"]
    # Agents show how many active campaigns use them.
    assert writer["active_campaign_count"] == 1 and reviewer["active_campaign_count"] == 1


def test_a_template_with_an_unknown_placeholder_is_refused_with_a_field_error(api):
    org = signup(api)
    starter(org)
    resp = org.post("/api/v1/templates", json={
        "name": "Typo", "subject": "Hi {{frist_name}}", "body": "Hello {{first_name}} at {{company}}"})
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert set(errors) == {"subject", "body"}
    assert "{{frist_name}}" in errors["subject"][0] and "{{company}}" in errors["body"][0]
    assert [t["is_starter"] for t in org.get("/api/v1/templates").json()["items"]] == [True]


def test_changing_a_campaigns_instructions_makes_a_new_version(api):
    org = signup(api)
    goal = org.post("/api/v1/goals", json={"name": "Book a pilot", "description": "Offer a pilot"}).json()
    resp = org.post("/api/v1/campaigns", json={"name": "Pilot", "channel": "sms", "goal_id": goal["id"],
                                               "instructions": "Be brief."})
    assert resp.status_code == 201, resp.text
    campaign = resp.json()
    assert campaign["version"] == 1
    renamed = org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"name": "Pilot offer"}).json()
    assert renamed["version"] == 1 and renamed["name"] == "Pilot offer"
    changed = org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"instructions": "Be warm."}).json()
    assert changed["version"] == 2
    assert [(v["version"], v["instructions"]) for v in changed["versions"]] == [
        (2, "Be warm."), (1, "Be brief.")]


def test_a_campaign_must_use_a_writer_as_writer_and_its_own_organizations_goal(api):
    org, other = signup(api), signup(api)
    starter(org)
    reviewer = next(a for a in org.get("/api/v1/agents", params={"type": "reviewer"}).json()["items"])
    foreign_goal = other.post("/api/v1/goals", json={"name": "Theirs"}).json()
    resp = org.post("/api/v1/campaigns", json={
        "name": "Mixed up", "channel": "email", "writer_agent_id": reviewer["id"],
        "goal_id": foreign_goal["id"]})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {
        "writer_agent_id": ["that agent is a reviewer, not a writer"],
        "goal_id": ["no such goal in this organization"]}


def test_another_organizations_campaign_is_not_found(api):
    org, other = signup(api), signup(api)
    campaign = starter(org)
    for method, path in [("GET", f"/api/v1/campaigns/{campaign['id']}"),
                         ("PATCH", f"/api/v1/campaigns/{campaign['id']}"),
                         ("DELETE", f"/api/v1/campaigns/{campaign['id']}"),
                         ("POST", f"/api/v1/campaigns/{campaign['id']}/runs"),
                         ("GET", f"/api/v1/goals/{campaign['goal_id']}"),
                         ("GET", f"/api/v1/templates/{campaign['template_id']}"),
                         ("GET", f"/api/v1/agents/{campaign['writer_agent_id']}")]:
        body = {"type": "test"} if path.endswith("/runs") else ({"name": "x"} if method == "PATCH" else None)
        resp = other.request(method, path, json=body)
        assert resp.status_code == 404, (method, path, resp.text)
        assert resp.json()["error"] == "not_found"
    assert org.get(f"/api/v1/campaigns/{campaign['id']}").status_code == 200


def test_bad_input_is_a_400_naming_the_field_and_bad_ids_are_404(api):
    org = signup(api)
    resp = org.post("/api/v1/campaigns", json={"name": "", "channel": "fax", "goal_id": "nope"})
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) == {"name", "channel", "goal_id"}
    resp = org.post("/api/v1/agents", json={"type": "writer", "name": "LLM", "provider": "openai_compatible"})
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) == {"base_url", "model"}
    assert org.get("/api/v1/campaigns/not-a-uuid").status_code == 404
    assert org.get(f"/api/v1/runs/{uuid.uuid4()}").status_code == 404
    assert org.get("/api/v1/drafts", params={"after": "garbage!"}).status_code == 400
    resp = org.post("/api/v1/goals", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400


def test_a_goal_in_use_cannot_be_deleted_until_its_campaigns_change(api):
    org = signup(api)
    goal = org.post("/api/v1/goals", json={"name": "Renewals"}).json()
    campaign = org.post("/api/v1/campaigns", json={"name": "R", "channel": "phone",
                                                   "goal_id": goal["id"]}).json()
    resp = org.delete(f"/api/v1/goals/{goal['id']}")
    assert resp.status_code == 409
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"goal_id": None})
    assert org.delete(f"/api/v1/goals/{goal['id']}").status_code == 204
    assert org.get(f"/api/v1/goals/{goal['id']}").status_code == 404


def test_lists_page_by_keyset_cursor(api):
    org = signup(api)
    starter(org)
    for i in range(5):
        assert org.post("/api/v1/goals", json={"name": f"Goal {i}"}).status_code == 201
    first = org.get("/api/v1/goals", params={"limit": 4}).json()
    second = org.get("/api/v1/goals", params={"limit": 4, "after": first["next_cursor"]}).json()
    names = [g["name"] for g in first["items"] + second["items"]]
    assert names[:5] == ["Goal 4", "Goal 3", "Goal 2", "Goal 1", "Goal 0"]
    assert len(names) == len(set(g["id"] for g in first["items"] + second["items"])) == 6
    assert second["next_cursor"] is None
