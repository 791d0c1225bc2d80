"""Two organizations for the generated matrices: A (one teammate per role) and B (the other
tenant, whose ids A must never reach)."""
import time
import uuid

import pytest

from tests.identity.helpers import add_teammate, log_in, sign_up


@pytest.fixture(scope="module")
def tenants(api):
    a = sign_up(api, org_name=f"Tenant A {uuid.uuid4().hex[:6]}")
    b = sign_up(api, org_name=f"Tenant B {uuid.uuid4().hex[:6]}")
    roles = {"owner": a}
    for role in ("admin", "member", "viewer"):
        mate = add_teammate(a["api"], role)
        roles[role] = dict(mate, api=log_in(api, mate["email"]))
    b_mate = add_teammate(b["api"], "member")
    b_client = b["api"].post("/api/v1/api-clients", json={"name": "B client"}).json()
    # Some rows of other services in B, so the matrix aims at real ids there too. (Best effort:
    # a route that is not there yet is covered with random ids instead.)
    b["api"].post("/api/v1/contacts", json={"name": "Bea B", "email": f"bea-{uuid.uuid4().hex[:6]}@example.org"})
    b["api"].post("/api/v1/tags", json={"title": "B only", "kind": "contact"})
    # Give the campaigns service a moment to seed B's starter agents and campaign.
    deadline = time.time() + 5
    while time.time() < deadline:
        r = b["api"].get("/api/v1/agents")
        if r.status_code == 200 and r.json():
            break
        time.sleep(0.3)
    return {"a": a, "b": b, "roles": roles, "b_mate": b_mate, "b_client": b_client}
