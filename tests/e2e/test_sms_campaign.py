"""An SMS campaign as a user runs it over HTTP: Twilio connected in Settings makes SMS ready, the
starter writer drafts texts for contacts with phones, the approved ones go out through Twilio's
REST API (here the local stand-in speaking Twilio's wire format) exactly once, Twilio's signed
status callback marks one delivered, and a STOP reply keeps that number out of the next run."""
import time
import uuid

import pytest
import requests

from tests.messaging.twilio_standin import inbound_sms

PUBLIC = "https://outreach.example.org"   # tests/stack.py PUBLIC_BASE_URL: signatures cover it
PASSWORD = "correct horse battery 42"


def wait_for(probe, timeout=45, interval=0.25):
    deadline = time.time() + timeout
    value = probe()
    while not value and time.time() < deadline:
        time.sleep(interval)
        value = probe()
    return value


def signup(api, name):
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": name, "description": "Bike repair subscriptions for offices."},
        "owner": {"name": "Olive Owner", "email": f"owner-{uuid.uuid4().hex[:8]}@example.org",
                  "password": PASSWORD},
    })
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return api.as_(body["token"], body["organization"]["id"])


def _drafts(client, run_id, status=None):
    params = {"run_id": run_id, "limit": 200}
    if status:
        params["status"] = status
    return client.get("/api/v1/drafts", params=params).json()["items"]


def _run(client, run_id):
    return client.get(f"/api/v1/runs/{run_id}").json()


def _comms(client, **params):
    return client.get("/api/v1/communications", params=params).json()["items"]


def post_twilio(stack, path, pairs, signature):
    return requests.post(f"{stack.url}{path}", data=pairs,
                         headers={"X-Twilio-Signature": signature}, timeout=30)


@pytest.fixture(scope="module")
def world(api, stack):
    w = {"account": "AC" + uuid.uuid4().hex, "token": "twilio-token-" + uuid.uuid4().hex,
         "number": f"+1202555{uuid.uuid4().int % 10000:04d}"}
    stack.twilio.add_account(w["account"], w["token"])
    client = signup(api, f"Spokes {uuid.uuid4().hex[:6]}")
    w["client"] = client
    yield w
    client.delete("/api/v1/settings/providers/twilio")


def sent_to(stack, world, to=None):
    return stack.twilio.messages(account_sid=world["account"], to=to)


def test_1_twilio_credentials_and_a_number_make_sms_ready(world):
    client = world["client"]
    sms = lambda: next(c for c in client.get("/api/v1/settings/channels").json()  # noqa: E731
                       if c["channel"] == "sms")
    assert sms()["ready"] is False
    resp = client.put("/api/v1/settings/providers/twilio", json={
        "account_sid": world["account"], "auth_token": world["token"],
        "phone_number": world["number"]})
    assert resp.status_code == 200, resp.text
    assert world["token"] not in resp.text
    assert sms() == {"channel": "sms", "ready": True, "missing": []}


def test_2_contacts_with_phones_in_a_segment(world):
    client = world["client"]
    people = {
        "ana": {"name": "Ana Souza", "phone": "+1 202-555-0143"},
        "ben": {"name": "Ben Okafor", "phone": "(202) 555-0144"},
        "cleo": {"name": "Cleo Marsh", "email": "cleo.marsh@example.com"},       # no phone
        "dan": {"name": "Dan Whit", "phone": "+1 202 555 0146",
                "unsubscribed": {"sms": True}},                                 # SMS opt-out
    }
    ids = {}
    for key, data in people.items():
        resp = client.post("/api/v1/contacts", json=data)
        assert resp.status_code == 201, resp.text
        ids[key] = resp.json()
    assert ids["ana"]["phone"] == "+12025550143" and ids["ben"]["phone"] == "+12025550144"
    tag = client.post("/api/v1/tags", json={"title": "Office riders", "kind": "contact"})
    assert tag.status_code == 201, tag.text
    resp = client.post(f"/api/v1/tags/{tag.json()['id']}/contacts",
                       json={"contact_ids": [c["id"] for c in ids.values()]})
    assert resp.status_code == 200, resp.text
    segment = client.post("/api/v1/segments", json={
        "name": "Office riders",
        "rules": {"match": "all", "rules": [{"type": "has_tag", "tag_id": tag.json()["id"]}]}})
    assert segment.status_code == 201, segment.text
    world.update(contacts=ids, segment_id=segment.json()["id"])


def test_3_an_sms_campaign_with_the_starter_writer_and_reviewer_needs_no_template(world):
    client = world["client"]
    goal = client.post("/api/v1/goals", json={"name": "Book a fleet check",
                                              "description": "Get a free fleet check booked"})
    assert goal.status_code == 201, goal.text
    agents = client.get("/api/v1/agents", params={"limit": 100}).json()["items"]
    writer = next(a for a in agents if a["type"] == "writer" and a["is_starter"])
    reviewer = next(a for a in agents if a["type"] == "reviewer" and a["is_starter"])
    campaign = client.post("/api/v1/campaigns", json={
        "name": "Fleet check texts", "channel": "sms", "goal_id": goal.json()["id"],
        "segment_id": world["segment_id"], "writer_agent_id": writer["id"],
        "reviewer_agent_id": reviewer["id"], "instructions": "Short and friendly.",
        "status": "active"})
    assert campaign.status_code == 201, campaign.text
    world["campaign_id"] = campaign.json()["id"]


