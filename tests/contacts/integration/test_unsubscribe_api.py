"""The Unsubscribe API (spec 3.11) for machine clients: OAuth access tokens from identity,
newest-first listing with cursor, all-or-nothing batches with the spec's item errors,
idempotence, groups, organization scope and the 60 requests/minute limit."""
import uuid

import pytest
import requests


@pytest.fixture
def client(owner, stack):
    created = owner.post("/api/v1/api-clients", json={"name": "CRM sync"})
    assert created.status_code == 201, created.text
    cred = created.json()
    token = requests.post(f"{stack.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(cred["client_id"], cred["client_secret"]), timeout=30)
    assert token.status_code == 200, token.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    session.base = f"{stack.url}/api/v1"
    session.client_id = cred["client_id"]
    return session


def call(client, method, path, **kw):
    return client.request(method, client.base + path, timeout=30, **kw)


def test_add_lists_newest_first_and_is_idempotent(client, owner):
    owner.post("/api/v1/contacts", json={"email": "zoe.martin@example.org", "name": "Zoë Martin"})
    first = call(client, "POST", "/unsubscribe/email/add",
                 json={"items": ["Zoe.Martin@example.org", "oliver.grant@example.com"]})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["processed"] == 2 and body["group_id"] is None
    assert {u["identifier"] for u in body["updated"]} == {"zoe.martin@example.org", "oliver.grant@example.com"}
    call(client, "POST", "/unsubscribe/email/add", json={"items": [{"identifier": "ben.adler@example.org"}]})
    again = call(client, "POST", "/unsubscribe/email/add", json={"items": ["zoe.martin@example.org"]})
    assert again.status_code == 200
    listing = call(client, "GET", "/unsubscribe/email", params={"limit": 2}).json()
    assert listing["has_more"] is True and len(listing["data"]) == 2
    assert listing["data"][0]["identifier"] == "ben.adler@example.org"
    rest = call(client, "GET", "/unsubscribe/email", params={"cursor": listing["next_cursor"]}).json()
    assert [d["identifier"] for d in rest["data"]] and rest["has_more"] is False
    assert len(listing["data"]) + len(rest["data"]) == 3
    zoe = owner.get("/api/v1/contacts", params={"q": "zoe.martin"}).json()["contacts"][0]
    assert zoe["unsubscribed"]["email"] is True
    history = owner.get(f"/api/v1/contacts/{zoe['id']}").json()["unsubscribe_history"]
    assert [(h["source"], h["unsubscribed"]) for h in history] == [("api", True)]
    removed = call(client, "POST", "/unsubscribe/email/remove", json={"items": ["zoe.martin@example.org"]})
    assert removed.json()["updated"][0]["unsubscribed"] is False
    assert owner.get(f"/api/v1/contacts/{zoe['id']}").json()["unsubscribed"]["email"] is False


def test_a_bad_item_fails_the_whole_batch_with_the_spec_error(client):
    for items, item_error in ((["ok@example.com", "not-an-email"], "invalid email format"),
                              (["ok@example.com", "OK@example.com"], "duplicate identifier"),
                              (["ok@example.com", ""], "missing identifier")):
        resp = call(client, "POST", "/unsubscribe/email/add", json={"items": items})
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_item" and resp.json()["item_error"] == item_error
    bad_phone = call(client, "POST", "/unsubscribe/sms/add", json={"items": ["+12025550152", "12"]})
    assert bad_phone.json()["item_error"] == "invalid phone format"
    too_many = call(client, "POST", "/unsubscribe/sms/add",
                    json={"items": [f"+1202555{i:04d}" for i in range(10001)]})
    assert too_many.status_code == 400
    assert call(client, "GET", "/unsubscribe/email").json()["data"] == []
    assert call(client, "GET", "/unsubscribe/sms").json()["data"] == []


def test_groups_scope_and_auth(client, owner, api):
    group = owner.post("/api/v1/contacts/unsubscribe-groups",
                       json={"channel": "email", "name": "Newsletter"})
    assert group.status_code == 201, group.text
    gid = group.json()["id"]
    groups = call(client, "GET", "/unsubscribe-groups").json()["data"]
    assert [g["id"] for g in groups] == [gid]
    added = call(client, "POST", "/unsubscribe/email/add", json={"items": ["a@example.com"], "group_id": gid})
    assert added.json()["group_id"] == gid
    assert [d["identifier"] for d in call(client, "GET", "/unsubscribe/email",
                                          params={"group_id": gid}).json()["data"]] == ["a@example.com"]
    assert call(client, "GET", "/unsubscribe/email").json()["data"] == []  # org-wide list untouched
    foreign = call(client, "GET", "/unsubscribe/email", params={"group_id": str(uuid.uuid4())})
    assert foreign.status_code == 403 and foreign.json()["error"] == "unauthorized_organization"
    assert requests.get(client.base + "/unsubscribe/email", timeout=10).status_code == 401
    assert requests.get(client.base + "/unsubscribe/email", timeout=10,
                        headers={"Authorization": "Bearer tru_at_nope"}).status_code == 401
    # A user's session token is not an API credential.
    assert requests.get(client.base + "/unsubscribe/email", timeout=10,
                        headers={"Authorization": f"Bearer {owner.token}"}).status_code == 401


def test_sixty_requests_a_minute_per_client_then_429_with_retry_after(client):
    statuses = [call(client, "GET", "/unsubscribe/sms").status_code for _ in range(60)]
    assert statuses == [200] * 60
    last = call(client, "GET", "/unsubscribe/sms")
    assert last.status_code == 429
    assert 1 <= int(last.headers["Retry-After"]) <= 60


def test_the_limit_is_shared_by_every_gateway_process(client, stack):
    """The count lives in PostgreSQL: requests another gateway process let through (counted
    through the same RPC) leave this one fewer."""
    first = call(client, "GET", "/unsubscribe/sms")
    assert first.status_code == 200
    conn = stack.db("contacts")
    cur = conn.cursor()
    cur.execute("SELECT sum(count) FROM api_rate_counts WHERE client_id = %s", (client.client_id,))
    assert cur.fetchone()[0] == 1
    conn.close()
    client_id = client.client_id
    with stack.rpc() as rpc:  # another gateway's 50 requests
        for _ in range(50):
            rpc.contacts.count_api_request(client_id)
    statuses = [call(client, "GET", "/unsubscribe/sms").status_code for _ in range(12)]
    assert 429 in statuses and statuses.count(200) <= 10, statuses
