"""Contact search and bulk tagging select what the list selects; inactive tags are refused where a
person names them; an import's result lists every outcome and says what the mapping covered;
SFTP sources record failed syncs; uploads never imported are purged."""
import datetime
import json
import os

from tests.conftest import read_fixture

HANDMADE = {"email": "E-mail", "phone": "Mobile", "name": "Name", "timezone": "Timezone",
            "unsubscribe": {"sms": "SMS opt-out"}}


def post_file(api, data, mapping, name="leads.csv", **params):
    return api.post("/api/v1/contacts/imports", files={"file": (name, data, "text/csv")},
                    data={"mapping": json.dumps(mapping)}, params=params)


def emails(resp):
    assert resp.status_code == 200, resp.text
    return sorted(c["email"] for c in resp.json()["contacts"])


def test_phone_search_matches_the_digits_however_they_are_typed(owner):
    owner.post("/api/v1/contacts", json={"email": "laura.chen@example.com", "phone": "+12025550106"})
    owner.post("/api/v1/contacts", json={"email": "kwame@example.com", "phone": "+12025550185"})
    for typed in ("(202) 555-0106", "202 555 0106", "555-0106", "+1 202 555 0106"):
        assert emails(owner.get("/api/v1/contacts", params={"q": typed})) == ["laura.chen@example.com"], typed
    assert emails(owner.get("/api/v1/contacts", params={"q": "202 555"})) == [
        "kwame@example.com", "laura.chen@example.com"]
    # LIKE's wildcards are searched for, not obeyed.
    assert emails(owner.get("/api/v1/contacts", params={"q": "%"})) == []
    assert emails(owner.get("/api/v1/contacts", params={"q": "laura_chen"})) == []


