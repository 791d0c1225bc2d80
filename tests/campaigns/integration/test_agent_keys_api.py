"""An agent's model endpoint and key over HTTP: the key variable must be one the operator allowed
(AGENT_API_KEY_ENVS, default OPENAI_API_KEY), only owners and admins point agents at endpoints, and
a row saved before these rules never sends a server variable anywhere."""
import pytest

from tests.campaigns.integration.helpers import (
    ModelEndpoint, drafts_of, set_up_email, signup, starter, teammate, wait_for)


@pytest.fixture
def endpoint():
    server = ModelEndpoint()
    yield server
    server.close()


def llm_writer(endpoint, **kw):
    return dict({"type": "writer", "name": "Leak", "provider": "openai_compatible", "model": "m",
                 "base_url": endpoint.url}, **kw)


def test_an_agent_may_name_only_a_key_variable_the_operator_allowed(api, endpoint):
    org = signup(api)
    resp = org.post("/api/v1/agents", json=llm_writer(endpoint, api_key_env="DATABASE_URL"))
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {"api_key_env": [
        "DATABASE_URL is not an allowed key variable; allowed: OPENAI_API_KEY "
        "(the operator lists them in AGENT_API_KEY_ENVS)"]}
    resp = org.post("/api/v1/agents", json=llm_writer(endpoint, api_key_env="OPENAI_API_KEY"))
    assert resp.status_code == 201, resp.text
    agent = resp.json()
    resp = org.patch(f"/api/v1/agents/{agent['id']}", json={"api_key_env": "SECRET_KEY"})
    assert resp.status_code == 400 and set(resp.json()["errors"]) == {"api_key_env"}
    assert org.get(f"/api/v1/agents/{agent['id']}").json()["api_key_env"] == "OPENAI_API_KEY"


def test_only_owners_and_admins_point_an_agent_at_a_model_endpoint(api, endpoint):
    org = signup(api)
    member, admin = teammate(api, org, "member"), teammate(api, org, "admin")
    resp = member.post("/api/v1/agents", json=llm_writer(endpoint))
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "forbidden"
    assert resp.json()["message"] == "only an owner or admin may create an agent with an external model provider"
    resp = admin.post("/api/v1/agents", json=llm_writer(endpoint))
    assert resp.status_code == 201, resp.text
    agent = resp.json()
    for change in ({"base_url": "http://127.0.0.1:8399/v1"}, {"model": "other"},
                   {"provider": "builtin"}, {"api_key_env": "OPENAI_API_KEY"}):
        resp = member.patch(f"/api/v1/agents/{agent['id']}", json=change)
        assert resp.status_code == 403, (change, resp.text)
    # Members still name agents and write their instructions, and make builtin ones.
    resp = member.patch(f"/api/v1/agents/{agent['id']}", json={"name": "Gala writer", "voice": "warm"})
    assert resp.status_code == 200 and resp.json()["base_url"] == endpoint.url
    resp = member.post("/api/v1/agents", json={"type": "reviewer", "name": "House rules"})
    assert resp.status_code == 201 and resp.json()["provider"] == "builtin"
    builtin = starter(org)["writer_agent_id"]
    resp = member.patch(f"/api/v1/agents/{builtin}", json={"provider": "openai_compatible",
                                                           "base_url": endpoint.url, "model": "m"})
    assert resp.status_code == 403


def test_an_agent_saved_before_the_key_rule_never_sends_a_server_variable(api, stack, endpoint):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    with stack.db("campaigns") as conn, conn.cursor() as cur:  # as a row written before the fix
        cur.execute("UPDATE agents SET provider = 'openai_compatible', base_url = %s, model = 'm', "
                    "api_key_env = 'DATABASE_URL' WHERE id = %s",
                    (endpoint.url, campaign["writer_agent_id"]))
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"})
    assert resp.status_code == 201, resp.text
    [draft] = wait_for(lambda: [d for d in drafts_of(org, resp.json()["id"]) if d["status"] == "failed"],
                       what="the draft to fail")
    assert draft["error"] == ("writer failed: agent 'Starter writer': api_key_env DATABASE_URL is not "
                              "allowed (AGENT_API_KEY_ENVS); an owner or admin must change it")
    assert endpoint.requests == []  # nothing was sent, so no key either
    # Once an owner clears the variable, the next run reaches the endpoint without the secret.
    assert org.patch(f"/api/v1/agents/{campaign['writer_agent_id']}",
                     json={"api_key_env": None}).status_code == 200
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"})
    [draft] = wait_for(lambda: drafts_of(org, resp.json()["id"]), what="a draft")
    assert draft["status"] == "pending_approval" and draft["body"].startswith("Hi there")
    assert len(endpoint.requests) == 1
    assert stack.database_url not in str(endpoint.requests[0]["auth"])
