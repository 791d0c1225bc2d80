"""Runs and drafts over HTTP with every service running: preflight, test and live runs, skips,
review verdicts, approval, rejection, sending over SMTP, cancel, failures and retry, restart."""
import time

from nameko.standalone.events import event_dispatcher

from tests.campaigns.integration.helpers import (
    ctx_of, drafts_of, mail_to, run_detail, segment_with_contacts, set_up_email, signup, starter,
    wait_for)

GALA = [
    {"name": "Ada Lovelace", "email": "ada.lovelace@example.org"},
    {"name": "Ben Adler", "email": "ben.adler@example.org"},
    {"name": "Cy Phone", "phone": "+12025550143"},
    {"name": "Dee Optout", "email": "dee.optout@example.org", "unsubscribed_email": True},
]


def unique(contacts, tag):
    return [dict(c, email=c["email"].replace("@", f"+{tag}@")) if c.get("email") else c
            for c in contacts]


def start(org, campaign_id, run_type):
    resp = org.post(f"/api/v1/campaigns/{campaign_id}/runs", json={"type": run_type})
    assert resp.status_code == 201, resp.text
    return resp.json()


def drafted(org, run_id, n):
    return wait_for(lambda: (lambda d: d if len(d) == n else None)(drafts_of(org, run_id)),
                    what=f"{n} drafts")


def test_preflight_answers_422_listing_every_missing_requirement(api):
    org = signup(api)
    campaign = org.post("/api/v1/campaigns", json={"name": "Bare", "channel": "email",
                                                   "status": "inactive"}).json()
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["error"] == "not_ready"
    assert [r["requirement"] for r in body["reasons"]] == [
        "goal", "writer", "reviewer", "template", "segment", "active", "channel_setup"]
    assert org.get("/api/v1/runs", params={"campaign_id": campaign["id"]}).json()["items"] == []


def test_a_test_run_needs_no_segment_but_does_need_email_setup(api, stack):
    org = signup(api)
    campaign = starter(org)
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"})
    assert resp.status_code == 422
    assert [r["requirement"] for r in resp.json()["reasons"]] == ["channel_setup"]
    set_up_email(org, stack)
    assert org.get(f"/api/v1/campaigns/{campaign['id']}/preflight",
                   params={"type": "test"}).json() == {"ready": True, "reasons": []}


