"""The organization's default response campaign must be one of its own campaigns."""
import time
import uuid

from tests.identity.helpers import sign_up


def _a_campaign_of(org):
    deadline = time.time() + 10  # the starter campaign is seeded from organization_created
    while time.time() < deadline:
        r = org["api"].get("/api/v1/campaigns")
        if r.status_code == 200:
            body = r.json()
            items = body if isinstance(body, list) else body.get("items", [])
            if items:
                return items[0]["id"]
        time.sleep(0.3)
    created = org["api"].post("/api/v1/campaigns", json={"name": "Replies", "channel": "email"})
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_default_response_campaign_must_belong_to_the_organization(api):
    a, b = sign_up(api, org_name="Refs A"), sign_up(api, org_name="Refs B")
    b_campaign = _a_campaign_of(b)
    for foreign in (b_campaign, str(uuid.uuid4())):
        resp = a["api"].patch("/api/v1/organization", json={"default_response_campaign_id": foreign})
        assert resp.status_code == 400, resp.text
        assert resp.json()["errors"] == {"default_response_campaign_id": ["no such campaign"]}
    assert a["api"].get("/api/v1/organization").json()["default_response_campaign_id"] is None
    mine = _a_campaign_of(a)
    ok = a["api"].patch("/api/v1/organization", json={"default_response_campaign_id": mine})
    assert ok.status_code == 200 and ok.json()["default_response_campaign_id"] == mine
    cleared = a["api"].patch("/api/v1/organization", json={"default_response_campaign_id": None})
    assert cleared.status_code == 200 and cleared.json()["default_response_campaign_id"] is None
