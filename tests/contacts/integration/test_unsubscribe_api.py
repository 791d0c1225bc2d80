"""The Unsubscribe API (spec 3.11) for machine clients: OAuth access tokens from identity,
newest-first listing with a cursor that carries the query, all-or-nothing batches with the spec's
item errors, updates in input order, E.164 phones, groups (kind, opt-out count, owner, users) whose
opt-outs block sending, organization scope and the 60 requests/minute limit."""
import base64
import json
import uuid

import pytest
import requests


def make_client(owner, stack, org_ids=None, name="CRM sync"):
    body = {"name": name}
    if org_ids:
        body["org_ids"] = org_ids
    created = owner.post("/api/v1/api-clients", json=body)
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


@pytest.fixture
def client(owner, stack):
    return make_client(owner, stack)


@pytest.fixture
def orgs(owner, api):
    """The owner's organization (`home`), a second one the owner also runs (`west`, created
    through onboarding) and another company's (`foreign`), each with its slug and a session."""
    tag = uuid.uuid4().hex[:8]
    home = owner.get("/api/v1/organization").json()
    made = owner.post("/api/v1/onboarding", json={"name": "Jordan Ellis",
                                                  "organization_name": f"Larkspur West {tag}"})
    assert made.status_code == 201, made.text
    west = made.json()["organization"]
    other = api.post("/api/v1/signup", json={
        "organization": {"name": f"Quillfeather Ltd {tag}", "description": "another company"},
        "owner": {"name": "Priya Raman", "email": f"priya.{tag}@example.net",
                  "password": "another horse battery staple 77"}})
    assert other.status_code == 201, other.text
    foreign = other.json()["organization"]
    return {
        "home": dict(home, api=owner),
        "west": dict(west, api=owner.as_(owner.token, west["id"])),
        "foreign": dict(foreign, api=api.as_(other.json()["token"], foreign["id"])),
    }


@pytest.fixture
def wide_client(owner, stack, orgs):
    """A client scoped to the owner's two organizations (home is its default), not the foreign one."""
    return make_client(owner, stack, org_ids=[orgs["home"]["id"], orgs["west"]["id"]])


def call(client, method, path, **kw):
    return client.request(method, client.base + path, timeout=60, **kw)


def add(client, channel, items, **target):
    resp = call(client, "POST", f"/unsubscribe/{channel}/add", json=dict(target, items=items))
    assert resp.status_code == 200, resp.text
    return resp.json()


def group(api, channel, name):
    resp = api.post("/api/v1/contacts/unsubscribe-groups", json={"channel": channel, "name": name})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def idents(page):
    return [d["identifier"] for d in page["data"]]


def test_add_lists_newest_first_and_is_idempotent(client, owner):
    owner.post("/api/v1/contacts", json={"email": "zoe.martin@example.org", "name": "Zoë Martin"})
    first = call(client, "POST", "/unsubscribe/email/add",
                 json={"items": ["Zoe.Martin@example.org", "oliver.grant@example.com"]})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["processed"] == 2 and body["group_id"] is None
    assert [u["identifier"] for u in body["updated"]] == ["zoe.martin@example.org", "oliver.grant@example.com"]
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


def test_updated_entries_come_back_in_input_order(client):
    # Stored order (mia, amy, then zed) and sorted order (amy, mia, zed) both differ from the input.
    add(client, "email", ["mia.kowalski@example.org", "amy.chen@example.org"])
    items = ["zed.okafor@example.org", "Amy.Chen@example.org", "mia.kowalski@example.org"]
    body = add(client, "email", items)
    assert body["processed"] == 3
    assert [u["identifier"] for u in body["updated"]] == [
        "zed.okafor@example.org", "amy.chen@example.org", "mia.kowalski@example.org"]
    assert all(u["unsubscribed"] is True for u in body["updated"])
    back = call(client, "POST", "/unsubscribe/email/remove",
                json={"items": ["mia.kowalski@example.org", "zed.okafor@example.org"]}).json()
    assert [(u["identifier"], u["unsubscribed"]) for u in back["updated"]] == [
        ("mia.kowalski@example.org", False), ("zed.okafor@example.org", False)]


