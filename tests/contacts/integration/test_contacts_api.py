"""Contacts over HTTP with every service running: imports, bad files, contacts, tags, segments,
resolve for the run worker, consent and the opt-out event."""
import time
import uuid

from nameko.standalone.events import event_dispatcher

from tests.conftest import read_fixture

HANDMADE = {"email": "E-mail", "phone": "Mobile", "name": "Name", "timezone": "Timezone",
            "unsubscribe": {"sms": "SMS opt-out"}}
MAILCHIMP = {"email": "Email Address", "first_name": "First Name", "last_name": "Last Name",
             "phone": "Phone Number", "country": "CC", "timezone": "TIMEZONE", "tags": "TAGS"}


def post_file(api, data, mapping=None, name="leads.csv", **params):
    import json
    form = {"mapping": json.dumps(mapping)} if mapping is not None else {}
    return api.post("/api/v1/contacts/imports", files={"file": (name, data, "text/csv")}, data=form,
                    params=params)


def all_contacts(api, **params):
    out, after = [], None
    while True:
        page = api.get("/api/v1/contacts", params=dict(params, limit=500, **({"after": after} if after else {})))
        assert page.status_code == 200, page.text
        out += page.json()["contacts"]
        after = page.json()["next_cursor"]
        if not after:
            return out


def test_csv_upload_imports_in_the_request_and_reimport_creates_no_duplicates(owner):
    data = read_fixture("contacts", "tradeshow_leads_handmade.csv")
    first = post_file(owner, data, HANDMADE)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "completed"
    assert (body["counts"]["created"], body["counts"]["merged"], body["counts"]["rejected"]) == (15, 1, 2)
    assert [r["record"] for r in body["rejected"]] == [4, 10]
    again = post_file(owner, data, HANDMADE).json()
    assert (again["counts"]["created"], again["counts"]["unchanged"]) == (0, 15)
    assert len(all_contacts(owner)) == 15
    history = owner.get("/api/v1/contacts/imports").json()["imports"]
    assert len(history) == 2
    csv_text = owner.get(f"/api/v1/contacts/imports/{body['id']}/result.csv").text
    assert csv_text.splitlines()[0] == "record,outcome,contact_id,merged_into,reason,warnings"
    assert any(line.startswith("4,rejected,") for line in csv_text.splitlines())


def test_upload_answers_detected_columns_and_a_suggested_mapping(owner):
    resp = owner.post("/api/v1/contacts/uploads", files={
        "file": ("hubspot.csv", read_fixture("contacts", "hubspot-crm-exports-all-contacts-2026-11-30.csv"))})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["columns"][:4] == ["Record ID", "First Name", "Last Name", "Email"]
    mapping = body["suggested_mapping"]
    assert (mapping["email"], mapping["phone"], mapping["timezone"]) == ("Email", "Phone Number", "Time Zone")
    assert mapping["unsubscribe"] == {"email": "Unsubscribed from all email"}
    started = owner.post("/api/v1/contacts/imports", json={"upload_id": body["upload_id"],
                                                            "mapping": mapping, "mode": "sync"})
    assert started.status_code == 201, started.text
    assert started.json()["counts"]["created"] == 23


def test_bad_files_get_a_clear_4xx_and_write_nothing(owner):
    cases = [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40, HANDMADE, "binary"),
        (b"", HANDMADE, "empty"),
        (read_fixture("contacts", "tradeshow_leads_handmade.csv"), {"name": "Name"}, "e-mail or a phone"),
        (read_fixture("contacts", "tradeshow_leads_handmade.csv"), {"email": "Email Address"}, "no column"),
        (bytes((i * 7919) % 256 for i in range(5 * 1024 * 1024)), HANDMADE, "binary"),
    ]
    for data, mapping, words in cases:
        resp = post_file(owner, data, mapping)
        assert resp.status_code == 400, resp.text[:300]
        assert words in resp.text
    not_json = owner.post("/api/v1/contacts/imports", files={"file": ("a.csv", b"email\na@example.com\n")},
                          data={"mapping": "{not json"})
    assert not_json.status_code == 400
    assert all_contacts(owner) == []
    assert owner.get("/api/v1/contacts/imports").json()["imports"] == []


