import uuid

import pytest


@pytest.fixture
def owner(api):
    """A fresh organization and its owner, signed in (through identity's sign-up)."""
    tag = uuid.uuid4().hex[:8]
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": f"Larkspur Labs {tag}", "description": "Contacts tests"},
        "owner": {"name": "Jordan Ellis", "email": f"jordan.{tag}@example.org",
                  "password": "correct horse battery staple 42"}})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return api.as_(body["token"], body["organization"]["id"])
