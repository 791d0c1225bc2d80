"""Goals, templates, agents and campaigns over HTTP: starter kit, validation, versions, isolation."""
import uuid

from tests.campaigns.integration.helpers import (
    drafts_of, segment_with_contacts, set_up_email, signup, starter, wait_for)


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


def test_another_organizations_segment_or_other_reference_is_refused_at_save(api, stack):
    org, other = signup(api), signup(api)
    campaign, theirs = starter(org), starter(other)
    tag = org.org_id[:8]
    own_segment, _ = segment_with_contacts(stack, org, [{"name": "Ada", "email": f"ada+{tag}@example.org"}])
    foreign_segment, _ = segment_with_contacts(stack, other, [{"name": "Bo", "email": f"bo+{tag}@example.org"}])
    for segment_id in (foreign_segment, str(uuid.uuid4())):
        resp = org.post("/api/v1/campaigns", json={"name": "Poach", "channel": "email",
                                                   "segment_id": segment_id})
        assert resp.status_code == 400, resp.text
        assert resp.json()["errors"] == {"segment_id": ["no such segment"]}
        resp = org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
        assert resp.status_code == 400, resp.text
        assert resp.json()["errors"] == {"segment_id": ["no such segment"]}
    # Every reference to another organization's row is refused the same way, all at once.
    resp = org.post("/api/v1/campaigns", json={
        "name": "Poach all", "channel": "email", "segment_id": foreign_segment,
        "goal_id": theirs["goal_id"], "template_id": theirs["template_id"],
        "writer_agent_id": theirs["writer_agent_id"], "reviewer_agent_id": theirs["reviewer_agent_id"]})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {
        "segment_id": ["no such segment"], "goal_id": ["no such goal in this organization"],
        "template_id": ["no such template in this organization"],
        "writer_agent_id": ["no such agent in this organization"],
        "reviewer_agent_id": ["no such agent in this organization"]}
    assert [c["id"] for c in org.get("/api/v1/campaigns").json()["items"]] == [campaign["id"]]
    resp = org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": own_segment})
    assert resp.status_code == 200 and resp.json()["segment_id"] == own_segment


def test_a_template_with_unbalanced_braces_is_refused_with_a_field_error(api):
    org = signup(api)
    resp = org.post("/api/v1/templates", json={
        "name": "Unclosed", "subject": "Hi {{first_name", "body": "Hello first_name}} from {{organization}}"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {
        "subject": ["unclosed placeholder '{{first_name': every {{ needs a matching }}"],
        "body": ["'Hello first_name}}' closes a placeholder that was never opened with {{"]}
    template = starter(org)["template_id"]
    before = org.get(f"/api/v1/templates/{template}").json()["body"]
    resp = org.patch(f"/api/v1/templates/{template}", json={"body": "Hi {{ first_name }, welcome"})
    assert resp.status_code == 400 and set(resp.json()["errors"]) == {"body"}
    assert org.get(f"/api/v1/templates/{template}").json()["body"] == before


def test_unknown_fields_are_refused_everywhere_naming_them(api, stack):
    org = signup(api)
    campaign = starter(org)
    some_id = str(uuid.uuid4())
    cases = [
        ("POST", "/api/v1/goals", {"name": "Renewals", "colour": "red"}, None,
         {"colour": ["unknown field; accepted: name, description"]}),
        ("POST", "/api/v1/campaigns", {"name": "C", "channel": "email", "segment": some_id}, None,
         {"segment": ["unknown field; did you mean segment_id?"]}),
        ("PATCH", f"/api/v1/agents/{campaign['writer_agent_id']}", {"api_key": "sk-live-123"}, None,
         {"api_key": ["unknown field; did you mean api_key_env?"]}),
        ("POST", f"/api/v1/campaigns/{campaign['id']}/runs", {"type": "test", "dry_run": True}, None,
         {"dry_run": ["unknown field; accepted: type"]}),
        ("POST", f"/api/v1/drafts/{some_id}/reject", {"reason": "wrong tone"}, None,
         {"reason": ["unknown field; did you mean note?"]}),
        ("POST", f"/api/v1/drafts/{some_id}/approve", {"note": "ok", "send_at": "now"}, None,
         {"send_at": ["unknown field; accepted: note"]}),
        ("POST", f"/api/v1/runs/{some_id}/cancel", {"force": True}, None,
         {"force": ["unknown field; accepted: none"]}),
        ("POST", f"/api/v1/runs/{some_id}/approve-all", {"limit": 5}, None,
         {"limit": ["unknown field; accepted: none"]}),
        ("POST", f"/api/v1/drafts/{some_id}/retry", {"model": "x"}, None,
         {"model": ["unknown field; accepted: none"]}),
        ("GET", "/api/v1/goals", None, {"cursor": "abc"}, {"cursor": ["unknown field; did you mean after?"]}),
        ("GET", "/api/v1/drafts", None, {"run": some_id}, {"run": ["unknown field; did you mean run_id?"]}),
    ]
    for method, path, body, params, errors in cases:
        resp = org.request(method, path, json=body, params=params)
        assert resp.status_code == 400, (method, path, resp.text)
        assert resp.json()["errors"] == errors, (method, path)
    # The same bodies without the stray field go through to the domain (404 for the made-up ids).
    assert org.post(f"/api/v1/drafts/{some_id}/reject", json={"note": "wrong tone"}).status_code == 404
    assert org.post(f"/api/v1/runs/{some_id}/cancel").status_code == 404
    assert [g["is_starter"] for g in org.get("/api/v1/goals").json()["items"]] == [True]


def test_every_campaigns_list_answers_items_and_next_cursor_paged_by_after(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    assert org.post("/api/v1/goals", json={"name": "Second goal"}).status_code == 201
    assert org.post("/api/v1/templates", json={"name": "Second", "subject": "Hi", "body": "B"}).status_code == 201
    assert org.post("/api/v1/campaigns", json={"name": "Second", "channel": "sms"}).status_code == 201
    runs = [org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"}).json()["id"]
            for _ in range(2)]
    wait_for(lambda: len(drafts_of(org, runs[0])) == len(drafts_of(org, runs[1])) == 1, what="drafts")
    for path in ("goals", "templates", "agents", "campaigns", "runs", "drafts"):
        first = org.get(f"/api/v1/{path}", params={"limit": 1})
        assert first.status_code == 200, (path, first.text)
        assert set(first.json()) == {"items", "next_cursor"}, path
        assert len(first.json()["items"]) == 1 and first.json()["next_cursor"], path
        second = org.get(f"/api/v1/{path}", params={"limit": 1, "after": first.json()["next_cursor"]}).json()
        assert set(second) == {"items", "next_cursor"}, path
        assert second["items"][0]["id"] != first.json()["items"][0]["id"], path
        rest = org.get(f"/api/v1/{path}", params={"limit": 500}).json()
        assert rest["next_cursor"] is None and len(rest["items"]) == 2, path
