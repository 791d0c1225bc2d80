"""Approved drafts reach the SMTP sink exactly once, with threading headers, and a contact who
opted out is never mailed; one communications_sent event per batch."""
import time
import uuid

import pytest
import requests
from nameko.standalone.events import event_dispatcher

from tests.messaging.helpers import new_ctx, outbox_events


def wait_for(check, timeout=20, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            return value
        time.sleep(interval)


@pytest.fixture
def org(stack):
    """An organization whose email goes to the test stack's SMTP sink."""
    ctx = new_ctx()
    with stack.rpc() as rpc:
        rpc.messaging.set_sender_identity(ctx, {"name": "Jordan Ellis",
                                                "email": "jordan.ellis@example.org",
                                                "reply_domain": "in.example.org"})
        rpc.messaging.set_email_provider(ctx, {"kind": "smtp", "host": "127.0.0.1",
                                               "port": stack.smtp_port, "username": None,
                                               "password": None, "tls_mode": "none"})
    return ctx


def add_contact(stack, ctx, name, email, unsubscribed=False):
    with stack.rpc() as rpc:
        data = {"name": name, "email": email}
        if unsubscribed:
            data["unsubscribed"] = {"email": True}
        return rpc.contacts.create_contact(ctx, data)["id"]


def draft(contact_id, address, name, subject):
    return {"draft_id": str(uuid.uuid4()), "contact_id": contact_id, "to_address": address,
            "to_name": name, "subject": subject, "body": f"Hi {name.split()[0]},\n\nA quick idea."}


def dispatch(stack, payload):
    send = event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})
    send("campaigns", "drafts_approved", payload)


def sink_messages(stack, to_address):
    return requests.get(stack.mail_url + "/messages", params={"to": to_address}, timeout=30).json()


def batch(org, drafts, is_test=False):
    return {"event_id": str(uuid.uuid4()), "org_id": org["org_id"], "run_id": str(uuid.uuid4()),
            "campaign_id": str(uuid.uuid4()), "channel": "email", "is_test": is_test,
            "drafts": drafts}


def sent_results(stack, org):
    return [r for e in outbox_events(stack, "communications_sent") if e["org_id"] == org["org_id"]
            for r in e["results"]]


def test_approved_drafts_are_sent_once_even_when_the_event_arrives_twice(stack, org):
    tag = uuid.uuid4().hex[:8]
    people = [("Ana Souza", f"ana.{tag}@example.com"), ("Mark Feld", f"mark.{tag}@example.org")]
    drafts = [draft(add_contact(stack, org, n, a), a, n, f"Idea for {n}") for n, a in people]
    payload = batch(org, drafts)
    dispatch(stack, payload)
    dispatch(stack, payload)                                   # the same event redelivered
    dispatch(stack, dict(payload, event_id=str(uuid.uuid4())))  # the same drafts in a new event

    results = wait_for(lambda: len(sent_results(stack, org)) >= 2 and sent_results(stack, org))
    time.sleep(1.5)  # give any duplicate the time it would need to show up
    for _, address in people:
        got = sink_messages(stack, address)
        assert len(got) == 1, got
    results = sent_results(stack, org)
    assert sorted(r["draft_id"] for r in results) == sorted(d["draft_id"] for d in drafts)
    assert {r["status"] for r in results} == {"sent"}
    assert all(r["run_id"] == payload["run_id"] for r in results)

    mail = sink_messages(stack, people[0][1])[0]
    comm_id = next(r["communication_id"] for r in results if r["draft_id"] == drafts[0]["draft_id"])
    assert mail["message_id"] == f"<{comm_id}@example.org>"
    assert mail["subject"] == "Idea for Ana Souza"
    assert mail["from"] == "Jordan Ellis <jordan.ellis@example.org>"
    assert mail["reply_to"].startswith("Jordan Ellis <reply+")
    assert mail["mail_from"].startswith("bounce+") and mail["mail_from"].endswith("@in.example.org")

    with stack.rpc() as rpc:
        comm = rpc.messaging.get_communication(org, comm_id)
        thread = rpc.messaging.get_thread(org, comm["thread_id"])
    assert comm["status"] == "sent" and comm["draft_id"] == drafts[0]["draft_id"]
    assert comm["sent_at"] is not None
    assert [m["id"] for m in thread["messages"]] == [comm_id]


def test_a_contact_who_opted_out_is_never_mailed(stack, org):
    tag = uuid.uuid4().hex[:8]
    ok_address, gone_address = f"grace.{tag}@example.org", f"tom.{tag}@example.net"
    drafts = [draft(add_contact(stack, org, "Grace Okafor", ok_address), ok_address,
                    "Grace Okafor", "Booking reminders"),
              draft(add_contact(stack, org, "Tom Becker", gone_address, unsubscribed=True),
                    gone_address, "Tom Becker", "Pricing")]
    dispatch(stack, batch(org, drafts))
    results = wait_for(lambda: len(sent_results(stack, org)) >= 2 and sent_results(stack, org))
    by_draft = {r["draft_id"]: r for r in results}
    assert by_draft[drafts[0]["draft_id"]]["status"] == "sent"
    assert by_draft[drafts[1]["draft_id"]]["status"] == "failed"
    assert by_draft[drafts[1]["draft_id"]]["error"] == "unsubscribed"
    assert len(sink_messages(stack, ok_address)) == 1
    assert sink_messages(stack, gone_address) == []


def test_without_email_setup_drafts_fail_with_the_reason_and_nothing_is_sent(stack):
    ctx = new_ctx()
    address = f"olivia.{uuid.uuid4().hex[:8]}@example.com"
    drafts = [draft(None, address, "Olivia Brandt", "Brandt Events")]
    dispatch(stack, batch(ctx, drafts, is_test=True))
    events = wait_for(lambda: [e for e in outbox_events(stack, "communications_sent")
                               if e["org_id"] == ctx["org_id"]])
    [event] = events
    assert event["is_test"] is True and event["channel"] == "email"
    [result] = event["results"]
    assert result["status"] == "failed"
    assert result["error"] == "email setup incomplete: sender_identity, email_provider"
    assert sink_messages(stack, address) == []


def test_an_smtp_server_that_refuses_connections_leaves_mail_queued_not_lost(stack):
    ctx = new_ctx()
    address = f"ben.{uuid.uuid4().hex[:8]}@example.org"
    with stack.rpc() as rpc:
        rpc.messaging.set_sender_identity(ctx, {"name": "Jordan", "email": "jordan@example.org"})
        # Nothing listens on port 9 here: a transient connection failure.
        rpc.messaging.set_email_provider(ctx, {"kind": "smtp", "host": "127.0.0.1", "port": 9,
                                               "tls_mode": "none"})
    contact_id = add_contact(stack, ctx, "Ben Adler", address)
    dispatch(stack, batch(ctx, [draft(contact_id, address, "Ben Adler", "Hello")]))

    def queued_again():
        with stack.rpc() as rpc:
            page = rpc.messaging.list_communications(ctx, {"direction": "outbound"})
        rows = page["items"]
        return rows and rows[0]["status"] == "queued" and rows[0]["error"] and rows

    rows = wait_for(queued_again)
    assert rows, "the communication should be back in the queue after the transient failure"
    assert "cannot connect" in rows[0]["error"]
    assert [e for e in outbox_events(stack, "communications_sent")
            if e["org_id"] == ctx["org_id"]] == []
