"""The product's main job, steps 1-10 of issue 2, as a user does it over HTTP, with every service
running as its own process, real RabbitMQ, PostgreSQL and SMTP (the local sink)."""
import time
import uuid

import pytest
import requests

CSV = (
    "Email,First Name,Last Name,Phone,Time zone,Company,Status\r\n"
    "ada.lovelace@example.com,Ada,Lovelace,+1 202-555-0101,Europe/London,Analytical Ltd,active\r\n"
    "grace.hopper@example.com,Grace,Hopper,(202) 555-0102,America/New_York,Navy,active\r\n"
    "alan.turing@example.com,Alan,Turing,,Europe/London,Bletchley,active\r\n"
    ",Phone,Only,+1 202-555-0104,,NoMail Inc,active\r\n"
    "inactive.ian@example.com,Ian,Inactive,,,Dormant Co,inactive\r\n"
    "optout.olga@example.com,Olga,Optout,,,Quiet GmbH,active\r\n"
    "not-an-email,Bad,Row,,,Broken,active\r\n"
)
MAPPING = {"email": "Email", "first_name": "First Name", "last_name": "Last Name",
           "phone": "Phone", "timezone": "Time zone"}


def wait_for(probe, timeout=45, interval=0.25):
    """Polls probe() until it returns something truthy; the last value otherwise."""
    deadline = time.time() + timeout
    value = probe()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = probe()
    return value


def sink_to(stack, address):
    return requests.get(f"{stack.mail_url}/messages", params={"to": address}, timeout=30).json()


def signup(api, name):
    email = f"owner-{uuid.uuid4().hex[:8]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": name, "description": "We build analytical engines for small teams."},
        "owner": {"name": "Olive Owner", "email": email, "password": "correct horse battery 42"},
    })
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return api.as_(body["token"], body["organization"]["id"]), email, body


def import_csv(client, csv_text, mapping):
    return client.post("/api/v1/contacts/imports",
                       files={"file": ("contacts.csv", csv_text.encode(), "text/csv")},
                       data={"mapping": __import__("json").dumps(mapping)})


@pytest.fixture(scope="module")
def world(api, stack):
    """One organization taken through the whole main job; each test checks one step's outcome."""
    w = {}
    # 1. Sign up, log in.
    client, owner_email, body = signup(api, f"Analytical Engines {uuid.uuid4().hex[:6]}")
    login = api.post("/api/v1/auth/login", json={"email": owner_email,
                                                 "password": "correct horse battery 42"})
    assert login.status_code == 200, login.text
    w.update(client=client, owner_email=owner_email, signup=body, login=login.json())
    return w