def test_a_bad_item_fails_the_whole_batch_with_the_spec_error(client):
    for items, item_error, index in ((["ok@example.com", "not-an-email"], "invalid email format", 1),
                                     (["ok@example.com", "OK@example.com"], "duplicate identifier", 1),
                                     (["", "ok@example.com"], "missing identifier", 0)):
        resp = call(client, "POST", "/unsubscribe/email/add", json={"items": items})
        assert resp.status_code == 400
        assert (resp.json()["error"], resp.json()["item_error"], resp.json()["index"]) == (
            "invalid_item", item_error, index)
    bad_phone = call(client, "POST", "/unsubscribe/sms/add", json={"items": ["+12025550152", "12"]})
    assert bad_phone.json()["item_error"] == "invalid phone format"
    assert call(client, "GET", "/unsubscribe/email").json()["data"] == []
    assert call(client, "GET", "/unsubscribe/sms").json()["data"] == []


def test_phones_must_be_written_in_e164(client, owner):
    for shape in ("(202) 555-0143", "2025550143", "+1 202 555 0143", "+1-202-555-0143", "0012025550143"):
        resp = call(client, "POST", "/unsubscribe/sms/add", json={"items": ["+12025550199", shape]})
        assert resp.status_code == 400, (shape, resp.text)
        assert (resp.json()["error"], resp.json()["item_error"], resp.json()["index"]) == (
            "invalid_item", "invalid phone format", 1), shape
    assert call(client, "GET", "/unsubscribe/sms").json()["data"] == []  # all or nothing
    body = add(client, "phone", ["+12025550143", "+442079460018"])
    assert [u["identifier"] for u in body["updated"]] == ["+12025550143", "+442079460018"]
    # People typing into the admin UI and imports still write national shapes.
    contact = owner.post("/api/v1/contacts", json={"name": "Amara Osei", "phone": "(202) 555-0143"})
    assert contact.status_code == 201, contact.text
    assert contact.json()["phone"] == "+12025550143"
    assert contact.json()["unsubscribed"]["phone"] is True


def test_ten_thousand_items_pass_in_one_batch(client):
    items = [f"+1202555{i:04d}" for i in reversed(range(10000))]
    ok = call(client, "POST", "/unsubscribe/sms/add", json={"items": items})
    assert ok.status_code == 200, ok.text
    assert ok.json()["processed"] == 10000
    assert [u["identifier"] for u in ok.json()["updated"]] == items


def test_more_than_ten_thousand_items_is_a_request_error_not_an_item_error(client):
    too_many = call(client, "POST", "/unsubscribe/email/add",
                    json={"items": [f"person{i}@example.org" for i in range(10001)]})
    assert too_many.status_code == 400
    body = too_many.json()
    assert body["error"] == "invalid_request" and "item_error" not in body
    assert body["errors"] == {"items": ["10,001 items; at most 10,000"]}
    assert call(client, "GET", "/unsubscribe/email").json()["data"] == []


def test_a_cursor_alone_continues_the_same_organization_and_time_window(wide_client, orgs):
    west = orgs["west"]["slug"]
    add(wide_client, "email", ["early.bird@example.org"], org_slug=west)
    since = add(wide_client, "email", ["one@example.org"], org_slug=west)["updated"][0]["updated_at"]
    add(wide_client, "email", ["two@example.org"], org_slug=west)
    add(wide_client, "email", ["three@example.org"], org_slug=west)
    add(wide_client, "email", ["home.only@example.org"])  # the default organization's
    first = call(wide_client, "GET", "/unsubscribe/email",
                 params={"org_slug": west, "since": since, "limit": 2}).json()
    assert idents(first) == ["three@example.org", "two@example.org"] and first["has_more"] is True
    rest = call(wide_client, "GET", "/unsubscribe/email",
                params={"cursor": first["next_cursor"], "limit": 2}).json()
    assert idents(rest) == ["one@example.org"]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    assert idents(call(wide_client, "GET", "/unsubscribe/email").json()) == ["home.only@example.org"]


def test_a_cursor_alone_continues_the_same_group(wide_client, orgs):
    gid = group(orgs["west"]["api"], "email", "Product news")
    for address in ("ana@example.org", "ben@example.org", "cai@example.org"):
        add(wide_client, "email", [address], group_id=gid)
    add(wide_client, "email", ["dee@example.org"], org_slug=orgs["west"]["slug"])  # west's default
    first = call(wide_client, "GET", "/unsubscribe/email", params={"group_id": gid, "limit": 2}).json()
    assert first["group_id"] == gid and idents(first) == ["cai@example.org", "ben@example.org"]
    rest = call(wide_client, "GET", "/unsubscribe/email", params={"cursor": first["next_cursor"]}).json()
    assert rest["group_id"] == gid and idents(rest) == ["ana@example.org"] and rest["has_more"] is False


