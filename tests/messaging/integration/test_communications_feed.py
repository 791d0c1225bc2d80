"""The communications feed: filters, newest-first keyset pages, threads in order, and another
organization's rows are not found."""
import uuid

from tests.messaging.helpers import b64, inbound_key, new_ctx, seed_outbound


def reply(address, to_token, n):
    return (f"From: Someone <{address}>\r\nTo: reply+{to_token}@in.example.org\r\n"
            f"Subject: Re: hello\r\nMessage-ID: <r{n}-{uuid.uuid4().hex}@example.com>\r\n"
            f"In-Reply-To: <out-{to_token}@example.org>\r\n\r\nReply number {n}.\r\n").encode()


def test_feed_filters_pages_and_threads(stack):
    ctx = new_ctx()
    org_id = ctx["org_id"]
    key = inbound_key(stack, org_id)
    campaign_a, run_a = str(uuid.uuid4()), str(uuid.uuid4())
    threads = []
    for i in range(3):
        token = f"t{i}-{uuid.uuid4().hex[:6]}"
        comm_id, thread_id = seed_outbound(
            stack, org_id, f"<out-{token}@example.org>", f"p{i}@example.com", "hello",
            reply_token=token, campaign_id=campaign_a if i < 2 else str(uuid.uuid4()),
            run_id=run_a if i < 2 else None)
        threads.append((token, comm_id, thread_id))
    with stack.rpc() as rpc:
        for i, (token, _, _) in enumerate(threads):
            rpc.messaging.receive_email(key, b64(reply(f"p{i}@example.com", token, i)))

        everything = rpc.messaging.list_communications(ctx, {})["communications"]
        assert len(everything) == 6
        stamps = [(c["created_at"], c["id"]) for c in everything]
        assert stamps == sorted(stamps, reverse=True)

        inbound = rpc.messaging.list_communications(ctx, {"direction": "inbound"})
        assert [c["stripped_text"] for c in inbound["communications"]] == \
            ["Reply number 2.", "Reply number 1.", "Reply number 0."]

        of_campaign = rpc.messaging.list_communications(ctx, {"campaign_id": campaign_a})
        assert len(of_campaign["communications"]) == 4
        of_run_inbound = rpc.messaging.list_communications(
            ctx, {"run_id": run_a, "direction": "inbound"})
        assert len(of_run_inbound["communications"]) == 2

        first = rpc.messaging.list_communications(ctx, {"limit": 4})
        second = rpc.messaging.list_communications(ctx, {"limit": 4,
                                                         "cursor": first["next_cursor"]})
        assert second["next_cursor"] is None
        assert [c["id"] for c in first["communications"] + second["communications"]] == \
            [c["id"] for c in everything]

        token, out_id, thread_id = threads[0]
        thread = rpc.messaging.get_thread(ctx, thread_id)
        assert [m["direction"] for m in thread["messages"]] == ["outbound", "inbound"]
        assert thread["messages"][0]["id"] == out_id


def test_another_organizations_rows_are_not_found_over_http(stack, api):
    owner_ctx = new_ctx()
    comm_id, thread_id = seed_outbound(stack, owner_ctx["org_id"], "<x-%s@example.org>"
                                       % uuid.uuid4().hex, "a@example.com", "hello")
    email = f"other-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Other Org", "description": "Someone else."},
        "owner": {"name": "Other Owner", "email": email, "password": "correct-horse-battery"}})
    assert resp.status_code == 201, resp.text
    other = api.as_(resp.json()["token"])
    for path in (f"/api/v1/communications/{comm_id}", f"/api/v1/threads/{thread_id}",
                 "/api/v1/communications/not-a-uuid", f"/api/v1/threads/{uuid.uuid4()}"):
        resp = other.get(path)
        assert resp.status_code == 404, (path, resp.text)
        assert resp.json()["error"] == "not_found"
    assert other.get("/api/v1/communications").json()["communications"] == []


def test_bad_feed_filters_are_400_with_the_field_named(stack, api):
    email = f"f-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Filter Org", "description": "x"},
        "owner": {"name": "F Owner", "email": email, "password": "correct-horse-battery"}})
    owner = api.as_(resp.json()["token"])
    for params, field in (({"direction": "sideways"}, "direction"), ({"limit": "0"}, "limit"),
                          ({"campaign_id": "nope"}, "campaign_id"),
                          ({"cursor": "garbage!"}, "cursor")):
        resp = owner.get("/api/v1/communications", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert field in resp.json()["errors"], resp.json()