def test_1_sign_up_and_log_in_give_a_token_for_the_new_organization(world):
    assert world["login"]["token"]
    me = world["client"].get("/api/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["email"] == world["owner_email"]


def test_2_csv_import_reports_created_and_rejected_rows_and_reimport_creates_no_duplicates(world):
    client = world["client"]
    first = import_csv(client, CSV, MAPPING)
    assert first.status_code == 201, first.text
    result = first.json()
    counts = result.get("counts") or result["result"]["counts"]
    assert counts["created"] == 6
    assert counts["rejected"] == 1
    rejected = result.get("rejected") or result["result"]["rejected"]
    assert [r["record"] for r in rejected] == [7]
    assert "mail" in rejected[0]["reason"].lower()

    again = import_csv(client, CSV, MAPPING)
    assert again.status_code == 201, again.text
    again_counts = again.json().get("counts") or again.json()["result"]["counts"]
    assert again_counts["created"] == 0
    assert again_counts["updated"] + again_counts["unchanged"] == 6

    listing = client.get("/api/v1/contacts", params={"limit": 100}).json()
    contacts = listing.get("items") or listing.get("contacts")
    assert len(contacts) == 6
    by_email = {c["email"]: c for c in contacts}
    assert by_email["grace.hopper@example.com"]["phone"] == "+12025550102"
    assert by_email["ada.lovelace@example.com"]["custom"]["Company"] == "Analytical Ltd"
    world["contacts"] = by_email
    world["phone_only"] = next(c for c in contacts if c["email"] is None)


def test_3_tag_and_segment_select_the_tagged_contacts(world):
    client = world["client"]
    contacts = world["contacts"]
    # Deactivate one contact and unsubscribe another from email: both must be skipped later.
    resp = client.patch(f"/api/v1/contacts/{contacts['inactive.ian@example.com']['id']}",
                        json={"active": False})
    assert resp.status_code == 200, resp.text
    resp = client.post(f"/api/v1/contacts/{contacts['optout.olga@example.com']['id']}/unsubscribes",
                       json={"channel": "email", "unsubscribed": True})
    assert resp.status_code == 200, resp.text

    tag = client.post("/api/v1/tags", json={"title": "Q1 pilot", "kind": "contact"})
    assert tag.status_code == 201, tag.text
    tag_id = tag.json()["id"]
    members = [c["id"] for c in contacts.values()] + [world["phone_only"]["id"]]
    resp = client.post(f"/api/v1/tags/{tag_id}/contacts", json={"contact_ids": members})
    assert resp.status_code == 200, resp.text

    segment = client.post("/api/v1/segments", json={
        "name": "Q1 pilot", "rules": {"match": "all", "rules": [{"type": "has_tag", "tag_id": tag_id}]}})
    assert segment.status_code == 201, segment.text
    world["segment_id"] = segment.json()["id"]
    count = client.get(f"/api/v1/segments/{world['segment_id']}/count")
    assert count.status_code == 200, count.text
    assert count.json()["count"] == 6


def test_4_email_setup_points_at_the_local_smtp_sink(world, stack):
    client = world["client"]
    resp = client.put("/api/v1/settings/email/sender",
                      json={"name": "Olive Owner", "email": "olive@engines.example.org"})
    assert resp.status_code == 200, resp.text
    resp = client.put("/api/v1/settings/email/provider", json={
        "kind": "smtp", "host": "127.0.0.1", "port": stack.smtp_port,
        "username": "sink", "password": "sink-password", "tls_mode": "none"})
    assert resp.status_code == 200, resp.text
    assert "sink-password" not in resp.text
    channels = client.get("/api/v1/settings/channels").json()
    email = next(c for c in channels if c["channel"] == "email")
    assert email["ready"] is True


def test_5_goal_template_and_campaign_with_the_starter_agents(world):
    client = world["client"]
    goal = client.post("/api/v1/goals", json={"name": "Book pilot calls",
                                              "description": "Get a 20-minute call booked"})
    assert goal.status_code == 201, goal.text
    template = client.post("/api/v1/templates", json={
        "name": "Pilot invite", "channel": "email", "subject": "A pilot for {{first_name}}",
        "body": "Hi {{first_name}},\n\nWould a short call next week suit you?\n"})
    assert template.status_code == 201, template.text
    agents = client.get("/api/v1/agents", params={"limit": 100}).json()["items"]
    writer = next(a for a in agents if a["type"] == "writer" and a["is_starter"])
    reviewer = next(a for a in agents if a["type"] == "reviewer" and a["is_starter"])
    campaign = client.post("/api/v1/campaigns", json={
        "name": "Q1 pilot outreach", "channel": "email", "goal_id": goal.json()["id"],
        "segment_id": world["segment_id"], "writer_agent_id": writer["id"],
        "reviewer_agent_id": reviewer["id"], "template_id": template.json()["id"],
        "instructions": "Keep it short and friendly.", "status": "active"})
    assert campaign.status_code == 201, campaign.text
    world["campaign_id"] = campaign.json()["id"]


def test_6_preflight_lists_every_missing_requirement_at_once(api):
    client, _, _ = signup(api, f"Empty Org {uuid.uuid4().hex[:6]}")
    campaign = client.post("/api/v1/campaigns", json={"name": "Bare", "channel": "email",
                                                      "status": "inactive"})
    assert campaign.status_code == 201, campaign.text
    resp = client.post(f"/api/v1/campaigns/{campaign.json()['id']}/runs", json={"type": "live"})
    assert resp.status_code == 422, resp.text
    missing = {r["requirement"] for r in resp.json()["reasons"]}
    assert missing == {"goal", "writer", "reviewer", "template", "segment", "active",
                       "channel_setup"}
    setup = next(r for r in resp.json()["reasons"] if r["requirement"] == "channel_setup")
    assert "sender" in str(setup).lower()


def _run(client, run_id):
    return client.get(f"/api/v1/runs/{run_id}").json()


def _drafts(client, run_id, status=None):
    params = {"run_id": run_id, "limit": 200}
    if status:
        params["status"] = status
    return client.get("/api/v1/drafts", params=params).json()["items"]


def test_7_test_run_sends_only_to_the_test_recipients(world, stack):
    client = world["client"]
    resp = client.post(f"/api/v1/campaigns/{world['campaign_id']}/runs", json={"type": "test"})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    drafts = wait_for(lambda: _drafts(client, run_id, "pending_approval"))
    assert len(drafts) == 1
    assert drafts[0]["is_test"] is True
    assert drafts[0]["to_address"] == world["owner_email"]
    resp = client.post(f"/api/v1/drafts/{drafts[0]['id']}/approve")
    assert resp.status_code == 200, resp.text
    received = wait_for(lambda: sink_to(stack, world["owner_email"]))
    assert len(received) == 1
    comms = wait_for(lambda: client.get("/api/v1/communications",
                                        params={"run_id": run_id}).json()["items"])
    assert [c["is_test"] for c in comms] == [True]
    world["test_run_id"] = run_id


def test_8_live_run_drafts_for_eligible_contacts_and_sends_only_approved_ones(world, stack):
    client = world["client"]
    resp = client.post(f"/api/v1/campaigns/{world['campaign_id']}/runs", json={"type": "live"})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    world["run_id"] = run_id

    drafts = wait_for(lambda: len(_drafts(client, run_id)) >= 3 and _drafts(client, run_id))
    assert sorted(d["to_address"] for d in drafts) == [
        "ada.lovelace@example.com", "alan.turing@example.com", "grace.hopper@example.com"]
    for d in drafts:
        assert d["status"] == "pending_approval"
        assert d["review"]["verdict"] in ("approve", "flag")
        assert "reasons" in d["review"]
    grace = next(d for d in drafts if d["to_address"] == "grace.hopper@example.com")
    assert "Grace" in grace["body"]

    run = wait_for(lambda: (lambda r: r["counts"]["skipped"] == 3 and r)(_run(client, run_id)))
    assert run["counts"]["targeted"] == 6
    reasons = sorted(s["reason"] for s in run["skips"])
    assert reasons == ["inactive", "no_email", "unsubscribed"]

    by_address = {d["to_address"]: d for d in drafts}
    rejected = by_address["alan.turing@example.com"]
    assert client.post(f"/api/v1/drafts/{rejected['id']}/reject",
                       json={"note": "not now"}).status_code == 200
    one = by_address["ada.lovelace@example.com"]
    assert client.post(f"/api/v1/drafts/{one['id']}/approve").status_code == 200
    resp = client.post(f"/api/v1/runs/{run_id}/approve-all")
    assert resp.status_code == 200, resp.text
    # A rejected draft is final.
    assert client.post(f"/api/v1/drafts/{rejected['id']}/approve").status_code == 409

    for address in ("ada.lovelace@example.com", "grace.hopper@example.com"):
        got = wait_for(lambda: sink_to(stack, address))
        assert len(got) == 1, address
        assert got[0]["message_id"]
    time.sleep(1.5)
    assert sink_to(stack, "alan.turing@example.com") == []
    assert sink_to(stack, "optout.olga@example.com") == []
    assert sink_to(stack, "inactive.ian@example.com") == []
    run = wait_for(lambda: (lambda r: r["counts"]["sent"] == 2 and r)(_run(client, run_id)))
    assert run["counts"]["sent"] == 2
    assert run["counts"]["rejected"] == 1
    world["grace_message"] = sink_to(stack, "grace.hopper@example.com")[0]


def test_9_a_reply_posted_to_the_inbound_webhook_joins_the_thread(world, stack):
    client = world["client"]
    settings = client.get("/api/v1/settings/email").json()
    url = settings["inbound"]["webhook_url"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    original = world["grace_message"]
    raw = (
        "From: Grace Hopper <grace.hopper@example.com>\r\n"
        f"To: {original['from']}\r\n"
        f"Subject: Re: {original['subject']}\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex}@example.com>\r\n"
        f"In-Reply-To: {original['message_id']}\r\n"
        f"References: {original['message_id']}\r\n"
        "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Yes, Tuesday at 3pm works.\r\n\r\nOn Wed, someone wrote:\r\n> Hi Grace,\r\n"
    ).encode()
    resp = requests.post(f"{stack.url}/{path}", data=raw,
                         headers={"Content-Type": "message/rfc822"}, timeout=30)
    assert resp.status_code == 200, resp.text

    inbound = wait_for(lambda: client.get("/api/v1/communications", params={
        "direction": "inbound", "run_id": world["run_id"]}).json()["items"])
    assert len(inbound) == 1
    reply = inbound[0]
    assert reply["campaign_id"] == world["campaign_id"]
    thread = client.get(f"/api/v1/threads/{reply['thread_id']}").json()
    messages = thread.get("messages") or thread.get("communications")
    assert [m["direction"] for m in messages] == ["outbound", "inbound"]
    assert messages[1]["stripped_text"] == "Yes, Tuesday at 3pm works."
    assert messages[1]["contact_id"] == world["contacts"]["grace.hopper@example.com"]["id"]
    world["reply"] = reply


def test_10_feed_run_detail_and_analytics_agree(world):
    client = world["client"]
    run_id = world["run_id"]
    feed = client.get("/api/v1/communications", params={
        "channel": "email", "direction": "outbound", "campaign_id": world["campaign_id"],
        "run_id": run_id}).json()["items"]
    assert sorted(c["to_address"] for c in feed) == ["ada.lovelace@example.com",
                                                     "grace.hopper@example.com"]
    assert all(c["is_test"] is False for c in feed)

    run = wait_for(lambda: (lambda r: r["counts"]["replied"] == 1 and r)(_run(client, run_id)))
    assert run["counts"] == dict(run["counts"], targeted=6, skipped=3, drafted=3, approved=2,
                                 rejected=1, sent=2, failed=0, replied=1)

    def analytics():
        body = client.get("/api/v1/analytics", params={"run_id": run_id}).json()
        return body["totals"].get("replied") == 1 and body

    totals = wait_for(analytics)["totals"]
    assert totals["drafted"] == 3
    assert totals["approved"] == 2
    assert totals["sent"] == 2
    assert totals["replied"] == 1
    assert totals["skipped"] == 3
    # Test communications are excluded from analytics by default.
    test_totals = client.get("/api/v1/analytics",
                             params={"run_id": world["test_run_id"]}).json()["totals"]
    assert test_totals.get("sent", 0) == 0