def test_a_test_run_writes_and_sends_only_to_the_test_recipients(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    run = start(org, campaign["id"], "test")
    assert (run["status"], run["run_type"], run["version"]) == ("queued", "test", 1)
    [draft] = drafted(org, run["id"], 1)
    assert draft["is_test"] is True and draft["to_address"] == org.owner_email
    assert draft["status"] == "pending_approval" and draft["verdict"] == "approve"
    assert draft["subject"].startswith("Jordan, a quick hello from Larkspur Events")
    assert draft["body"].startswith("Hi Jordan,")
    resp = org.post(f"/api/v1/runs/{run['id']}/approve-all")
    assert resp.json() == {"run_id": run["id"], "approved": 1}
    done = wait_for(lambda: (lambda r: r if r["status"] == "completed" else None)(
        run_detail(org, run["id"])), what="the test run to complete")
    final = org.get(f"/api/v1/drafts/{draft['id']}").json()
    assert (final["status"], final["error"]) == ("sent", None), final
    assert done["counts"] == {"targeted": 1, "skipped": 0, "drafted": 1, "approved": 1, "rejected": 0,
                              "sent": 1, "failed": 0, "replied": 0, "pending_approval": 0, "flagged": 0}
    assert len(mail_to(stack, org.owner_email)) == 1
    history = [(h["from_status"], h["to_status"]) for h in
               org.get(f"/api/v1/drafts/{draft['id']}").json()["history"]]
    assert history == [(None, "generating"), ("generating", "pending_approval"),
                       ("pending_approval", "approved"), ("approved", "sending"), ("sending", "sent")]


def test_a_live_run_drafts_each_eligible_contact_and_skips_the_rest_with_reasons(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    contacts = unique(GALA, org.org_id[:8])
    segment_id, ids = segment_with_contacts(stack, org, contacts)
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    run = start(org, campaign["id"], "live")
    drafts = {d["to_name"]: d for d in drafted(org, run["id"], 2)}
    assert set(drafts) == {"Ada Lovelace", "Ben Adler"}
    assert all(d["verdict"] == "approve" and d["review_reasons"] == [] for d in drafts.values())
    assert all(d["status"] == "pending_approval" and d["is_test"] is False for d in drafts.values())
    ada, ben = drafts["Ada Lovelace"], drafts["Ben Adler"]
    assert ada["subject"].startswith("Ada, a quick hello") and ada["body"].startswith("Hi Ada,")

    detail = wait_for(lambda: (lambda r: r if r["counts"]["skipped"] == 2 else None)(
        run_detail(org, run["id"])), what="skips recorded")
    assert sorted((s["contact_id"], s["reason"]) for s in detail["skips"]) == sorted([
        (ids["Cy Phone"], "no_email"), (ids["Dee Optout"], "unsubscribed")])
    assert detail["status"] == "running"  # waiting for a person

    resp = org.post(f"/api/v1/drafts/{ada['id']}/approve", json={"note": "looks right"})
    assert resp.status_code == 200, resp.text
    resp = org.post(f"/api/v1/drafts/{ben['id']}/reject", json={"note": "wrong tone"})
    assert resp.status_code == 200 and resp.json()["status"] == "rejected"
    assert org.post(f"/api/v1/drafts/{ben['id']}/approve").status_code == 409

    done = wait_for(lambda: (lambda r: r if r["status"] == "completed" else None)(
        run_detail(org, run["id"])), what="the live run to complete")
    assert {k: done["counts"][k] for k in ("targeted", "skipped", "drafted", "approved", "rejected",
                                           "sent", "failed")} == {
        "targeted": 4, "skipped": 2, "drafted": 2, "approved": 1, "rejected": 1, "sent": 1, "failed": 0}
    assert len(mail_to(stack, ada["to_address"])) == 1
    assert mail_to(stack, ben["to_address"]) == []
    listed = org.get("/api/v1/runs", params={"campaign_id": campaign["id"], "run_type": "live"}).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]

    # Ada replies; the run counts it (once, however many messages the thread gets).
    sent = org.get("/api/v1/communications", params={"run_id": run["id"]}).json()["items"]
    [outbound] = [c for c in sent if c["direction"] == "outbound"]
    inbound_url = org.get("/api/v1/settings/email").json()["inbound"]["webhook_url"]
    path = inbound_url[inbound_url.index("/webhooks/"):]
    for n in (1, 2):
        raw = (f"From: Ada Lovelace <{ada['to_address']}>\r\nTo: jordan@larkspur.example.org\r\n"
               f"Subject: Re: {ada['subject']}\r\nMessage-ID: <reply-{n}-{run['id']}@example.org>\r\n"
               f"In-Reply-To: {outbound['message_id']}\r\nReferences: {outbound['message_id']}\r\n"
               f"Date: Tue, 01 Dec 2026 10:0{n}:00 +0000\r\n\r\nYes, let's talk next week. ({n})\r\n")
        resp = api.post(path, data=raw.encode(), headers={"Content-Type": "message/rfc822"})
        assert resp.status_code == 200, resp.text
    replied = wait_for(lambda: (lambda r: r if r["counts"]["replied"] else None)(
        run_detail(org, run["id"])), what="the reply to be counted")
    time.sleep(1)
    assert run_detail(org, run["id"])["counts"]["replied"] == replied["counts"]["replied"] == 1


def test_a_redelivered_run_queued_never_duplicates_drafts_or_skips(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    segment_id, _ = segment_with_contacts(stack, org, unique(GALA, org.org_id[:8]))
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    run = start(org, campaign["id"], "live")
    drafted(org, run["id"], 2)
    wait_for(lambda: run_detail(org, run["id"])["counts"]["skipped"] == 2, what="skips")
    # A worker that crashed after committing its pages but before finishing: the run is running
    # with its cursor rewound, and run_queued arrives again.
    conn = stack.db("campaigns")
    with conn, conn.cursor() as cur:
        cur.execute("UPDATE runs SET cursor = NULL, audience_exhausted = false WHERE id = %s",
                    (run["id"],))
    conn.close()
    dispatch = event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})
    dispatch("campaigns", "run_queued", {"org_id": org.org_id, "run_id": run["id"],
                                         "event_id": "6f1c9a3e-5b7d-4f4a-8c0e-1b3d5f7a9c2e",
                                         "campaign_id": campaign["id"], "channel": "email",
                                         "run_type": "live"})
    wait_for(lambda: _exhausted(stack, run["id"]), what="the worker to page the audience again")
    detail = run_detail(org, run["id"])
    assert detail["counts"]["drafted"] == 2 and detail["counts"]["skipped"] == 2
    assert len(drafts_of(org, run["id"])) == 2