def test_large_file_imports_as_a_job_with_progress_and_downloadable_result(owner):
    lines = ["email,name,phone,plan"]
    for i in range(40000):
        lines.append(f"lead{i}@example.com,Lead {i},+1 202-555-01{i % 100:02d},{'gold' if i % 2 else 'basic'}")
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 2 * 1024 * 1024
    resp = post_file(owner, data, {"email": "email", "name": "name", "phone": "phone"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running")
    seen_progress = set()
    deadline = time.time() + 120
    while time.time() < deadline:
        job = owner.get(f"/api/v1/contacts/imports/{job['id']}").json()
        seen_progress.add(job["rows_done"])
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert job["status"] == "completed", job
    assert (job["rows_total"], job["rows_done"], job["counts"]["created"]) == (40000, 40000, 40000)
    result = owner.get(f"/api/v1/contacts/imports/{job['id']}/result.csv").text.splitlines()
    assert len(result) == 40001
    page = owner.get("/api/v1/contacts", params={"q": "lead39999@"}).json()
    assert page["contacts"][0]["custom"] == {"plan": "gold"}


def test_contact_crud_normalises_and_another_org_gets_404(owner, api):
    resp = owner.post("/api/v1/contacts", json={"name": "Ana Souza", "email": "  Ana.Souza@Example.COM ",
                                                "phone": "(202) 555-0143", "timezone": "america_slash_new_york"})
    assert resp.status_code == 201, resp.text
    ana = resp.json()
    assert (ana["email"], ana["phone"], ana["timezone"]) == ("ana.souza@example.com", "+12025550143",
                                                             "America/New_York")
    bad = owner.post("/api/v1/contacts", json={"email": "nope@", "timezone": "UTC+1"})
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"email", "timezone"}
    dup = owner.post("/api/v1/contacts", json={"email": "ana.souza@example.com"})
    assert dup.status_code == 409
    patched = owner.patch(f"/api/v1/contacts/{ana['id']}", json={"active": False})
    assert patched.json()["active"] is False
    other = _other_owner(api)
    assert other.get(f"/api/v1/contacts/{ana['id']}").status_code == 404
    assert other.patch(f"/api/v1/contacts/{ana['id']}", json={"name": "x"}).status_code == 404
    assert other.delete(f"/api/v1/contacts/{ana['id']}").status_code == 404
    assert owner.get("/api/v1/contacts/not-a-uuid").status_code == 404
    assert owner.delete(f"/api/v1/contacts/{ana['id']}").status_code == 204
    assert owner.get(f"/api/v1/contacts/{ana['id']}").status_code == 404


def _other_owner(api):
    tag = uuid.uuid4().hex[:8]
    body = api.post("/api/v1/signup", json={
        "organization": {"name": f"Other {tag}", "description": "x"},
        "owner": {"name": "Eve", "email": f"eve.{tag}@example.org",
                  "password": "correct horse battery staple 43"}}).json()
    return api.as_(body["token"], body["organization"]["id"])


def test_tags_segments_count_preview_and_why(owner):
    assert post_file(owner, read_fixture("contacts", "mailchimp_subscribed_members_export_7c2e41a0b9.csv"),
                     MAILCHIMP).status_code == 201
    tags = {t["title"]: t for t in owner.get("/api/v1/tags").json()}
    pilot = tags["Q1 pilot"]
    vip = owner.post("/api/v1/tags", json={"title": "Key accounts", "colour": "#7b5ea7"})
    assert vip.status_code == 201, vip.text
    vip = vip.json()
    assert vip["color"] == "#7b5ea7"
    ana = owner.get("/api/v1/contacts", params={"q": "ana.souza"}).json()["contacts"][0]
    tagged = owner.post(f"/api/v1/contacts/{ana['id']}/tags", json={"tag_ids": [vip["id"]]})
    assert "Key accounts" in tagged.json()["tags"]
    seg = owner.post("/api/v1/segments", json={"name": "Pilot in the US", "rules": {
        "match": "all", "rules": [{"type": "has_tag", "tag_id": pilot["id"]},
                                  {"type": "field", "field": "phone", "op": "contains", "value": "+1202"}]}})
    assert seg.status_code == 201, seg.text
    seg = seg.json()
    count = owner.get(f"/api/v1/segments/{seg['id']}/count").json()["count"]
    expected = [c for c in all_contacts(owner, tag_id=pilot["id"]) if (c["phone"] or "").startswith("+1202")]
    assert count == len(expected) > 0
    preview = owner.get(f"/api/v1/segments/{seg['id']}/preview", params={"limit": 5}).json()["contacts"]
    assert 0 < len(preview) <= 5
    why = owner.get(f"/api/v1/segments/{seg['id']}/contacts/{ana['id']}/why").json()
    assert why["member"] is True
    assert [r["description"] for r in why["rules"]] == ["has tag Q1 pilot", "phone contains +1202"]
    # Inactive tags stay on contacts but cannot be newly applied.
    owner.patch(f"/api/v1/tags/{vip['id']}", json={"active": False})
    other = owner.get("/api/v1/contacts", params={"q": "emily.hart"}).json()["contacts"][0]
    refused = owner.post(f"/api/v1/contacts/{other['id']}/tags", json={"tag_ids": [vip["id"]]})
    assert refused.status_code == 400
    assert "Key accounts" in owner.get(f"/api/v1/contacts/{ana['id']}").json()["tags"]
    # Bulk tagging by filter, and the list-form segment body the demo uses.
    bulk = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["EU list"], "filter": {"q": "example.net"}})
    assert bulk.status_code == 200 and bulk.json()["changed"] > 0
    list_form = owner.post("/api/v1/segments", json={"name": "EU", "match": "any",
                                                     "rules": [{"type": "has_tag", "tag_id": pilot["id"]}]})
    assert list_form.status_code == 201
    bad_rule = owner.post("/api/v1/segments", json={"name": "x", "rules": {"rules": [{"type": "nope"}]}})
    assert bad_rule.status_code == 400


