"""The run worker under failure and at scale: one page per event with redeliveries that change
nothing, leases that keep the stalled-run sweep away from runs being worked, retries that hold no
lock while a slow model writes, and every query scoped by the organization."""
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2.errors
from nameko.standalone.events import event_dispatcher

from services.campaigns import runs, store
from services.common.db import Tx
from tests.campaigns.integration.helpers import (
    drafts_of, run_detail, segment_with_contacts, set_up_email, signup, starter, wait_for)

GUESTS = [
    {"name": "Ada Lovelace", "email": "ada.lovelace@example.org"},
    {"name": "Ben Adler", "email": "ben.adler@example.org"},
    {"name": "Cy Phone", "phone": "+12025550143"},
]


def live_run_drafted(api, stack):
    """An organization with a live run of two drafts and one skip, its audience exhausted."""
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    tag = uuid.uuid4().hex[:8]
    guests = [dict(g, email=g["email"].replace("@", f"+{tag}@")) if g.get("email") else g
              for g in GUESTS]
    segment_id, _ = segment_with_contacts(stack, org, guests)
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment_id})
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"})
    assert resp.status_code == 201, resp.text
    run = resp.json()
    wait_for(lambda: run_row(stack, run["id"])["audience_exhausted"], what="the audience paged")
    assert len(drafts_of(org, run["id"])) == 2
    return org, campaign, run


def run_row(stack, run_id):
    conn = stack.db("campaigns")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT status, cursor, audience_exhausted, lease_until, lease_token::text, "
                        "lease_until > now() AS leased FROM runs WHERE id = %s", (run_id,))
            keys = ("status", "cursor", "audience_exhausted", "lease_until", "lease_token", "leased")
            return dict(zip(keys, cur.fetchone()))
    finally:
        conn.close()


def sql(stack, statement, params=()):
    conn = stack.db("campaigns")
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def rewind(stack, run_id, lease_until_sql="NULL", token=None):
    """A worker that died mid-audience: the run is running with its cursor back at the start."""
    sql(stack, f"UPDATE runs SET cursor = NULL, audience_exhausted = false, updated_at = now(), "
               f"lease_until = {lease_until_sql}, lease_token = %s WHERE id = %s", (token, run_id))


def sweep(stack):
    """One tick of the stalled-run sweep (the service's timer runs the same every minute)."""
    conn = stack.db("campaigns")
    try:
        with conn:
            return runs.requeue_expired(Tx(conn))
    finally:
        conn.close()


def dispatch(stack, event_type, payload):
    event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})(
        "campaigns", event_type, dict(payload, event_id=str(uuid.uuid4())))


def test_a_redelivered_run_page_for_a_cursor_already_passed_changes_nothing(api, stack):
    org, campaign, run = live_run_drafted(api, stack)
    rewind(stack, run["id"])
    page = {"org_id": org.org_id, "run_id": run["id"], "campaign_id": campaign["id"],
            "channel": "email", "run_type": "live"}
    dispatch(stack, "run_page", dict(page, cursor="a-cursor-the-run-has-passed"))
    time.sleep(2)
    row = run_row(stack, run["id"])
    assert (row["audience_exhausted"], row["lease_token"]) == (False, None)
    # The page the run stands at is worked once, and writes no second draft for anyone.
    dispatch(stack, "run_page", dict(page, cursor=None))
    wait_for(lambda: run_row(stack, run["id"])["audience_exhausted"], what="the page worked")
    detail = run_detail(org, run["id"])
    assert (detail["counts"]["drafted"], detail["counts"]["skipped"]) == (2, 1)
    assert len(drafts_of(org, run["id"])) == 2
    assert run_row(stack, run["id"])["lease_until"] is None


def test_a_run_whose_worker_holds_a_live_lease_is_left_alone_by_the_sweep(api, stack):
    org, campaign, run = live_run_drafted(api, stack)
    token = str(uuid.uuid4())
    rewind(stack, run["id"], "now() + interval '10 minutes'", token)
    assert run["id"] not in sweep(stack)
    # Even a run_queued arriving for it leaves it to the worker that holds the lease.
    dispatch(stack, "run_queued", {"org_id": org.org_id, "run_id": run["id"],
                                   "campaign_id": campaign["id"], "channel": "email",
                                   "run_type": "live"})
    time.sleep(2)
    row = run_row(stack, run["id"])
    assert (row["audience_exhausted"], row["lease_token"], row["leased"]) == (False, token, True)


def test_a_run_whose_lease_expired_is_re_queued_and_finishes_without_duplicates(api, stack):
    org, campaign, run = live_run_drafted(api, stack)
    rewind(stack, run["id"], "now() - interval '1 second'", str(uuid.uuid4()))
    assert run["id"] in sweep(stack)
    assert run["id"] not in sweep(stack)  # another replica's sweep right after queues nothing
    wait_for(lambda: run_row(stack, run["id"])["audience_exhausted"],
             what="the re-queued run to be worked")
    row = run_row(stack, run["id"])
    assert (row["status"], row["lease_until"], row["lease_token"]) == ("running", None, None)
    detail = run_detail(org, run["id"])
    assert (detail["counts"]["drafted"], detail["counts"]["skipped"]) == (2, 1)
    assert "lease_token" not in detail and "lease_until" not in detail


