"""Defects a tester and a reviewer found, over HTTP with every service running: files that lost
records silently, a bulk-tag filter and segment rules that answered 500, UTF-16 exports."""
import json
import time

import pytest
from psycopg2.extras import Json


def post_file(api, data, mapping, name="leads.csv", **params):
    return api.post("/api/v1/contacts/imports", files={"file": (name, data, "text/csv")},
                    data={"mapping": json.dumps(mapping)}, params=params)


def contacts_of(api):
    return api.get("/api/v1/contacts", params={"limit": 100}).json()["contacts"]


# -- 1. malformed quoting ---------------------------------------------------------------------

UNTERMINATED = b'Email,b\n"unterminated@example.org,1\nx@example.org,3\ny@example.org,4\n'


def test_an_unterminated_quote_is_refused_with_400_naming_the_record_and_nothing_is_written(owner):
    resp = post_file(owner, UNTERMINATED, {"email": "Email"})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert "record 1 (line 2): a quoted cell is never closed (unterminated quote)" in body["message"]
    assert contacts_of(owner) == []


def test_an_unterminated_quote_fails_a_queued_import_with_the_reason(owner):
    # In the first record it is found before the import is queued: 400 at once.
    resp = post_file(owner, UNTERMINATED, {"email": "Email"}, mode="job")
    assert resp.status_code == 400, resp.text
    assert "record 1 (line 2): a quoted cell is never closed" in resp.json()["message"]
    # Deeper in the file, the queued import finds it and fails with the reason.
    deeper = b"Email,b\n" + b"".join(b"r%d@example.org,%d\n" % (i, i) for i in range(3)) + (
        UNTERMINATED.split(b"\n", 1)[1])
    resp = post_file(owner, deeper, {"email": "Email"}, mode="job")
    assert resp.status_code == 202, resp.text
    deadline = time.time() + 30
    while time.time() < deadline:
        job = owner.get(f"/api/v1/contacts/imports/{resp.json()['id']}").json()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.1)
    assert job["status"] == "failed"
    assert "record 4 (line 5)" in job["error"] and "unterminated quote" in job["error"]
    assert contacts_of(owner) == []


# -- 2. short rows ------------------------------------------------------------------------------

def test_a_one_cell_row_is_imported_not_dropped_as_a_footer(owner):
    resp = post_file(owner, b"Email,b\na@example.org,1,extra,extra\nb@example.org\n",
                     {"email": "Email"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["counts"]["records"], body["counts"]["created"]) == (2, 2)
    assert sorted(c["email"] for c in contacts_of(owner)) == ["a@example.org", "b@example.org"]


def test_a_one_cell_row_without_an_address_is_rejected_with_a_reason(owner):
    resp = post_file(owner, b"Email,Name\r\na@example.org,Ann\r\nsee notes below\r\n"
                            b'"Grand Totals (2 records)"\r\n', {"email": "Email", "name": "Name"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["counts"]["records"], body["counts"]["created"], body["counts"]["rejected"]) == (2, 1, 1)
    assert body["rejected"][0]["record"] == 2 and body["rejected"][0]["reason"]


# -- 5. UTF-16 ----------------------------------------------------------------------------------

def test_excel_unicode_text_utf16_tab_separated_imports(owner):
    text = "Email\tFirst Name\tLast Name\r\nzoe@example.org\tZoë\tÅngström\r\nwang@example.org\t芳\t王\r\n"
    data = b"\xff\xfe" + text.encode("utf-16-le")
    up = owner.post("/api/v1/contacts/uploads", files={"file": ("unicode.txt", data)})
    assert up.status_code == 201, up.text
    assert (up.json()["delimiter"], up.json()["columns"]) == ("\t", ["Email", "First Name", "Last Name"])
    resp = owner.post("/api/v1/contacts/imports", json={
        "upload_id": up.json()["upload_id"], "mode": "sync",
        "mapping": {"email": "Email", "first_name": "First Name", "last_name": "Last Name"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["counts"]["created"] == 2
    names = {c["email"]: c["name"] for c in contacts_of(owner)}
    assert names == {"zoe@example.org": "Zoë Ångström", "wang@example.org": "芳 王"}


# -- 3. bulk-tag filter -------------------------------------------------------------------------

def test_a_bulk_tag_filter_is_checked_like_the_list_query(owner):
    resp = owner.post("/api/v1/contacts/bulk-tags", json={"tags": [], "filter": {"q": 1}})
    assert resp.status_code == 400, resp.text
    assert "filter.q" in resp.json()["errors"]
    resp = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["VIP"], "filter": {"has_email": "maybe"}})
    assert resp.status_code == 400 and "filter.has_email" in resp.json()["errors"]
    owner.post("/api/v1/contacts", json={"email": "ivy.chen@example.org", "name": "Ivy Chen"})
    ok = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["VIP"], "filter": {"q": "ivy"}})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"changed": 1}