def test_bulk_tagging_by_filter_honours_the_created_range(owner):
    early = owner.post("/api/v1/contacts", json={"email": "early@example.org"}).json()
    cut = datetime.datetime.fromisoformat(early["created_at"]) + datetime.timedelta(microseconds=1)
    late = owner.post("/api/v1/contacts", json={"email": "late@example.org"}).json()
    assert datetime.datetime.fromisoformat(late["created_at"]) > cut
    resp = owner.post("/api/v1/contacts/bulk-tags", json={
        "tags": ["Early birds"], "filter": {"created_from": cut.isoformat()}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["changed"] == 1
    assert owner.get(f"/api/v1/contacts/{late['id']}").json()["tags"] == ["Early birds"]
    assert owner.get(f"/api/v1/contacts/{early['id']}").json()["tags"] == []


def test_an_inactive_tag_is_refused_on_a_contact_but_stays_where_it_was(owner):
    contact = owner.post("/api/v1/contacts", json={"email": "ivy@example.org", "tags": ["Trade show"]}).json()
    tag = [t for t in owner.get("/api/v1/tags").json() if t["title"] == "Trade show"][0]
    assert owner.patch(f"/api/v1/tags/{tag['id']}", json={"active": False}).status_code == 200
    created = owner.post("/api/v1/contacts", json={"email": "new@example.org", "tags": ["trade show"]})
    assert created.status_code == 400, created.text
    assert "inactive" in created.json()["errors"]["tags"][0]
    listed = owner.get("/api/v1/contacts", params={"q": "new@example.org"}).json()["contacts"]
    assert listed == []  # nothing half-written
    other = owner.post("/api/v1/contacts", json={"email": "other@example.org"}).json()
    patched = owner.patch(f"/api/v1/contacts/{other['id']}", json={"tags": ["Trade show"]})
    assert patched.status_code == 400, patched.text
    # The contact that carries it keeps it, and may send it again with a new one.
    again = owner.patch(f"/api/v1/contacts/{contact['id']}", json={"tags": ["Trade show", "VIP"]})
    assert again.status_code == 200, again.text
    assert sorted(again.json()["tags"]) == ["Trade show", "VIP"]


def test_reimporting_a_file_naming_an_inactive_tag_is_unchanged_not_updated(owner):
    data = b"Email,Tags\r\nana@example.com,Webinar\r\nben@example.com,Webinar\r\n"
    mapping = {"email": "Email", "tags": "Tags"}
    first = post_file(owner, data, mapping).json()
    assert first["counts"]["created"] == 2
    tag = [t for t in owner.get("/api/v1/tags").json() if t["title"] == "Webinar"][0]
    owner.patch(f"/api/v1/tags/{tag['id']}", json={"active": False})
    owner.post("/api/v1/contacts", json={"email": "cara@example.com"})
    again = post_file(owner, data + b"cara@example.com,Webinar\r\n", mapping).json()
    assert (again["counts"]["unchanged"], again["counts"]["updated"]) == (3, 0), again["counts"]
    cara = owner.get("/api/v1/contacts", params={"q": "cara@"}).json()["contacts"][0]
    assert cara["tags"] == []


def test_the_import_result_lists_created_records_and_a_mapping_summary(owner):
    body = post_file(owner, read_fixture("contacts", "tradeshow_leads_handmade.csv"), HANDMADE).json()
    assert body["status"] == "completed"
    created = [r["record"] for r in body["created"]]
    assert len(created) == body["counts"]["created"] == 15
    assert all("contact_id" in r for r in body["created"])
    assert body["details_truncated"] is False
    summary = body["summary"]
    assert summary["mapped"] == {"email": "E-mail", "phone": "Mobile", "name": "Name",
                                 "timezone": "Timezone"}
    assert summary["unmapped"] == []
    assert summary["contacts"] == 15
    contacts = owner.get("/api/v1/contacts", params={"limit": 100}).json()["contacts"]
    assert summary["contacts_without"] == {
        "email": sum(1 for c in contacts if not c["email"]),
        "phone": sum(1 for c in contacts if not c["phone"]),
        "timezone": sum(1 for c in contacts if c["timezone"] is None
                        or c.get("timezone_source") == "default")}


def test_the_summary_names_key_fields_the_mapping_left_out(owner):
    data = b"Email,Name\r\nana@example.com,Ana\r\nben@example.com,\r\n"
    body = post_file(owner, data, {"email": "Email"}).json()
    assert body["summary"]["mapped"] == {"email": "Email"}
    assert body["summary"]["unmapped"] == ["phone", "name", "timezone"]
    assert body["summary"]["contacts_without"] == {"email": 0, "phone": 2, "timezone": 2}


def test_fifty_megabytes_of_text_garbage_is_refused_and_imports_nothing(owner):
    garbage = os.urandom(3 * 1024 * 1024).hex().encode()  # 6 MB of one hex "cell" per line...
    data = b"\n".join(garbage[i:i + 100] for i in range(0, len(garbage), 100))
    data = (data + b"\n") * 9  # ...repeated past 50 MB
    assert len(data) > 50 * 1024 * 1024
    resp = post_file(owner, data, HANDMADE, name="contacts.csv")
    assert 400 <= resp.status_code < 500, resp.text[:500]
    assert resp.json()["errors"], resp.text[:500]
    assert owner.get("/api/v1/contacts").json()["contacts"] == []


def test_uploads_never_imported_are_purged_after_a_day(owner, stack):
    first = owner.post("/api/v1/contacts/uploads", files={
        "file": ("a.csv", b"Email\r\nana@example.com\r\n")}).json()
    kept = owner.post("/api/v1/contacts/uploads", files={
        "file": ("b.csv", b"Email\r\nben@example.com\r\n")}).json()
    used = owner.post("/api/v1/contacts/imports", json={"upload_id": kept["upload_id"],
                                                       "mapping": {"email": "Email"}, "mode": "sync"})
    assert used.status_code == 201, used.text
    conn = stack.db("contacts")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("UPDATE uploads SET created_at = now() - interval '25 hours' WHERE id = ANY(%s::uuid[])",
                ([first["upload_id"], kept["upload_id"]],))
    from services.contacts import imports
    from services.contacts.import_worker import Tx
    assert imports.purge_stale_uploads(Tx(conn)) >= 1
    cur.execute("SELECT id::text FROM uploads WHERE id = ANY(%s::uuid[])",
                ([first["upload_id"], kept["upload_id"]],))
    assert [r[0] for r in cur.fetchall()] == [kept["upload_id"]]
    cur.execute("SELECT count(*) FROM upload_chunks WHERE upload_id = %s", (first["upload_id"],))
    assert cur.fetchone()[0] == 0
    conn.close()