def test_a_cursor_with_targeting_params_or_edited_is_rejected(wide_client, owner, stack, orgs):
    west = orgs["west"]["slug"]
    gid = group(owner, "email", "Digest")
    add(wide_client, "email", ["a@example.org", "b@example.org"], group_id=gid)
    cursor = call(wide_client, "GET", "/unsubscribe/email",
                  params={"group_id": gid, "limit": 1}).json()["next_cursor"]
    for extra in ({"group_id": gid}, {"org_slug": west}, {"since": "2020-01-01T00:00:00Z"}):
        resp = call(wide_client, "GET", "/unsubscribe/email", params=dict(extra, cursor=cursor))
        assert resp.status_code == 400, extra
        assert resp.json()["error"] == "invalid_request"
        assert list(resp.json()["errors"]) == list(extra)
    body, mac = cursor.split(".")
    query = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert query["org"] == orgs["home"]["id"] and query["group_id"] == gid
    query["org"] = orgs["foreign"]["id"]
    forged = base64.urlsafe_b64encode(json.dumps(query).encode()).decode().rstrip("=") + "." + mac
    for bad in (forged, "bm90IGEgY3Vyc29y", cursor + "x"):
        resp = call(wide_client, "GET", "/unsubscribe/email", params={"cursor": bad})
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request"), bad
    other_channel = call(wide_client, "GET", "/unsubscribe/sms", params={"cursor": cursor})
    assert other_channel.status_code == 400
    other_client = make_client(owner, stack, name="Another sync")
    assert call(other_client, "GET", "/unsubscribe/email", params={"cursor": cursor}).status_code == 400
    assert idents(call(wide_client, "GET", "/unsubscribe/email", params={"cursor": cursor}).json()) == [
        "a@example.org"]


def test_groups_show_kind_opt_out_count_owner_and_the_organizations_using_them(wide_client, owner, orgs):
    home, west = orgs["home"]["slug"], orgs["west"]["slug"]
    news = group(owner, "email", "Newsletter")
    alerts = group(owner, "sms", "Alerts")
    west_news = group(orgs["west"]["api"], "email", "West newsletter")
    group(orgs["foreign"]["api"], "email", "Not yours")
    add(wide_client, "email", ["a@example.com", "b@example.com"], group_id=news)
    call(wide_client, "POST", "/unsubscribe/email/remove", json={"items": ["b@example.com"], "group_id": news})
    # A phone-number group serves SMS and voice: written through /phone, read through /sms.
    add(wide_client, "phone", ["+12025550177"], group_id=alerts)
    assert idents(call(wide_client, "GET", "/unsubscribe/sms", params={"group_id": alerts}).json()) == [
        "+12025550177"]
    assert idents(call(wide_client, "GET", "/unsubscribe/phone", params={"group_id": alerts}).json()) == [
        "+12025550177"]
    wrong_kind = call(wide_client, "POST", "/unsubscribe/sms/add", json={"items": ["+12025550178"], "group_id": news})
    assert wrong_kind.status_code == 400
    groups = {g["id"]: g for g in call(wide_client, "GET", "/unsubscribe-groups").json()["data"]}
    assert set(groups) == {news, alerts, west_news}
    shape = {k: groups[news][k] for k in ("name", "kind", "unsubscribes", "owner", "used_by")}
    assert shape == {"name": "Newsletter", "kind": "email", "unsubscribes": 1, "owner": home,
                     "used_by": [{"org": home, "channels": ["email"]}]}
    shape = {k: groups[alerts][k] for k in ("name", "kind", "unsubscribes", "owner", "used_by")}
    assert shape == {"name": "Alerts", "kind": "phone_number", "unsubscribes": 1, "owner": home,
                     "used_by": [{"org": home, "channels": ["sms", "phone"]}]}
    assert (groups[west_news]["owner"], groups[west_news]["unsubscribes"]) == (west, 0)


