"""Input that used to reach the database and fail there now gets a 400 naming the field: numbers
JSON has no form for, offsets PostgreSQL refuses, NUL in a mapping, absurd segments; and names
with line breaks are stored on one line."""
import json

import pytest


def post_file(api, data, mapping, name="leads.csv"):
    return api.post("/api/v1/contacts/imports", files={"file": (name, data, "text/csv")},
                    data={"mapping": json.dumps(mapping)})


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_naming_the_field(owner, number):
    raw = '{"email": "d8@example.com", "custom": {"a": %s}}' % number
    resp = owner.post("/api/v1/contacts", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {"custom.a": ["not a finite number"]}


@pytest.mark.parametrize("param", ["created_from", "created_to"])
def test_an_offset_postgresql_refuses_is_read_in_utc(owner, param):
    owner.post("/api/v1/contacts", json={"email": "ana@example.com"})
    resp = owner.get("/api/v1/contacts", params={param: "2026-01-01T00:00:00-23:59"})
    assert resp.status_code == 200, resp.text
    expected = 1 if param == "created_from" else 0
    assert len(resp.json()["contacts"]) == expected


def test_a_date_out_of_range_in_utc_is_a_400(owner):
    resp = owner.get("/api/v1/contacts", params={"created_from": "9999-12-31T23:59:00-23:59"})
    assert resp.status_code == 400, resp.text
    assert "out of range" in resp.json()["errors"]["created_from"][0]
    resp = owner.get("/api/v1/communications", params={"since": "0001-01-01T00:00:00+23:59"})
    assert resp.status_code == 400, resp.text
    assert "since" in resp.json()["errors"]


def test_a_segment_with_a_far_offset_is_saved_and_evaluated_in_utc(owner):
    owner.post("/api/v1/contacts", json={"email": "ana@example.com"})
    seg = owner.post("/api/v1/segments", json={"name": "Old", "rules": {"match": "all", "rules": [
        {"type": "created", "from": "0001-01-01T00:00:00-23:59"}]}})
    assert seg.status_code == 201, seg.text
    listed = owner.get("/api/v1/contacts", params={"segment_id": seg.json()["id"]})
    assert listed.status_code == 200, listed.text
    assert [c["email"] for c in listed.json()["contacts"]] == ["ana@example.com"]


def test_segments_are_bounded_and_ranges_ordered(owner):
    many = owner.post("/api/v1/segments", json={"name": "Huge", "rules": {"match": "any", "rules": [
        {"type": "reachable", "channel": "email"}] * 101}})
    assert many.status_code == 400, many.text
    assert many.json()["errors"] == {"rules": ["at most 100 rules in a segment"]}
    backwards = owner.post("/api/v1/segments", json={"name": "Backwards", "rules": {"rules": [
        {"type": "created", "from": "2026-06-01", "to": "2026-01-01"}]}})
    assert backwards.status_code == 400
    assert backwards.json()["errors"] == {"rules.rules.0.to": ["must be after from"]}
    banana = owner.post("/api/v1/segments", json={"name": "Banana", "rules": {"rules": [
        {"type": "field", "field": "active", "op": "equals", "value": "banana"}]}})
    assert banana.status_code == 400
    assert banana.json()["errors"] == {"rules.rules.0.value": ["active is true or false"]}
    unknown_tag = owner.post("/api/v1/segments", json={"name": "Tagged", "rules": {"rules": [
        {"type": "has_tag", "tag_id": "7f1c0a3e-0000-4000-8000-000000000001"}]}})
    assert unknown_tag.status_code == 400
    assert list(unknown_tag.json()["errors"]) == ["rules.rules.0"]


@pytest.mark.parametrize("mapping, field", [
    ({"email": "Email", "add_tags": ["a\u0000"]}, "mapping.add_tags.0"),
    ({"email": "Email", "ignore": ["x\u0000"]}, "mapping.ignore.0"),
    ({"email": "Email", "add_tags": ["\ud800"]}, "mapping.add_tags.0"),
])
def test_a_mapping_with_unstorable_text_is_refused_in_both_forms(owner, mapping, field):
    data = b"Email\r\nana@example.com\r\n"
    multipart = owner.post("/api/v1/contacts/imports", files={"file": ("a.csv", data)},
                           data={"mapping": json.dumps(mapping)})
    assert multipart.status_code == 400, multipart.text
    assert field in multipart.json()["errors"]
    upload = owner.post("/api/v1/contacts/uploads", files={"file": ("a.csv", data)}).json()
    raw = json.dumps({"upload_id": upload["upload_id"], "mapping": mapping})
    as_json = owner.post("/api/v1/contacts/imports", data=raw,
                         headers={"Content-Type": "application/json"})
    assert as_json.status_code == 400, as_json.text
    assert field in as_json.json()["errors"]
    assert owner.get("/api/v1/contacts").json()["contacts"] == []


def test_mapping_limits_and_misspelt_keys(owner):
    data = b"Email,Name\r\nana@example.com,Ana\r\n"
    long_tag = post_file(owner, data, {"email": "Email", "add_tags": ["t" * 101]})
    assert long_tag.status_code == 400, long_tag.text
    assert long_tag.json()["errors"] == {"mapping": {"add_tags": {"0": ["a tag title has at most 100 characters"]}}}
    too_many = post_file(owner, data, {"email": "Email", "add_tags": [f"t{i}" for i in range(51)]})
    assert too_many.status_code == 400, too_many.text
    misspelt = post_file(owner, data, {"email": "Email", "nmae": "Name"})
    assert misspelt.status_code == 400, misspelt.text
    assert "nmae" in json.dumps(misspelt.json()["errors"])
    ignored = post_file(owner, data, {"email": "Email", "ignore": ["Nope"]})
    assert ignored.status_code == 400
    assert ignored.json()["errors"]["mapping.ignore"] == ["no column 'Nope' in the file"]
    bad_mode = owner.post("/api/v1/contacts/imports", files={"file": ("a.csv", data)},
                          data={"mapping": json.dumps({"email": "Email"}), "mode": "banana"})
    assert bad_mode.status_code == 400 and bad_mode.json()["errors"] == {"mode": ["sync or job"]}
    assert owner.get("/api/v1/tags").json() == []


def test_a_small_upload_imported_by_id_runs_in_the_request(owner):
    upload = owner.post("/api/v1/contacts/uploads", files={
        "file": ("a.csv", b"Email\r\nana@example.com\r\n")}).json()
    resp = owner.post("/api/v1/contacts/imports", json={"upload_id": upload["upload_id"],
                                                       "mapping": {"email": "Email"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "completed" and resp.json()["counts"]["created"] == 1


def test_bulk_tagging_needs_contact_ids_or_a_filter_it_understands(owner):
    owner.post("/api/v1/contacts", json={"email": "ana@example.com"})
    empty = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["x"]})
    assert empty.status_code == 400 and "filter" in empty.json()["errors"]
    bogus = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["x"], "filter": {"bogus": 1}})
    assert bogus.status_code == 400 and "filter.bogus" in bogus.json()["errors"]
    for selects_nothing in ({"limit": 10}, {"q": " "}, {"active": None}):
        resp = owner.post("/api/v1/contacts/bulk-tags", json={"tags": ["x"], "filter": selects_nothing})
        assert resp.status_code == 400 and "filter" in resp.json()["errors"], selects_nothing
    assert owner.get("/api/v1/contacts").json()["contacts"][0]["tags"] == []


