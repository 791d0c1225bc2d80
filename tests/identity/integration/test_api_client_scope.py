"""Revoking an API client from one organization removes that organization from its scope; the
client keeps working for its other organizations and is revoked entirely once none is left (or
at once, everywhere, by someone who manages every organization it still covers)."""
import base64
import uuid

from services.common import errors  # noqa: F401  (RPC errors then arrive as their classes)
from services.common.db import Tx
from tests.identity.helpers import PASSWORD, log_in, sign_up


def _basic(client):
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _two_orgs(api):
    owner = sign_up(api, org_name="Scope A")
    b = owner["api"].post("/api/v1/onboarding", json={"name": "Olivia Owner",
                                                      "organization_name": "Scope B"})
    assert b.status_code == 201, b.text
    a_id, b_id = owner["org_id"], b.json()["active_org_id"]
    return owner, api.as_(owner["token"], a_id), api.as_(owner["token"], b_id), a_id, b_id


def _token(api, client):
    return api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(client))


def test_revoking_a_client_in_one_organization_keeps_it_working_for_the_others(api, stack):
    owner, in_a, in_b, a_id, b_id = _two_orgs(api)
    client = in_a.post("/api/v1/api-clients", json={"name": "CRM", "org_ids": [a_id, b_id]}).json()
    assert client["org_ids"] == [a_id, b_id] and client["default_org_id"] == a_id
    access = _token(api, client).json()["access_token"]

    assert in_a.delete(f"/api/v1/api-clients/{client['id']}").status_code == 204
    assert [c["id"] for c in in_a.get("/api/v1/api-clients").json()] == []
    (in_b_view,) = in_b.get("/api/v1/api-clients").json()
    assert in_b_view["org_ids"] == [b_id] and in_b_view["default_org_id"] == b_id
    assert in_b_view["revoked_at"] is None
    with stack.rpc() as rpc:
        who = rpc.identity.authenticate_client(access)  # the token lost A at once
        assert who["org_ids"] == [b_id] and who["default_org_id"] == b_id
    fresh = _token(api, client)
    assert fresh.status_code == 200 and fresh.json()["scope"] == b_id
    # A again: not found there any more.
    assert in_a.delete(f"/api/v1/api-clients/{client['id']}").status_code == 404
    actions = [e["action"] for e in in_a.get("/api/v1/audit-log").json()["entries"]]
    assert actions[0] == "api_client.removed_from_organization"

    # B was the last organization: now the client is revoked with every token.
    assert in_b.delete(f"/api/v1/api-clients/{client['id']}").status_code == 204
    assert _token(api, client).status_code == 401
    with stack.rpc() as rpc:
        try:
            rpc.identity.authenticate_client(access)
            raise AssertionError("still valid")
        except Exception as err:
            assert type(err).__name__ == "Unauthorized"
    assert in_b.get("/api/v1/api-clients").json()[0]["revoked_at"] is not None
    assert in_b.get("/api/v1/audit-log").json()["entries"][0]["action"] == "api_client.revoked"


def test_a_manager_of_every_organization_of_a_client_can_revoke_it_everywhere_at_once(api):
    owner, in_a, in_b, a_id, b_id = _two_orgs(api)
    client = in_a.post("/api/v1/api-clients", json={"name": "Leaked", "org_ids": [a_id, b_id]}).json()
    # An admin of A only may not end the client for B.
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@example.org"
    assert in_a.post("/api/v1/team", json={"email": admin_email, "password": PASSWORD,
                                           "name": "Ada Admin", "role": "admin"}).status_code == 201
    admin = log_in(api, admin_email, org_id=a_id)
    refused = admin.delete(f"/api/v1/api-clients/{client['id']}?everywhere=true")
    assert refused.status_code == 403
    assert _token(api, client).status_code == 200
    # The owner of both can.
    assert in_a.delete(f"/api/v1/api-clients/{client['id']}?everywhere=true").status_code == 204
    assert _token(api, client).status_code == 401
    assert in_b.get("/api/v1/api-clients").json()[0]["revoked_at"] is not None
    for org in (in_a, in_b):
        assert org.get("/api/v1/audit-log").json()["entries"][0]["action"] == "api_client.revoked"


def test_store_writes_on_api_clients_are_scoped_by_organization(api, stack):
    """The SQL itself refuses to revoke a client through an organization it does not cover."""
    from services.identity import store
    first, second = sign_up(api), sign_up(api)
    client = first["api"].post("/api/v1/api-clients", json={"name": "Mine"}).json()
    with stack.db("identity") as conn:
        tx = Tx(conn)
        assert store.revoke_client(tx, second["org_id"], client["id"]) is None
        assert store.remove_client_org(tx, second["org_id"], client["id"]) is None
        conn.commit()
    assert _token(api, client).status_code == 200
    assert first["api"].get("/api/v1/api-clients").json()[0]["revoked_at"] is None
