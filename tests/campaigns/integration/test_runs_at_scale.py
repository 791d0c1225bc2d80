"""A live run over more than one page of audience: paged by cursor, drafted in bulk, approved in
batches of 500, every approved message delivered once and the run completed."""
import base64
import uuid

import requests

from tests.campaigns.integration.helpers import (
    ctx_of, drafts_of, run_detail, set_up_email, signup, starter, wait_for)

AUDIENCE = 1201  # two pages of resolve_segment, three approval batches


def test_a_run_of_1201_contacts_pages_the_audience_and_approves_in_batches(api, stack):
    org = signup(api)
    campaign = starter(org)
    set_up_email(org, stack)
    domain = f"bulk-{uuid.uuid4().hex[:8]}.example.org"
    tag = f"bulk-{uuid.uuid4().hex[:6]}"
    csv = "name,email\n" + "".join(f"Guest {i:04d},guest{i:04d}@{domain}\n" for i in range(AUDIENCE))
    ctx = ctx_of(org)
    with stack.rpc(timeout=120) as rpc:
        upload = rpc.contacts.begin_upload(ctx, {"filename": "guests.csv", "last": True,
                                                 "chunk": base64.b64encode(csv.encode()).decode()})
        result = rpc.contacts.import_contacts(ctx, {"upload_id": upload["upload_id"], "mode": "sync",
                                                    "mapping": {"name": "name", "email": "email",
                                                                "add_tags": [tag]}})
        assert result["counts"]["created"] == AUDIENCE, result
        [tag_row] = [t for t in rpc.contacts.list_tags(ctx, {"q": tag}) if t["title"] == tag]
        segment = rpc.contacts.create_segment(ctx, {"name": "Everyone", "rules": {
            "match": "all", "rules": [{"type": "has_tag", "tag_id": tag_row["id"]}]}})
    org.patch(f"/api/v1/campaigns/{campaign['id']}", json={"segment_id": segment["id"]})
    resp = org.post(f"/api/v1/campaigns/{campaign['id']}/runs", json={"type": "live"})
    assert resp.status_code == 201, resp.text
    run = resp.json()

    drafted = wait_for(lambda: (lambda r: r if r["counts"]["drafted"] == AUDIENCE else None)(
        run_detail(org, run["id"])), timeout=120, what="every contact drafted")
    assert drafted["counts"]["targeted"] == AUDIENCE and drafted["counts"]["skipped"] == 0
    assert drafted["counts"]["pending_approval"] == AUDIENCE
    # One event per page: run_queued worked the first 1,000, one run_page (carrying the cursor)
    # the rest, so no worker was held for the whole audience.
    conn = stack.db("campaigns")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT event_type, payload->>'cursor' FROM outbox "
                    "WHERE payload->>'run_id' = %s AND event_type IN ('run_page', 'run_progress') "
                    "ORDER BY id", (run["id"],))
        events = cur.fetchall()
    conn.close()
    assert [e[0] for e in events] == ["run_progress", "run_page", "run_progress"]
    assert events[1][1]  # the cursor after the first page

    first = org.get("/api/v1/drafts", params={"run_id": run["id"], "limit": 500}).json()
    second = org.get("/api/v1/drafts", params={"run_id": run["id"], "limit": 500,
                                                "after": first["next_cursor"]}).json()
    assert len({d["id"] for d in first["items"] + second["items"]}) == 1000

    resp = org.post(f"/api/v1/runs/{run['id']}/approve-all")
    assert resp.json() == {"run_id": run["id"], "approved": AUDIENCE}
    done = wait_for(lambda: (lambda r: r if r["status"] == "completed" else None)(
        run_detail(org, run["id"])), timeout=240, interval=1, what="the run to complete")
    assert {k: done["counts"][k] for k in ("drafted", "approved", "sent", "failed")} == {
        "drafted": AUDIENCE, "approved": AUDIENCE, "sent": AUDIENCE, "failed": 0}
    delivered = [m for m in requests.get(f"{stack.mail_url}/messages", timeout=30).json()
                 if any(r.endswith("@" + domain) for r in m.get("rcpt_to", []))]
    assert len(delivered) == AUDIENCE
    assert len({tuple(m["rcpt_to"]) for m in delivered}) == AUDIENCE
    assert drafts_of(org, run["id"], status="pending_approval") == []