def test_a_group_opt_out_stops_sending_on_its_channels(client, owner, stack):
    contact = owner.post("/api/v1/contacts", json={"name": "Leila Haddad", "email": "leila@example.org",
                                                   "phone": "+12025550166"}).json()
    segment = owner.post("/api/v1/segments", json={"name": "Reachable by e-mail", "rules": {
        "match": "all", "rules": [{"type": "reachable", "channel": "email"}]}}).json()
    assert owner.get(f"/api/v1/segments/{segment['id']}/count").json()["count"] == 1
    news = group(owner, "email", "Newsletter")
    alerts = group(owner, "sms", "Alerts")
    add(client, "email", ["leila@example.org"], group_id=news)
    add(client, "sms", ["+12025550166"], group_id=alerts)
    seen = owner.get(f"/api/v1/contacts/{contact['id']}").json()
    assert seen["unsubscribed"] == {"email": True, "sms": True, "phone": True}
    assert seen["reachable"] == {"email": False, "sms": False, "phone": False}
    assert owner.get(f"/api/v1/segments/{segment['id']}/count").json()["count"] == 0
    for channel in ("email", "sms", "phone"):  # the list's filter agrees with the flags
        listed = owner.get("/api/v1/contacts", params={"unsubscribed": channel}).json()["contacts"]
        assert [c["id"] for c in listed] == [contact["id"]], channel
    ctx = {"org_id": owner.org_id}
    with stack.rpc() as rpc:
        assert rpc.contacts.reachable(ctx, {"channel": "email", "identifiers": [
            "leila@example.org", "nobody@example.org"]}) == {"leila@example.org": False, "nobody@example.org": True}
        for channel in ("sms", "phone"):
            assert rpc.contacts.reachable(ctx, {"channel": channel, "identifiers": ["+12025550166"]}) == {
                "+12025550166": False}, channel
    # The default group was not touched: its listing is empty. Opting back in within the group
    # makes the contact reachable again.
    assert call(client, "GET", "/unsubscribe/email").json()["data"] == []
    call(client, "POST", "/unsubscribe/email/remove", json={"items": ["leila@example.org"], "group_id": news})
    assert owner.get(f"/api/v1/contacts/{contact['id']}").json()["reachable"]["email"] is True


def test_groups_scope_and_auth(wide_client, owner, orgs):
    gid = group(owner, "email", "Newsletter")
    added = call(wide_client, "POST", "/unsubscribe/email/add", json={"items": ["a@example.com"], "group_id": gid})
    assert added.json()["group_id"] == gid
    assert idents(call(wide_client, "GET", "/unsubscribe/email", params={"group_id": gid}).json()) == [
        "a@example.com"]
    assert call(wide_client, "GET", "/unsubscribe/email").json()["data"] == []  # org-wide list untouched
    # Another company's real group and organization: outside this credential's scope.
    foreign_group = group(orgs["foreign"]["api"], "email", "Their newsletter")
    for method, path, kw in (
            ("GET", "/unsubscribe/email", {"params": {"group_id": foreign_group}}),
            ("POST", "/unsubscribe/email/add", {"json": {"items": ["x@example.com"], "group_id": foreign_group}}),
            ("GET", "/unsubscribe/email", {"params": {"org_slug": orgs["foreign"]["slug"]}}),
            ("POST", "/unsubscribe/email/add", {"json": {"items": ["x@example.com"], "org_slug": orgs["foreign"]["slug"]}})):
        resp = call(wide_client, method, path, **kw)
        assert resp.status_code == 403 and resp.json()["error"] == "unauthorized_organization", (path, kw)
    their = orgs["foreign"]["api"].get("/api/v1/contacts", params={"unsubscribed": "email"}).json()["contacts"]
    assert their == []
    # org_slug names one of the client's organizations.
    west = orgs["west"]["slug"]
    assert add(wide_client, "email", ["w@example.com"], org_slug=west)["group_id"] is None
    assert idents(call(wide_client, "GET", "/unsubscribe/email", params={"org_slug": west}).json()) == ["w@example.com"]
    assert idents(call(wide_client, "GET", "/unsubscribe/email",
                       params={"org_slug": orgs["home"]["slug"]}).json()) == []
    both = call(wide_client, "GET", "/unsubscribe/email", params={"group_id": gid, "org_slug": west})
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    both = call(wide_client, "POST", "/unsubscribe/email/add",
                json={"items": ["y@example.com"], "group_id": gid, "org_slug": west})
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    base = wide_client.base
    assert requests.get(base + "/unsubscribe/email", timeout=10).status_code == 401
    assert requests.get(base + "/unsubscribe/email", timeout=10,
                        headers={"Authorization": "Bearer tru_at_nope"}).status_code == 401
    # A user's session token is not an API credential.
    assert requests.get(base + "/unsubscribe/email", timeout=10,
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