def test_another_organizations_ids_change_and_count_nothing_in_the_store(api, stack):
    org, campaign, run = live_run_drafted(api, stack)
    [draft] = drafts_of(org, run["id"])[:1]
    other = str(uuid.uuid4())
    conn = stack.db("campaigns")
    try:
        with conn:
            tx = Tx(conn)
            assert store.set_drafts(tx, other, [{"id": draft["id"], "status": "rejected"}]) == 0
            assert store.set_run(tx, other, run["id"], status="cancelled") is None
            counts = store.run_counts(tx, other, run["id"])
            assert (counts["drafted"], counts["skipped"], counts["replied"]) == (0, 0, 0)
            assert store.run_skips(tx, other, run["id"]) == []
            assert store.skips_by_reason(tx, other, run["id"]) == {}
            assert store.history(tx, other, draft["id"]) == []
            assert store.versions(tx, other, campaign["id"], 20) == ([], 0)
            assert store.runs_of_campaign(tx, other, campaign["id"], active_only=False) == []
            assert store.has_open_drafts(tx, other, run["id"]) is False
            assert store.has_open_drafts(tx, org.org_id, run["id"]) is True
    finally:
        conn.close()
    assert drafts_of(org, run["id"], status="pending_approval")[0]["status"] == "pending_approval"
    assert run_detail(org, run["id"])["status"] == "running"


class FlakyModel:
    """A chat-completions endpoint that first refuses (the draft fails), then answers slowly."""

    def __init__(self, delay=3):
        self.mode, self.delay, self.calls = "refuse", delay, 0
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                model.calls += 1
                if model.mode == "refuse":
                    data, status = b'{"error": {"message": "model not loaded"}}', 400
                else:
                    time.sleep(model.delay)
                    content = json.dumps({"subject": "Our gala", "preheader": "",
                                          "body": "Would you join us at the spring gala?"})
                    data, status = json.dumps({"choices": [{"message": {
                        "role": "assistant", "content": content}}]}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_retry_holds_no_lock_while_a_slow_model_writes_and_a_second_retry_gets_409(api, stack):
    model = FlakyModel()
    try:
        org = signup(api)
        campaign = starter(org)
        set_up_email(org, stack)
        agent = org.post("/api/v1/agents", json={
            "type": "writer", "name": "Local LLM", "provider": "openai_compatible",
            "base_url": model.url, "model": "llama3.1:8b"}).json()
        org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"writer_agent_id": agent["id"]})
        resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"})
        assert resp.status_code == 201, resp.text
        [draft] = wait_for(lambda: [d for d in drafts_of(org, resp.json()["id"])
                                    if d["status"] == "failed"], what="a failed draft")
        model.mode = "slow"
        answers = []
        retries = [threading.Thread(target=lambda: answers.append(
            org.post(f"/api/v1/drafts/{draft['id']}/retry"))) for _ in range(2)]
        for t in retries:
            t.start()
        wait_for(lambda: model.calls >= 3, what="both retries to be writing")
        # While the model writes, nothing holds the draft's row.
        conn = stack.db("campaigns")
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT status FROM drafts WHERE id = %s FOR UPDATE NOWAIT",
                            (draft["id"],))
                assert cur.fetchone() == ("failed",)
        except psycopg2.errors.LockNotAvailable:
            raise AssertionError("the retry holds the draft's row lock while the model writes")
        finally:
            conn.close()
        for t in retries:
            t.join(timeout=60)
        assert sorted(a.status_code for a in answers) == [200, 409]
        won = next(a for a in answers if a.status_code == 200).json()
        lost = next(a for a in answers if a.status_code == 409).json()
        assert (won["status"], won["attempt"], won["subject"]) == (
            "pending_approval", 2, "Our gala")
        assert "changed while it was being written again" in lost["message"]
        assert org.get(f"/api/v1/drafts/{draft['id']}").json()["attempt"] == 2
    finally:
        model.close()


def test_an_sms_test_run_asks_for_a_test_recipient_with_a_phone_number(api, stack):
    org = signup(api)
    campaign = starter(org)
    resp = org.patch(f"/api/v1/campaigns/{campaign['id']}",
                     json={"channel": "sms", "template_id": None})
    assert resp.status_code == 200, resp.text
    reasons = org.get(f"/api/v1/campaigns/{campaign['id']}/preflight",
                      params={"type": "test"}).json()["reasons"]
    assert {"requirement": "test_recipients",
            "message": "add a test recipient with a phone number: a test run reaches only the "
                       "organization's test recipients, and none of them has one for sms"} in reasons
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "test"})
    assert resp.status_code == 422
    assert "test_recipients" in [r["requirement"] for r in resp.json()["reasons"]]


def test_a_campaign_shows_its_latest_20_versions_and_how_many_there_are(api, stack):
    org = signup(api)
    campaign = starter(org)
    for n in range(2, 24):
        resp = org.patch(f"/api/v1/campaigns/{campaign['id']}",
                         json={"instructions": f"Mention the raffle, take {n}."})
        assert resp.status_code == 200 and resp.json()["version"] == n
    shown = org.get(f"/api/v1/campaigns/{campaign['id']}").json()
    assert shown["versions_total"] == 23
    assert [v["version"] for v in shown["versions"]] == list(range(23, 3, -1))
    assert shown["versions"][0]["instructions"] == "Mention the raffle, take 23."
