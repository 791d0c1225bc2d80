"""Consent rules without a broker or database: the Unsubscribe API's strict E.164 phones beside
the lenient reading imports and admin forms keep, group kinds, the opt-out condition every send
check shares, and the listing cursor's seal."""
import base64
import json

import pytest

from gateway import create_app
from gateway.errors import ApiError
from gateway.routes import contacts as routes
from services.contacts import consent
from services.contacts.store import opted_out_sql


@pytest.mark.parametrize("raw", ["(202) 555-0143", "2025550143", "+1 202 555 0143", "+1-202-555-0143",
                                 "1 202 555 0143", "+12025550143;ext=7", "+0202555014"])
def test_the_api_takes_phones_only_in_e164(raw):
    assert consent.normalise_identifier("sms", raw, e164_only=True) == (None, "invalid phone format")


def test_imports_and_admin_forms_still_read_national_phone_shapes():
    assert consent.normalise_identifier("sms", "(202) 555-0143") == ("+12025550143", None)
    assert consent.normalise_identifier("phone", "2025550143") == ("+12025550143", None)
    assert consent.normalise_identifier("phone", "+12025550143", e164_only=True) == ("+12025550143", None)
    assert consent.normalise_identifier("email", " Ada@Example.ORG ", e164_only=True) == ("ada@example.org", None)


def test_a_phone_number_group_serves_sms_and_voice():
    row = {"id": "6b1f", "org_id": "9c2e", "channel": "sms", "name": "Alerts", "description": None,
           "unsubscribes": 4, "created_at": __import__("datetime").datetime(2025, 3, 1)}
    out = consent.group_out(row)
    assert (out["kind"], out["unsubscribes"]) == ("phone_number", 4)
    assert out["used_by"] == [{"org_id": "9c2e", "channels": ["sms", "phone"]}]
    assert consent.group_out(dict(row, channel="email"))["used_by"][0]["channels"] == ["email"]


def test_the_opt_out_condition_counts_every_group_and_phone_groups_on_both_channels():
    assert opted_out_sql("email", "c.email") == (
        "u.unsubscribed AND u.identifier = c.email AND u.channel = 'email'")
    assert opted_out_sql("phone", "c.phone") == (
        "u.unsubscribed AND u.identifier = c.phone AND (u.channel = 'phone' OR (u.group_id IS NOT NULL"
        " AND u.channel IN ('sms', 'phone')))")
    assert "group_id IS NULL" not in opted_out_sql("sms", "c.phone")


@pytest.fixture
def app():
    app = create_app({"SECRET_KEY": "unit-test-secret"})
    with app.app_context():
        yield app


def test_a_cursor_carries_the_query_and_refuses_edits(app):
    query = {"client": "tru_ci_abc", "org": "0f4d", "channel": "email", "group_id": None,
             "since": "2025-01-01T00:00:00+00:00", "until": None, "after": "WyIyMDI1Il0"}
    cursor = routes.seal_cursor(query)
    assert routes.open_cursor(cursor) == query
    body, mac = cursor.split(".")
    edited = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    edited["org"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(edited, separators=(",", ":"), sort_keys=True)
                                      .encode()).decode().rstrip("=") + "." + mac
    for bad in (forged, body, "", "!!!.###"):
        with pytest.raises(ApiError) as err:
            routes.open_cursor(bad)
        assert err.value.status == 400 and err.value.body["error"] == "invalid_request"


def test_a_cursor_made_with_another_secret_key_is_refused(app):
    cursor = routes.seal_cursor({"org": "0f4d"})
    app.config["SECRET_KEY"] = "rotated"
    with pytest.raises(ApiError):
        routes.open_cursor(cursor)
