"""The dashboard over HTTP with every service running: a new organization is getting started, a
test run of the starter campaign takes it to Going Live, email setup with incoming email done or
skipped makes it operational; counts and recent messages are the organization's own."""
import uuid

import requests

from tests.campaigns.integration.helpers import (
    drafts_of, run_detail, segment_with_contacts, set_up_email, signup, starter, teammate,
    wait_for)

SKIP = "/api/v1/dashboard/incoming-email/skip"


def board(org):
    resp = org.get("/api/v1/dashboard")
    assert resp.status_code == 200, resp.text
    return resp.json()


def state(org):
    return board(org)["state"]


def start(org, campaign_id, run_type):
    resp = org.post(f"/api/v1/campaigns/{campaign_id}/runs", json={"type": run_type})
    assert resp.status_code == 201, resp.text
    return resp.json()


def send_all(org, run_id, n):
    """Approve the run's n drafts and wait until every one is sent."""
    wait_for(lambda: len(drafts_of(org, run_id)) == n, what=f"{n} drafts")
    resp = org.post(f"/api/v1/runs/{run_id}/approve-all")
    assert resp.status_code == 200, resp.text
    wait_for(lambda: run_detail(org, run_id)["status"] == "completed", what="the run to complete")
    assert all(d["status"] == "sent" for d in drafts_of(org, run_id))


def test_a_new_organization_is_getting_started_with_its_counts(api):
    org = signup(api)
    campaign = starter(org)
    view = board(org)
    assert view["state"] == "getting_started"
    assert view["cards"][0]["title"] == "Generate your first message"
    assert view["starter_campaign_id"] == campaign["id"]
    # The starter kit already selects its writer and reviewer: the test run is what is left.
    steps = view["steps"]
    assert (steps["writer"]["done"], steps["reviewer"]["done"], steps["test_run"]["done"]) == \
        (True, True, False)
    assert {"action": "Start a test run", "method": "POST",
            "path": f"/api/v1/campaigns/{campaign['id']}/runs"} in steps["test_run"]["actions"]
    assert view["counts"] == {"agents": 2, "campaigns": 1, "contacts": 0, "emails_sent": 0}
    assert (view["recent_received"], view["recent_sent"], view["quick_actions"]) == ([], [], [])


def test_the_dashboard_moves_from_getting_started_to_going_live_to_operational(api, stack):
    org = signup(api)
    campaign = starter(org)
    agents = org.get("/api/v1/agents").json()["items"]
    reviewer = next(a for a in agents if a["type"] == "reviewer")

    # Without a reviewer the step is open again; choosing one over the API closes it.
    resp = org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"reviewer_agent_id": None})
    assert resp.status_code == 200, resp.text
    assert board(org)["steps"]["reviewer"]["done"] is False
    resp = org.patch(f"/api/v1/campaigns/{campaign['id']}",
                     json={"reviewer_agent_id": reviewer["id"]})
    assert resp.status_code == 200, resp.text

    # A test run needs email delivery (preflight), so the going-live steps are done first;
    # the mode stays getting_started until the starter campaign has been test-run.
    set_up_email(org, stack)
    view = board(org)
    assert view["state"] == "getting_started"
    assert view["steps"]["sender_identity"]["done"] and view["steps"]["email_provider"]["done"]

    run = start(org, campaign["id"], "test")
    view = board(org)
    assert view["state"] == "going_live"
    assert view["cards"][0]["title"] == "Going Live"
    incoming = view["steps"]["incoming_email"]
    assert (incoming["done"], incoming["skipped"], incoming["optional"]) == (False, False, True)

    send_all(org, run["id"], 1)
    sent = wait_for(lambda: board(org)["recent_sent"], what="the test email in recent_sent")
    assert [(c["to_address"], c["is_test"], c["direction"], c["run_id"]) for c in sent] == \
        [(org.owner_email, True, "outbound", run["id"])]
    assert board(org)["counts"]["emails_sent"] == 0  # test messages are not counted

    resp = org.post(SKIP)
    assert resp.status_code == 200, resp.text
    assert resp.json()["skipped"] is True and resp.json()["done"] is False
    view = board(org)
    assert view["state"] == "operational"
    assert [c["kind"] for c in view["cards"]] == ["quick_actions", "recent_received", "recent_sent"]
    assert view["quick_actions"]
    assert all(set(a) == {"action", "method", "path"} for a in view["quick_actions"])

    resp = org.delete(SKIP)
    assert resp.status_code == 200, resp.text
    assert resp.json()["skipped"] is False
    assert state(org) == "going_live"
    assert org.delete(SKIP).status_code == 200  # undoing twice changes nothing
    actions = wait_for(lambda: (lambda a: a if "email_incoming.resumed" in a else None)(
        [e["action"] for e in org.get("/api/v1/audit-log").json()["entries"]]),
        what="the skip and its undo in the audit log")
    assert actions.count("email_incoming.skipped") == 1
    assert actions.count("email_incoming.resumed") == 1

    # A reply domain completes the incoming-email step: operational with no skip.
    resp = org.put("/api/v1/settings/email/sender", json={
        "name": "Jordan at Larkspur", "email": "jordan@larkspur.example.org",
        "reply_domain": "in.larkspur.example.org"})
    assert resp.status_code == 200, resp.text
    view = board(org)
    assert view["state"] == "operational"
    assert view["steps"]["incoming_email"]["done"] is True
    assert view["steps"]["incoming_email"]["skipped"] is False