def test_4_a_live_run_drafts_texts_for_reachable_phones_and_skips_the_rest(world):
    client = world["client"]
    resp = client.post(f"/api/v1/campaigns/{world['campaign_id']}/runs", json={"type": "live"})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    world["run_id"] = run_id
    drafts = wait_for(lambda: len(_drafts(client, run_id, "pending_approval")) >= 2
                      and _drafts(client, run_id, "pending_approval"))
    assert sorted(d["to_address"] for d in drafts) == ["+12025550143", "+12025550144"]
    for d in drafts:
        assert "STOP" in d["body"]
        assert len(d["body"]) <= 160
    run = wait_for(lambda: (lambda r: r["counts"]["skipped"] == 2 and r)(_run(client, run_id)))
    assert sorted(s["reason"] for s in run["skips"]) == ["no_phone", "unsubscribed"]
    world["drafts"] = {d["to_address"]: d for d in drafts}


def test_5_approving_sends_each_text_once_through_twilio(world, stack):
    client = world["client"]
    resp = client.post(f"/api/v1/runs/{world['run_id']}/approve-all")
    assert resp.status_code == 200, resp.text
    got = wait_for(lambda: len(sent_to(stack, world)) >= 2 and sent_to(stack, world))
    time.sleep(1.5)
    got = sent_to(stack, world)
    assert sorted(m["to"] for m in got) == ["+12025550143", "+12025550144"]
    for m in got:
        assert m["from"] == world["number"]
        assert m["user"] == world["account"]
        assert m["body"] == world["drafts"][m["to"]]["body"]
        assert m["status_callback"] == f"{PUBLIC}/webhooks/twilio/sms/status"
    # Nothing for the contact without a phone or the one who opted out of SMS.
    assert sent_to(stack, world, to="+12025550146") == []

    comms = wait_for(lambda: (lambda cs: len(cs) == 2 and all(c["status"] == "sent" for c in cs)
                              and cs)(_comms(client, run_id=world["run_id"], channel="sms")))
    assert comms, _comms(client, run_id=world["run_id"])
    sids = {m["to"]: m["sid"] for m in got}
    for c in comms:
        assert (c["channel"], c["direction"], c["provider"]) == ("sms", "outbound", "twilio")
        assert c["provider_message_id"] == sids[c["to_address"]]
        assert c["from_address"] == world["number"]
    run = wait_for(lambda: (lambda r: r["counts"]["sent"] == 2 and r)(_run(client, world["run_id"])))
    assert run["counts"]["sent"] == 2 and run["counts"]["failed"] == 0
    world["messages"] = {m["to"]: m for m in got}
    world["comms"] = {c["to_address"]: c for c in comms}


def test_6_twilios_signed_delivered_callback_marks_the_text_delivered(world, stack):
    client = world["client"]
    message = world["messages"]["+12025550143"]
    pairs, signature = stack.twilio.status_callback(message, "delivered", world["token"])
    resp = post_twilio(stack, "/webhooks/twilio/sms/status", pairs, signature)
    assert resp.status_code == 200, resp.text
    comm = client.get(f"/api/v1/communications/{world['comms']['+12025550143']['id']}").json()
    assert (comm["status"], comm["provider_status"]) == ("delivered", "delivered")
    assert comm["delivered_at"]
    # A callback signed with another token changes nothing.
    pairs, bad = stack.twilio.status_callback(world["messages"]["+12025550144"], "undelivered",
                                              "not-the-token", error_code=30003)
    assert post_twilio(stack, "/webhooks/twilio/sms/status", pairs, bad).status_code == 403
    other = client.get(f"/api/v1/communications/{world['comms']['+12025550144']['id']}").json()
    assert other["status"] == "sent"


def test_7_a_stop_reply_joins_the_thread_and_the_next_run_skips_that_number(world, stack):
    client = world["client"]
    ben = world["contacts"]["ben"]
    pairs, signature = inbound_sms(world["account"], "+12025550144", world["number"], "STOP",
                                   world["token"], f"{PUBLIC}/webhooks/twilio/sms/inbound")
    resp = post_twilio(stack, "/webhooks/twilio/sms/inbound", pairs, signature)
    assert resp.status_code == 200, resp.text
    inbound = wait_for(lambda: _comms(client, direction="inbound", channel="sms"))
    assert [(c["from_address"], c["body"]) for c in inbound] == [("+12025550144", "STOP")]
    assert inbound[0]["thread_id"] == world["comms"]["+12025550144"]["thread_id"]
    assert wait_for(lambda: client.get(f"/api/v1/contacts/{ben['id']}").json()
                    ["unsubscribed"].get("sms")) is True

    resp = client.post(f"/api/v1/campaigns/{world['campaign_id']}/runs", json={"type": "live"})
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    run = wait_for(lambda: (lambda r: r["counts"]["targeted"] == 4 and r)(_run(client, run_id)))
    assert sorted((s["contact_id"], s["reason"]) for s in run["skips"]) == sorted([
        (world["contacts"]["cleo"]["id"], "no_phone"),
        (world["contacts"]["dan"]["id"], "unsubscribed"),
        (ben["id"], "unsubscribed")])
    drafts = _drafts(client, run_id)
    assert [d["to_address"] for d in drafts] == ["+12025550143"]
    assert client.post(f"/api/v1/runs/{run_id}/approve-all").status_code == 200
    got = wait_for(lambda: len(sent_to(stack, world, to="+12025550143")) == 2
                   and sent_to(stack, world, to="+12025550143"))
    assert len(got) == 2
    time.sleep(1)
    assert len(sent_to(stack, world, to="+12025550144")) == 1
    # The second text to Ana continues the conversation of that number pair.
    second = wait_for(lambda: _comms(client, run_id=run_id, channel="sms"))
    assert second[0]["thread_id"] == world["comms"]["+12025550143"]["thread_id"]