# -- 4. segment rules ---------------------------------------------------------------------------

def test_segment_rules_with_bad_values_are_refused_when_saved_naming_the_rule(owner):
    cases = [
        ({"type": "created", "from": "yesterday", "to": "2026-13-45"}, "rules.rules.0.from"),
        ({"type": "created", "from": "2026-01-01", "to": "2026-13-45"}, "rules.rules.0.to"),
        ({"type": "custom", "key": "a", "op": "gte", "value": {"a": 1}}, "rules.rules.0.value"),
        ({"type": "custom", "key": "a", "op": "gt", "value": "abc"}, "rules.rules.0.value"),
        ({"type": "custom", "key": "a", "op": "equals", "value": ["x"]}, "rules.rules.0.value"),
        ({"type": "has_tag", "tag_id": "not-a-uuid"}, "rules.rules.0.tag_id"),
    ]
    for rule, path in cases:
        resp = owner.post("/api/v1/segments", json={"name": "Bad", "rules": [rule]})
        assert resp.status_code == 400, (rule, resp.text)
        assert path in resp.json()["errors"], (rule, resp.json())
    good = owner.post("/api/v1/segments", json={"name": "Recent", "rules": [
        {"type": "updated", "from": "2026-01-01T00:00:00Z"}]})
    assert good.status_code == 201, good.text
    patch = owner.patch(f"/api/v1/segments/{good.json()['id']}",
                        json={"rules": [{"type": "updated", "from": "soon"}]})
    assert patch.status_code == 400 and "rules.rules.0.from" in patch.json()["errors"]
    assert owner.get(f"/api/v1/segments/{good.json()['id']}/preview").status_code == 200
    assert owner.get("/api/v1/segments").json()[0]["rules"]["rules"][0]["from"] == "2026-01-01T00:00:00Z"


def test_a_bad_rule_stored_before_validation_answers_400_naming_it_never_500(owner, stack):
    created = owner.post("/api/v1/contacts", json={"email": "ada.byron@example.org"}).json()
    seg = owner.post("/api/v1/segments", json={"name": "Legacy", "rules": [
        {"type": "field", "field": "email", "op": "exists"}]}).json()
    conn = stack.db("contacts")
    conn.autocommit = True
    # As saved before the rules' values were checked.
    conn.cursor().execute("UPDATE segments SET rules = %s WHERE id = %s", (Json({"match": "all", "rules": [
        {"type": "field", "field": "email", "op": "exists"},
        {"type": "created", "from": "yesterday", "to": "2026-13-45"}]}), seg["id"]))
    conn.close()
    for path in (f"/api/v1/segments/{seg['id']}/count", f"/api/v1/segments/{seg['id']}/preview",
                 f"/api/v1/segments/{seg['id']}/contacts/{created['id']}/why"):
        resp = owner.get(path)
        assert resp.status_code == 400, (path, resp.text)
        body = resp.json()
        assert "rules.rules.1.from" in body["errors"] and "Legacy" in body["message"], body
    listed = owner.get("/api/v1/contacts", params={"segment_id": seg["id"]})
    assert listed.status_code == 400 and "rules.rules.1.from" in listed.json()["errors"]
    with stack.rpc() as rpc:
        with pytest.raises(Exception) as err:  # the run worker's page: Invalid, not a crash
            rpc.contacts.resolve_segment({"org_id": owner.org_id, "role": "system"},
                                         {"segment_id": seg["id"], "channel": "email"})
    assert type(err.value).__name__ in ("Invalid", "RemoteError"), err.value
    assert "rules.rules.1.from" in repr(err.value.__dict__) + str(err.value), err.value