def test_names_with_line_breaks_are_stored_on_one_line(owner):
    created = owner.post("/api/v1/contacts", json={"name": "Carl\nTwo", "email": "carl@example.com"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Carl Two"
    data = b'Email,Name\r\nann@example.com,"Ann\r\nLee"\r\n'
    body = post_file(owner, data, {"email": "Email", "name": "Name"}).json()
    assert body["counts"]["created"] == 1
    ann = owner.get("/api/v1/contacts", params={"q": "ann@"}).json()["contacts"][0]
    assert ann["name"] == "Ann Lee"


def test_a_sender_name_with_a_line_break_is_refused(owner):
    resp = owner.put("/api/v1/settings/email/sender", json={
        "name": "x\r\nBcc: victim@example.net", "email": "jordan@example.org"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"]["name"] == ["a name on one line (no line breaks)"]


def test_a_number_no_float_holds_is_refused_in_a_segment_rule(owner):
    raw = ('{"name": "v", "rules": {"rules": [{"type": "custom", "key": "k", "op": "gt", "value": 1%s}]}}'
           % ("0" * 320))
    resp = owner.post("/api/v1/segments", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"] == {"rules.rules.0.value": ["gt needs a number or an ISO date"]}


def test_tag_titles_on_contacts_are_trimmed_checked_and_bounded(owner):
    made = owner.post("/api/v1/contacts", json={"email": "ana@example.com", "tags": ["  Q1   pilot "]})
    assert made.status_code == 201, made.text
    assert made.json()["tags"] == ["Q1 pilot"]
    blank = owner.post("/api/v1/contacts", json={"email": "ben@example.com", "tags": ["   "]})
    assert blank.status_code == 400
    assert blank.json()["errors"] == {"tags": {"0": ["a tag title must not be blank"]}}
    many = owner.post("/api/v1/contacts", json={"email": "cy@example.com",
                                                "tags": [f"t{i}" for i in range(51)]})
    assert many.status_code == 400 and "tags" in many.json()["errors"]
    assert sorted(t["title"] for t in owner.get("/api/v1/tags").json()) == ["Q1 pilot"]


def test_an_import_keeps_fifty_tags_a_contact_and_says_what_it_cut(owner):
    cell = ";".join([f"tag{i}" for i in range(60)] + ["x" * 120])
    data = f'Email,Tags\r\nana@example.com,"{cell}"\r\n'.encode()
    body = post_file(owner, data, {"email": "Email", "tags": "Tags"}).json()
    assert body["counts"]["created"] == 1
    ana = owner.get("/api/v1/contacts", params={"q": "ana@"}).json()["contacts"][0]
    assert sorted(ana["tags"]) == sorted(f"tag{i}" for i in range(50))
    messages = sorted(w["message"] for w in body["warnings"] if w["field"] == "tags")
    assert messages == ["11 more tag(s) left out: at most 50 a contact"]
    long_one = post_file(owner, f'Email,Tags\r\nben@example.com,{"y" * 120}\r\n'.encode(),
                         {"email": "Email", "tags": "Tags"}).json()
    assert [w["message"] for w in long_one["warnings"]] == [
        "1 tag(s) longer than 100 characters cut to that length"]


def test_a_mapping_cannot_ignore_a_column_it_maps_and_names_misspelt_keys(owner):
    data = b"Email,Name\r\nana@example.com,Ana\r\n"
    both = post_file(owner, data, {"email": "Email", "ignore": ["Email"]})
    assert both.status_code == 400
    assert both.json()["errors"] == {"mapping.ignore": ["'Email' is mapped to a field; it cannot be ignored too"]}
    misspelt = post_file(owner, data, {"emial": "Email"})
    assert misspelt.status_code == 400
    assert misspelt.json()["errors"] == {"mapping": {"emial": ["unknown field; did you mean email?"]}}
    assert owner.get("/api/v1/contacts").json()["contacts"] == []


def test_unknown_fields_are_refused_naming_them(owner):
    resp = owner.post("/api/v1/contacts", json={"email": "ana@example.com", "tag_ids": []})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"tag_ids": ["unknown field; did you mean tags?"]}
    sender = owner.put("/api/v1/settings/email/sender", json={
        "name": "Jordan", "email": "jordan@example.org", "reply_domian": "r.example.org"})
    assert sender.status_code == 400
    assert sender.json()["errors"] == {"reply_domian": ["unknown field; did you mean reply_domain?"]}
    twilio = owner.put("/api/v1/settings/providers/twilio", json={
        "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "f0e1d2c3b4a59687",
        "phone_numbr": "+12025550100"})
    assert twilio.status_code == 400
    assert twilio.json()["errors"] == {"phone_numbr": ["unknown field; did you mean phone_number?"]}
    org = owner.patch("/api/v1/organization", json={"default_timezon": "Europe/Berlin"})
    assert org.status_code == 400
    assert org.json()["errors"] == {"default_timezon": ["unknown field; did you mean default_timezone?"]}
    listed = owner.get("/api/v1/contacts", params={"pgae": "2"})
    assert listed.status_code == 400 and "pgae" in listed.json()["errors"]


def test_a_backwards_created_range_is_a_400(owner):
    resp = owner.get("/api/v1/contacts", params={"created_from": "2026-06-01", "created_to": "2026-01-01"})
    assert resp.status_code == 400
    assert resp.json()["errors"] == {"created_to": ["must be after created_from"]}


def test_a_number_with_too_many_digits_gets_a_plain_message(owner):
    resp = owner.post("/api/v1/contacts", data='{"email": "a@example.com", "custom": {"n": %s}}' % ("9" * 5000),
                      headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["message"] == "request body is not valid JSON: a number has more than 4,300 digits"


def test_the_audit_log_cursor_is_bounded(owner):
    resp = owner.get("/api/v1/audit-log", params={"cursor": "9223372036854775808"})
    assert resp.status_code == 400 and "cursor" in resp.json()["errors"]