def test_a_received_email_completes_incoming_email_and_counts_match(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    tag = org.org_id[:8]
    segment_id, _ = segment_with_contacts(stack, org, [
        {"name": "Ada Lovelace", "email": f"ada+{tag}@example.org"},
        {"name": "Ben Adler", "email": f"ben+{tag}@example.org"},
        {"name": "Cy Phone", "phone": "+12025550143"}])
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    test = start(org, campaign["id"], "test")
    send_all(org, test["id"], 1)
    live = start(org, campaign["id"], "live")
    send_all(org, live["id"], 2)
    assert state(org) == "going_live"

    view = wait_for(lambda: (lambda v: v if v["counts"]["emails_sent"] == 2 else None)(board(org)),
                    what="two live emails counted")
    assert view["counts"] == {"agents": 2, "campaigns": 1, "contacts": 3, "emails_sent": 2}
    assert len(view["recent_sent"]) == 3
    assert [c["is_test"] for c in view["recent_sent"]] == [False, False, True]  # newest first

    # Ada answers: the first inbound email completes the incoming-email step.
    ada = next(c for c in view["recent_sent"] if c["to_address"] == f"ada+{tag}@example.org")
    inbound_url = org.get("/api/v1/settings/email").json()["inbound"]["webhook_url"]
    raw = (f"From: Ada Lovelace <ada+{tag}@example.org>\r\nTo: jordan@larkspur.example.org\r\n"
           f"Subject: Re: {ada['subject']}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
           f"In-Reply-To: {ada['message_id']}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Yes, Tuesday works for me.\r\n").encode()
    resp = requests.post(stack.url + "/webhooks/" + inbound_url.split("/webhooks/", 1)[1],
                         data=raw, headers={"Content-Type": "message/rfc822"}, timeout=30)
    assert resp.status_code == 200, resp.text
    view = board(org)
    assert view["state"] == "operational"
    assert view["steps"]["incoming_email"]["done"] is True
    assert [(c["direction"], c["from_address"], c["thread_id"]) for c in view["recent_received"]] \
        == [("inbound", f"ada+{tag}@example.org", ada["thread_id"])]


def test_a_viewer_reads_the_dashboard_but_cannot_skip_incoming_email(api):
    owner = signup(api)
    starter(owner)
    viewer = teammate(api, owner, "viewer")
    member = teammate(api, owner, "member")
    view = board(viewer)
    assert view["state"] == "getting_started"
    # Only actions the viewer's role may take are offered (reading, none of the steps' changes).
    assert all(a["method"] == "GET" for s in view["steps"].values() for a in s["actions"])
    for who in (viewer, member):
        for method in ("post", "delete"):
            resp = getattr(who, method)(SKIP)
            assert resp.status_code == 403, resp.text
            assert resp.json()["error"] == "forbidden"
    assert board(owner)["steps"]["incoming_email"]["skipped"] is False


def test_another_organizations_dashboard_data_never_appears(api, stack):
    a = signup(api)
    a_campaign = starter(a)
    set_up_email(a, stack)
    run = start(a, a_campaign["id"], "test")
    send_all(a, run["id"], 1)
    assert a.post(SKIP).status_code == 200
    a_view = wait_for(lambda: (lambda v: v if v["recent_sent"] else None)(board(a)),
                      what="A's test email")
    assert a_view["state"] == "operational"

    b = signup(api)
    b_campaign = starter(b)
    b_view = board(b)
    assert b_view["state"] == "getting_started"
    assert b_view["starter_campaign_id"] == b_campaign["id"]
    assert b_view["steps"]["incoming_email"]["skipped"] is False
    assert b_view["steps"]["sender_identity"]["done"] is False
    assert b_view["counts"] == {"agents": 2, "campaigns": 1, "contacts": 0, "emails_sent": 0}
    assert b_view["recent_sent"] == [] and b_view["recent_received"] == []
    text = b.get("/api/v1/dashboard").text
    for mark in (a.org_id, a_campaign["id"], run["id"], a.owner_email,
                 a_view["recent_sent"][0]["id"]):
        assert mark not in text
    # B's owner naming A as the organization is refused, not answered with A's dashboard.
    resp = b.get("/api/v1/dashboard", headers={"X-Organization-Id": a.org_id})
    assert resp.status_code in (403, 404), resp.text
    assert a_campaign["id"] not in resp.text


def test_without_the_starter_campaign_the_dashboard_still_answers(api):
    org = signup(api)
    campaign = starter(org)
    assert org.delete(f"/api/v1/campaigns/{campaign['id']}").status_code == 204
    view = board(org)
    assert view["state"] == "getting_started"
    assert view["starter_campaign_id"] is None
    assert view["counts"]["campaigns"] == 0
    # No campaign chooses a writer any more: the step is open again.
    assert view["steps"]["writer"]["done"] is False
