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
    assert long_tag.json()["errors"] == {"mapping": {"add_tags": {"0": ["Length must be between 1 and 100."]}}}
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
