"""GET /api/v1/analytics answers the signed-in organization's counts, validated query and all."""
import uuid

import pytest

from tests.reporting.integration.test_analytics import (
    Events, LIVE, NOTHING, WITH_TEST, a_live_and_a_test_run, wait_for)


@pytest.fixture(scope="module")
def signed_in(api):
    tag = uuid.uuid4().hex[:8]
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": f"Larkspur Labs {tag}", "description": "Analytics over HTTP"},
        "owner": {"name": "Jordan Ellis", "email": f"jordan.ellis+{tag}@example.org",
                  "password": "correct horse battery staple 42"}})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return api.as_(body["token"], body["organization"]["id"])


@pytest.fixture(scope="module")
def counted(stack, signed_in):
    ids = a_live_and_a_test_run(Events(stack), signed_in.org_id, day="2026-11-30")
    totals = wait_for(lambda: signed_in.get("/api/v1/analytics").json()["totals"], LIVE)
    return dict(ids, totals=totals)


def test_analytics_over_http_counts_the_organizations_live_runs(signed_in, counted):
    assert counted["totals"] == LIVE
    body = signed_in.get("/api/v1/analytics", params={"from": "2026-11-30", "to": "2026-11-30"}).json()
    assert body["by_day"] == [dict(LIVE, day="2026-11-30")]
    assert body["by_campaign"] == [dict(LIVE, campaign_id=counted["campaign"])]


def test_analytics_over_http_includes_test_runs_when_asked(signed_in, counted):
    resp = signed_in.get("/api/v1/analytics", params={"include_test": "true", "channel": "email"})
    assert resp.status_code == 200
    assert resp.json()["totals"] == WITH_TEST
    assert resp.headers["X-Organization-Id"] == signed_in.org_id


def test_analytics_over_http_filters_by_run(signed_in, counted):
    resp = signed_in.get("/api/v1/analytics", params={"run_id": counted["test"]})
    assert resp.json()["totals"] == NOTHING  # a test run, and test runs are excluded by default
    resp = signed_in.get("/api/v1/analytics", params={"run_id": counted["live"]})
    assert resp.json()["totals"] == LIVE


def test_bad_dates_are_a_400_naming_the_field(signed_in):
    resp = signed_in.get("/api/v1/analytics", params={"from": "yesterday"})
    assert resp.status_code == 400
    assert list(resp.json()["errors"]) == ["from"]
    resp = signed_in.get("/api/v1/analytics", params={"from": "2026-12-02", "to": "2026-12-01"})
    assert resp.status_code == 400
    assert list(resp.json()["errors"]) == ["to"]
    resp = signed_in.get("/api/v1/analytics", params={"campaign_id": "42"})
    assert resp.status_code == 400
    assert list(resp.json()["errors"]) == ["campaign_id"]


def test_analytics_needs_a_sign_in(api):
    resp = api.get("/api/v1/analytics")
    assert resp.status_code == 401