# -- files a new user sent by mistake (found by a fresh-clone tryout) ---------------------------

def _uploads_of(stack, org_id):
    conn = stack.db("contacts")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM uploads WHERE org_id = %s", (org_id,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_header_without_records_is_refused_in_one_step_or_two(owner, stack):
    before = _uploads_of(stack, owner.org_id)
    resp = post_file(owner, b"Email,Phone,Name\n", {"email": "Email"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"]["file"] == ["the file has a header row but no records"]
    assert _uploads_of(stack, owner.org_id) == before  # the refused file is not kept
    resp = owner.post("/api/v1/contacts/uploads", files={"file": ("h.csv", b"Email,Name")})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"]["file"] == ["the file has a header row but no records"]
    assert _uploads_of(stack, owner.org_id) == before
    assert contacts_of(owner) == []


def test_text_with_no_line_break_or_thousands_of_columns_is_not_taken_for_a_csv(owner, stack):
    org = owner.org_id
    before = _uploads_of(stack, org)
    one_line = b"x|" * (3 * 1024 * 1024)  # 6 MB of printable text, no line break
    resp = owner.post("/api/v1/contacts/uploads", files={"file": ("g.txt", one_line)})
    assert resp.status_code == 400, resp.text[:300]
    assert "no line break in the first 64 KB" in resp.json()["errors"]["file"][0]
    wide = (",".join(f"c{i}" for i in range(1500)) + "\na@example.org\n").encode()
    resp = post_file(owner, wide, {"email": "c0"})
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["errors"]["file"] == ["the header has 1500 columns; at most 1000"]
    assert _uploads_of(stack, org) == before  # nothing stored


def test_cells_past_the_header_and_names_over_several_lines_are_warned(owner):
    data = (b'Email,Name\nex@example.org,Ex,extra1,extra2\nq1@example.org,"Ann\n'
            b'q2@example.org,Bob"\nq3@example.org,Cy\n')
    body = post_file(owner, data, {"email": "Email", "name": "Name"}).json()
    assert body["counts"]["created"] == 3, body
    assert {(w["record"], w["field"], w["message"]) for w in body["warnings"]} == {
        (1, "record", "2 cell(s) past the header's last column: ignored"),
        (2, "name", "the name's cell spans several lines (joined into one): a quote left open"
                    " in the file makes one cell of several records")}


def test_columns_without_a_name_are_not_custom_data_however_many(owner):
    body = post_file(owner, b"Email,,Name,\neh@example.org,x,EH,y\n", {"email": "Email"}).json()
    assert body["counts"]["created"] == 1, body
    [contact] = contacts_of(owner)
    assert contact["custom"] == {"Name": "EH"}


def test_a_bad_mode_is_refused_before_the_file_is_stored(owner, stack):
    org = owner.org_id
    before = _uploads_of(stack, org)
    resp = post_file(owner, b"Email\na@example.org\n", {"email": "Email"}, mode="later")
    assert resp.status_code == 400 and resp.json()["errors"] == {"mode": ["sync or job"]}, resp.text
    assert _uploads_of(stack, org) == before


def _documented(api, path, status):
    """The property names the OpenAPI document gives for a route's POST response, and its
    request body's content types."""
    doc = api.get("/api/openapi.json").json()
    op = doc["paths"][path]["post"]
    schema = op["responses"][status]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return set(schema["properties"]), op["requestBody"]["content"]


def test_the_openapi_document_describes_upload_and_import_bodies_and_every_field_they_answer(owner):
    """A strict client generated from the document must accept the real answers: every key of
    an upload's, a sync import's and a queued import's answer is a documented property; the
    multipart forms are documented."""
    fields, content = _documented(owner, "/api/v1/contacts/uploads", "201")
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    up = owner.post("/api/v1/contacts/uploads", files={"file": ("a.csv", b"Email\na@example.org\n")})
    assert set(up.json()) <= fields, set(up.json()) - fields
    fields, content = _documented(owner, "/api/v1/contacts/imports", "201")
    assert set(content) == {"multipart/form-data", "application/json"}
    assert set(content["multipart/form-data"]["schema"]["properties"]) == {"file", "mapping", "mode"}
    done = post_file(owner, b"Email\nb@example.org\nbad\n", {"email": "Email"}).json()
    queued = owner.post("/api/v1/contacts/imports", json={"upload_id": up.json()["upload_id"],
                                                          "mapping": {"email": "Email"}, "mode": "job"})
    assert queued.status_code == 202, queued.text
    for answer in (done, queued.json()):
        assert set(answer) <= fields, set(answer) - fields


def test_a_phone_only_record_matches_the_contact_known_by_that_phone_and_reimports_settle(owner):
    """A phone-only record first, then a record with e-mail and that phone: two people (the
    first is known by its phone). Re-importing the file matches each to its own contact:
    everything unchanged, however often."""
    data = (b"Email,Phone,Name,TZ,Tags\nann@example.com,,Ann,America/New_York,e\n"
            b",(202) 555-0143,,Europe/London,p\nann@example.com,+12025550143,Ann,,base\n")
    mapping = {"email": "Email", "phone": "Phone", "name": "Name", "timezone": "TZ", "tags": "Tags"}
    first = post_file(owner, data, mapping).json()
    assert (first["counts"]["created"], first["counts"]["merged"]) == (2, 1), first
    for _ in range(2):
        again = post_file(owner, data, mapping).json()
        assert (again["counts"]["unchanged"], again["counts"]["merged"],
                again["counts"]["updated"]) == (2, 1, 0), again
    people = {c["email"]: c for c in contacts_of(owner)}
    assert people["ann@example.com"]["timezone"] == "America/New_York"
    assert people[None]["timezone"] == "Europe/London"


def test_refusals_name_the_field(owner):
    resp = owner.post("/api/v1/contacts/imports", data=b"email\n", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 400 and "file" in resp.json()["errors"], resp.text
    resp = owner.post("/api/v1/contacts/imports", json={"upload_id": "8c1d2a3e-0000-4000-8000-000000000000",
                                                       "mapping": {"email": "Email"}})
    assert resp.status_code == 404 and "upload_id" in resp.json()["errors"], resp.text
    two = owner.post("/api/v1/contacts/imports", data={"mapping": json.dumps({"email": "Email"})},
                     files=[("file", ("a.csv", b"Email\na@example.org\n")),
                            ("file", ("b.csv", b"Email\nb@example.org\n"))])
    assert two.status_code == 400 and two.json()["errors"]["file"] == [
        "sent more than once: one file a request"], two.text
    up = owner.post("/api/v1/contacts/uploads", files={"file": ("a.csv", b"Email\na@example.org\n")}).json()
    resp = owner.post("/api/v1/contacts/imports", json={
        "upload_id": up["upload_id"], "mapping": {"email": "Email"},
        "data_source_id": "8c1d2a3e-0000-4000-8000-000000000000"})
    assert resp.status_code == 404, resp.text  # a data source that does not exist is not ignored
    long_header = b"Email," + b"x" * 70000 + b"\na@example.org,1\n"
    resp = owner.post("/api/v1/contacts/uploads", files={"file": ("w.csv", long_header)})
    assert resp.status_code == 400 and "no line break in the first 64 KB" in resp.json()["errors"]["file"][0]