def test_resolve_pages_by_keyset_and_never_returns_an_unsubscribed_address(owner, stack):
    post_file(owner, read_fixture("contacts", "hubspot-crm-exports-all-contacts-2026-11-30.csv"),
              {"email": "Email", "first_name": "First Name", "last_name": "Last Name",
               "phone": "Phone Number", "timezone": "Time Zone",
               "unsubscribe": {"email": "Unsubscribed from all email"}})
    seg = owner.post("/api/v1/segments", json={"name": "Everyone", "rules": {
        "match": "any", "rules": [{"type": "field", "field": "email", "op": "exists"},
                                  {"type": "field", "field": "phone", "op": "exists"}]}}).json()
    ctx = {"org_id": owner.org_id, "role": "system"}
    with stack.rpc() as rpc:
        assert rpc.contacts.segment_exists(ctx, seg["id"]) is True
        assert rpc.contacts.segment_exists({"org_id": str(uuid.uuid4())}, seg["id"]) is False
        seen, after = [], None
        while True:
            page = rpc.contacts.resolve_segment(ctx, {"segment_id": seg["id"], "channel": "email",
                                                      "after": after, "limit": 10})
            seen += page["contacts"]
            after = page["next_cursor"]
            if not after:
                break
        assert len(seen) == 23
        assert [c["id"] for c in seen] == sorted(c["id"] for c in seen)
        reasons = {}
        for c in seen:
            reasons.setdefault(c["skip_reason"], []).append(c)
        assert len(reasons["unsubscribed"]) == 3
        assert all(c["email"] is None and not c["reachable"] for c in reasons["unsubscribed"])
        assert len(reasons["no_email"]) == 1 and reasons["no_email"][0]["phone"] == "+12025550152"
        unsub_email = rpc.contacts.list_contacts(ctx, {"unsubscribed": "email"})["contacts"][0]["email"]
        assert rpc.contacts.reachable(ctx, {"channel": "email",
                                            "identifiers": [unsub_email, "isaac.romero@example.com"]}) == {
            unsub_email: False, "isaac.romero@example.com": True}
        found = rpc.contacts.find_contact(ctx, {"email": "ISAAC.ROMERO@example.com"})
        assert found["phone"] == "+12025550103"
        assert rpc.contacts.find_contact(ctx, {"phone": "(202) 555-0152"})["email"] is None
        assert rpc.contacts.find_contact(ctx, {"email": "nobody@example.com"}) is None


def test_opt_out_event_unsubscribes_once_with_its_source(owner, stack):
    owner.post("/api/v1/contacts", json={"name": "Mark Feld", "email": "mark.feld@example.org",
                                         "phone": "+12025550188"})
    dispatch = event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})
    event = {"event_id": str(uuid.uuid4()), "org_id": owner.org_id, "channel": "email",
             "identifier": "Mark.Feld@example.org", "source": "user_intent"}
    dispatch("messaging", "opt_out_requested", event)
    dispatch("messaging", "opt_out_requested", event)  # redelivered: no second history entry
    deadline = time.time() + 20
    mark = None
    while time.time() < deadline:
        mark = owner.get("/api/v1/contacts", params={"q": "mark.feld"}).json()["contacts"][0]
        if mark["unsubscribed"]["email"]:
            break
        time.sleep(0.2)
    assert mark["unsubscribed"] == {"email": True, "sms": False, "phone": False}
    time.sleep(1)
    detail = owner.get(f"/api/v1/contacts/{mark['id']}").json()
    assert [(h["channel"], h["source"]) for h in detail["unsubscribe_history"]] == [("email", "user_intent")]