def _exhausted(stack, run_id):
    conn = stack.db("campaigns")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT audience_exhausted FROM runs WHERE id = %s", (run_id,))
        value = cur.fetchone()[0]
    conn.close()
    return value


def test_with_auto_approval_on_drafts_go_out_without_a_person(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    resp = org.patch("/api/v1/organization", json={"auto_approve_campaign_emails": True})
    assert resp.status_code == 200, resp.text
    run = start(org, campaign["id"], "test")
    done = wait_for(lambda: (lambda r: r if r["status"] == "completed" else None)(
        run_detail(org, run["id"])), what="the auto-approved run to complete")
    assert (done["counts"]["approved"], done["counts"]["sent"]) == (1, 1)
    [draft] = drafts_of(org, run["id"])
    history = org.get(f"/api/v1/drafts/{draft['id']}").json()["history"]
    assert "auto-approved" in history[1]["note"]


def test_cancelling_a_run_rejects_its_waiting_drafts_and_sends_nothing(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    contacts = unique(GALA, org.org_id[:8])
    segment_id, _ = segment_with_contacts(stack, org, contacts)
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    run = start(org, campaign["id"], "live")
    drafts = drafted(org, run["id"], 2)
    resp = org.post(f"/api/v1/runs/{run['id']}/cancel")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
    assert {d["status"] for d in drafts_of(org, run["id"])} == {"rejected"}
    assert org.post(f"/api/v1/drafts/{drafts[0]['id']}/approve").status_code == 409
    assert org.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 409
    time.sleep(1)
    assert all(mail_to(stack, d["to_address"]) == [] for d in drafts)


def test_a_writer_whose_model_endpoint_is_down_fails_the_draft_and_retry_fails_the_same_way(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    agent = org.post("/api/v1/agents", json={
        "type": "writer", "name": "Local LLM", "provider": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1", "model": "llama3.1:8b"}).json()
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"writer_agent_id": agent["id"]})
    run = start(org, campaign["id"], "test")
    [draft] = wait_for(lambda: [d for d in drafts_of(org, run["id"]) if d["status"] == "failed"],
                       what="a failed draft")
    assert draft["error"].startswith("writer failed: model provider failed after")
    assert "could not reach 127.0.0.1:9" in draft["error"]
    assert draft["allowed_actions"] == ["retry"]
    resp = org.post(f"/api/v1/drafts/{draft['id']}/retry")
    assert resp.status_code == 200, resp.text
    again = resp.json()
    assert again["status"] == "failed" and again["error"] == draft["error"]
    assert again["attempt"] == 2
    assert [(h["from_status"], h["to_status"]) for h in again["history"]][-2:] == [
        ("failed", "generating"), ("generating", "failed")]
    assert org.post(f"/api/v1/drafts/{draft['id']}/approve").status_code == 409


def test_runs_keep_the_instructions_version_they_started_with(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    first = start(org, campaign["id"], "test")
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"instructions": "Formal, please."})
    second = start(org, campaign["id"], "test")
    assert (run_detail(org, first["id"])["version"], run_detail(org, second["id"])["version"]) == (1, 2)
    assert run_detail(org, second["id"])["instructions"] == "Formal, please."
    [formal] = drafted(org, second["id"], 1)
    assert formal["body"].startswith("Hi Jordan,")  # the template's own greeting is kept
    assert formal["body"].endswith("Kind regards,\n" + org.org_name)


def test_a_viewer_may_read_but_not_start_runs(api, stack):
    org = signup(api)
    campaign = starter(org)
    email = f"viewer-{org.org_id[:8]}@larkspur.example.org"
    resp = org.post("/api/v1/team", json={"email": email, "password": "another horse battery staple 7",
                                           "name": "Vic Viewer", "role": "viewer"})
    assert resp.status_code in (200, 201), resp.text
    login = api.post("/api/v1/auth/login", json={"email": email, "password": "another horse battery staple 7"})
    assert login.status_code == 200, login.text
    viewer = api.as_(login.json()["token"], org.org_id)
    assert viewer.get(f"/api/v1/campaigns/{campaign['id']}").status_code == 200
    assert viewer.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"}).status_code == 403


def test_a_test_run_writes_one_draft_per_configured_test_recipient(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    recipients = [{"email": f"qa-{org.org_id[:8]}@larkspur.example.org", "name": "Quinn Assurance"},
                  {"email": f"cmo-{org.org_id[:8]}@larkspur.example.org", "name": "Casey Marketing"}]
    resp = org.put("/api/v1/organization/test-recipients", json={"recipients": recipients})
    assert resp.status_code == 200, resp.text
    run = start(org, campaign["id"], "test")
    drafts = drafted(org, run["id"], 2)
    assert sorted((d["to_address"], d["body"].split("\n")[0]) for d in drafts) == sorted([
        (recipients[0]["email"], "Hi Quinn,"), (recipients[1]["email"], "Hi Casey,")])
    assert all(d["is_test"] and d["contact_id"] is None for d in drafts)


def test_a_live_run_whose_segment_was_deleted_is_not_ready(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    segment_id, _ = segment_with_contacts(stack, org, unique(GALA[:1], org.org_id[:8]))
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    with stack.rpc() as rpc:
        rpc.contacts.delete_segment(ctx_of(org), segment_id)
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"})
    assert resp.status_code == 422
    assert resp.json()["reasons"] == [{"requirement": "segment", "message":
                                       "the campaign's segment no longer exists; choose another"}]


def test_another_organizations_runs_and_drafts_are_not_found(api, stack):
    org, other = signup(api), signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    run = start(org, campaign["id"], "test")
    [draft] = drafted(org, run["id"], 1)
    for method, path in [("GET", f"/api/v1/runs/{run['id']}"),
                         ("POST", f"/api/v1/runs/{run['id']}/cancel"),
                         ("POST", f"/api/v1/runs/{run['id']}/approve-all"),
                         ("GET", f"/api/v1/drafts/{draft['id']}"),
                         ("POST", f"/api/v1/drafts/{draft['id']}/approve"),
                         ("POST", f"/api/v1/drafts/{draft['id']}/reject"),
                         ("POST", f"/api/v1/drafts/{draft['id']}/retry")]:
        resp = other.request(method, path, json={} if method == "POST" else None)
        assert resp.status_code == 404, (method, path, resp.text)
    assert other.get("/api/v1/drafts", params={"run_id": run["id"]}).json()["items"] == []
    assert other.get("/api/v1/runs").json()["items"] == []
    assert org.get(f"/api/v1/drafts/{draft['id']}").json()["status"] == "pending_approval"


def test_a_campaign_runs_live_only_once_at_a_time_but_test_runs_may_overlap(api, stack):
    import threading

    import psycopg2
    import pytest

    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    segment_id, _ = segment_with_contacts(stack, org, unique(GALA[:1], org.org_id[:8]))
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    first = start(org, campaign["id"], "live")
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"})
    assert resp.status_code == 409, resp.text
    body = resp.json()
    assert (body["error"], body["active_run_id"]) == ("conflict", first["id"])
    assert body["message"].startswith(f"this campaign already has a live run in progress ({first['id']}, ")
    # Test runs only reach the test recipients: they may run beside the live one.
    assert start(org, campaign["id"], "test")["run_type"] == "test"
    assert org.get(f"/api/v1/campaigns/{campaign['id']}").json()["active_runs"][-1]["id"] == first["id"]

    # Two people pressing "run live" at the same moment: exactly one run starts.
    assert org.post(f"/api/v1/runs/{first['id']}/cancel").status_code == 200
    answers = []

    def press():
        answers.append(org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"}))

    threads = [threading.Thread(target=press) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
    live = org.get("/api/v1/runs", params={"campaign_id": campaign["id"], "run_type": "live"}).json()
    assert [r["status"] for r in live["items"]][1:] == ["cancelled"] and len(live["items"]) == 2

    # The database itself refuses a second active live run (not only the check before insert).
    with stack.db("campaigns") as conn, conn.cursor() as cur:
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO runs (id, org_id, campaign_id, channel, run_type, status, version, "
                        "instructions, snapshot) SELECT gen_random_uuid(), org_id, campaign_id, channel, "
                        "run_type, 'queued', version, instructions, snapshot FROM runs "
                        "WHERE campaign_id = %s AND run_type = 'live' AND status <> 'cancelled'",
                        (campaign["id"],))
