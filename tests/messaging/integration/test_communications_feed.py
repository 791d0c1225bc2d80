"""The communications feed: filters, newest-first keyset pages, threads in order, and another
organization's rows are not found."""
import uuid

import pytest

from services.common.errors import Invalid
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

        everything = rpc.messaging.list_communications(ctx, {})["items"]
        assert len(everything) == 6
        stamps = [(c["created_at"], c["id"]) for c in everything]
        assert stamps == sorted(stamps, reverse=True)

        inbound = rpc.messaging.list_communications(ctx, {"direction": "inbound"})
        assert [c["stripped_text"] for c in inbound["items"]] == \
            ["Reply number 2.", "Reply number 1.", "Reply number 0."]

        of_campaign = rpc.messaging.list_communications(ctx, {"campaign_id": campaign_a})
        assert len(of_campaign["items"]) == 4
        of_run_inbound = rpc.messaging.list_communications(
            ctx, {"run_id": run_a, "direction": "inbound"})
        assert len(of_run_inbound["items"]) == 2

        first = rpc.messaging.list_communications(ctx, {"limit": 4})
        second = rpc.messaging.list_communications(ctx, {"limit": 4,
                                                         "after": first["next_cursor"]})
        assert second["next_cursor"] is None
        assert [c["id"] for c in first["items"] + second["items"]] == \
            [c["id"] for c in everything]
        # `cursor` is still read, as a deprecated alias of `after`.
        assert rpc.messaging.list_communications(
            ctx, {"limit": 4, "cursor": first["next_cursor"]}) == second

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
    assert other.get("/api/v1/communications").json()["items"] == []


def test_bad_feed_filters_are_400_with_the_field_named(stack, api):
    email = f"f-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Filter Org", "description": "x"},
        "owner": {"name": "F Owner", "email": email, "password": "correct-horse-battery"}})
    owner = api.as_(resp.json()["token"])
    for params, field in (({"direction": "sideways"}, "direction"), ({"limit": "0"}, "limit"),
                          ({"campaign_id": "nope"}, "campaign_id"),
                          ({"after": "garbage!"}, "after"), ({"cursor": "garbage!"}, "cursor")):
        resp = owner.get("/api/v1/communications", params=params)
        assert resp.status_code == 400, (params, resp.text)
        assert field in resp.json()["errors"], resp.json()


def test_the_feed_pages_over_http_with_after_and_answers_items_and_next_cursor(stack, api):
    email = f"p-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Paging Org", "description": "x"},
        "owner": {"name": "P Owner", "email": email, "password": "correct-horse-battery"}})
    owner = api.as_(resp.json()["token"])
    org_id = resp.json()["organization"]["id"]
    ids = [seed_outbound(stack, org_id, f"<p{i}-{uuid.uuid4().hex}@example.org>",
                         f"p{i}@example.com", "hello")[0] for i in range(3)]
    first = owner.get("/api/v1/communications", params={"limit": 2}).json()
    assert set(first) == {"items", "next_cursor"}
    second = owner.get("/api/v1/communications",
                       params={"limit": 2, "after": first["next_cursor"]}).json()
    assert second["next_cursor"] is None
    assert [c["id"] for c in first["items"] + second["items"]] == list(reversed(ids))


def test_a_cursor_of_another_list_or_organization_or_garbage_is_400_naming_after(stack, api):
    import base64
    import datetime
    ours, theirs = new_ctx(), new_ctx()
    for ctx in (ours, theirs):
        for i in range(2):
            seed_outbound(stack, ctx["org_id"], f"<c{i}-{uuid.uuid4().hex}@example.org>",
                          f"c{i}@example.com", "hello")
    with stack.rpc() as rpc:
        their_cursor = rpc.messaging.list_communications(theirs, {"limit": 1})["next_cursor"]
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        campaigns_style = base64.urlsafe_b64encode(
            f"{now}|{uuid.uuid4()}".encode()).decode().rstrip("=")
        naive = base64.urlsafe_b64encode(f"2026-01-01T00:00:00|{uuid.uuid4()}".encode()).decode()
        for cursor in (their_cursor, campaigns_style, naive, "garbage!", "été", "=====",
                       base64.urlsafe_b64encode(b"\xff\xfe|x").decode(), "a" * 400):
            with pytest.raises(Invalid) as refused:
                rpc.messaging.list_communications(ours, {"after": cursor})
            assert list(refused.value.details["errors"]) == ["after"], cursor
    email = f"g-{uuid.uuid4().hex[:10]}@example.org"
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": "Cursor Org", "description": "x"},
        "owner": {"name": "C Owner", "email": email, "password": "correct-horse-battery"}})
    owner = api.as_(resp.json()["token"])
    for cursor in (their_cursor, campaigns_style, "garbage!", "été"):
        resp = owner.get("/api/v1/communications", params={"after": cursor})
        assert resp.status_code == 400, (cursor, resp.text)
        assert list(resp.json()["errors"]) == ["after"], resp.json()


def test_writes_by_id_never_touch_another_organizations_rows(stack):
    from tests.messaging.helpers import messaging_tx
    from services.messaging import store
    owner, other = new_ctx(), new_ctx()
    comm_id, thread_id = seed_outbound(stack, owner["org_id"], f"<w-{uuid.uuid4().hex}@example.org>",
                                       "w@example.com", "hello", status="sending")
    with stack.rpc() as rpc:
        before = rpc.messaging.get_thread(owner, thread_id)
    with messaging_tx(stack) as tx:
        store.set_status(tx, other["org_id"], [comm_id], "failed", error="x")
        store.finish_sending(tx, other["org_id"], comm_id, "sent")
        store.postpone(tx, other["org_id"], [comm_id], 60, "x")
        store.mark_bounced(tx, other["org_id"], comm_id, "hard", "x")
        store.update_communication(tx, other["org_id"], comm_id, {"status": "delivered"})
        store.touch_threads(tx, other["org_id"], [thread_id])
    with stack.rpc() as rpc:
        after = rpc.messaging.get_thread(owner, thread_id)
    assert after == before
    assert after["messages"][0]["status"] == "sending" and after["messages"][0]["error"] is None
