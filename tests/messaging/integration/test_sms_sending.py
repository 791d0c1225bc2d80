"""Approved SMS drafts go out through Twilio's REST API (the stack's stand-in speaking Twilio's
wire format) exactly once per draft, never to a number that opted out, with Twilio's sid kept so
status callbacks find the message; Twilio's refusals are recorded with its error code."""
import time
import uuid

import pytest
import requests
from nameko.standalone.events import event_dispatcher

from services.messaging import signatures
from tests.messaging.helpers import messaging_tx, new_ctx, outbox_events

PUBLIC = "https://outreach.example.org"


def wait_for(check, timeout=20, interval=0.2):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(interval)


def unique_number():
    return f"+1202555{uuid.uuid4().int % 10000:04d}"


def connect_twilio(stack, ctx, style="token"):
    account, token = "AC" + uuid.uuid4().hex, "token-" + uuid.uuid4().hex
    key_sid, key_secret = "SK" + uuid.uuid4().hex, "secret-" + uuid.uuid4().hex
    stack.twilio.add_account(account, token, api_keys={key_sid: key_secret})
    data = {"account_sid": account, "auth_token": token, "phone_number": unique_number()}
    if style == "api_key":
        data.update(credential_style="api_key", api_key_sid=key_sid, api_key_secret=key_secret)
    with stack.rpc() as rpc:
        rpc.messaging.set_provider_settings(ctx, "twilio", data)
    return dict(data, token=token, key_sid=key_sid)


@pytest.fixture
def org(stack):
    ctx = new_ctx()
    ctx["twilio"] = connect_twilio(stack, ctx)
    yield ctx
    with stack.rpc() as rpc:
        rpc.messaging.remove_provider_settings(ctx, "twilio")


def sms_draft(to, body="Hi, a free fleet check this month? Reply STOP to opt out.",
              contact_id=None):
    return {"draft_id": str(uuid.uuid4()), "contact_id": contact_id, "to_address": to,
            "to_name": None, "subject": "", "body": body}


def batch(ctx, drafts):
    return {"event_id": str(uuid.uuid4()), "org_id": ctx["org_id"], "run_id": str(uuid.uuid4()),
            "campaign_id": str(uuid.uuid4()), "channel": "sms", "is_test": False,
            "drafts": drafts}


def dispatch(stack, payload):
    event_dispatcher({"AMQP_URI": stack.amqp_uri, "serializer": "json"})(
        "campaigns", "drafts_approved", payload)


def results(stack, ctx):
    return [dict(r, channel=e["channel"]) for e in outbox_events(stack, "communications_sent")
            if e["org_id"] == ctx["org_id"] for r in e["results"]]


def comm_of(stack, ctx, draft_id):
    with messaging_tx(stack) as tx:
        return tx.one("SELECT * FROM communications WHERE org_id = %s AND draft_id = %s",
                      (ctx["org_id"], draft_id))


def posted(stack, ctx, to=None):
    return stack.twilio.messages(account_sid=ctx["twilio"]["account_sid"], to=to)


def test_each_approved_text_is_sent_once_even_when_the_event_comes_again(stack, org):
    a, b = unique_number(), unique_number()
    drafts = [sms_draft(a), sms_draft(b)]
    payload = batch(org, drafts)
    dispatch(stack, payload)
    dispatch(stack, payload)
    dispatch(stack, dict(payload, event_id=str(uuid.uuid4())))
    got = wait_for(lambda: len(results(stack, org)) >= 2 and results(stack, org))
    time.sleep(1.5)
    assert sorted(m["to"] for m in posted(stack, org)) == sorted([a, b])
    assert len(results(stack, org)) == 2
    assert {(r["status"], r["channel"], r["error"]) for r in got} == {("sent", "sms", None)}
    for d in drafts:
        row = comm_of(stack, org, d["draft_id"])
        message = posted(stack, org, to=d["to_address"])[0]
        assert (row["status"], row["provider"], row["provider_message_id"]) == \
            ("sent", "twilio", message["sid"])
        assert row["from_address"] == org["twilio"]["phone_number"] == message["from"]
        assert row["provider_status"] == "queued" and row["attempts"] == 1
        assert row["sent_at"] is not None


def test_a_number_that_opted_out_of_sms_is_never_texted(stack, org):
    number = unique_number()
    with stack.rpc() as rpc:
        contact = rpc.contacts.create_contact(org, {"name": "Quiet Quinn", "phone": number,
                                                    "unsubscribed": {"sms": True}})
    d = sms_draft(number, contact_id=contact["id"])
    dispatch(stack, batch(org, [d]))
    got = wait_for(lambda: results(stack, org))
    assert [(r["status"], r["error"]) for r in got] == [("failed", "unsubscribed")]
    assert posted(stack, org) == []
    assert comm_of(stack, org, d["draft_id"])["status"] == "failed"


def test_twilio_refusing_a_number_fails_it_with_twilios_code_and_message(stack, org):
    stack.twilio.fail_next(400, 21211, "Invalid 'To' Phone Number: +12025550199")
    d = sms_draft(unique_number())
    dispatch(stack, batch(org, [d]))
    got = wait_for(lambda: results(stack, org))
    error = "Twilio error 21211: Invalid 'To' Phone Number: +12025550199 (HTTP 400)"
    assert [(r["status"], r["error"]) for r in got] == [("failed", error)]
    row = comm_of(stack, org, d["draft_id"])
    assert (row["status"], row["error_code"], row["error"]) == ("failed", "21211", error)


def test_twilio_unavailable_leaves_the_text_queued_for_a_later_try(stack, org):
    stack.twilio.fail_next(503, 20500, "Service Unavailable", times=3)
    d = sms_draft(unique_number())
    dispatch(stack, batch(org, [d]))
    row = wait_for(lambda: (lambda r: r and r["status"] == "queued" and r["attempts"] == 1 and r)(
        comm_of(stack, org, d["draft_id"])), timeout=30)
    assert row["error"] == "Twilio error 20500: Service Unavailable (HTTP 503)"
    assert row["next_attempt_at"] is not None
    assert posted(stack, org) == [] and results(stack, org) == []


def test_without_twilio_set_up_texts_fail_at_once_and_nothing_is_posted(stack):
    ctx = new_ctx()
    before = len(stack.twilio.requests)
    d = sms_draft(unique_number())
    dispatch(stack, batch(ctx, [d]))
    got = wait_for(lambda: results(stack, ctx))
    assert [(r["status"], r["error"]) for r in got] == [
        ("failed", "sms setup incomplete: sms_provider, phone_number")]
    assert len(stack.twilio.requests) == before


def test_key_and_secret_credentials_send_as_the_api_key(stack):
    ctx = new_ctx()
    ctx["twilio"] = connect_twilio(stack, ctx, style="api_key")
    d = sms_draft(unique_number())
    dispatch(stack, batch(ctx, [d]))
    wait_for(lambda: results(stack, ctx))
    [message] = posted(stack, ctx)
    assert message["user"] == ctx["twilio"]["key_sid"]
    assert comm_of(stack, ctx, d["draft_id"])["provider_message_id"] == message["sid"]
    with stack.rpc() as rpc:
        rpc.messaging.remove_provider_settings(ctx, "twilio")


def test_a_status_callback_faster_than_our_own_bookkeeping_still_lands(stack, org):
    sid = "SM" + uuid.uuid4().hex
    to = unique_number()
    for status in ("sent", "delivered"):
        pairs = [("MessageSid", sid), ("MessageStatus", status), ("To", to),
                 ("From", org["twilio"]["phone_number"]),
                 ("AccountSid", org["twilio"]["account_sid"])]
        url = f"{PUBLIC}/webhooks/twilio/sms/status"
        resp = requests.post(f"{stack.url}/webhooks/twilio/sms/status", data=pairs, timeout=30,
                             headers={"X-Twilio-Signature": signatures.twilio_signature(
                                 org["twilio"]["token"], url, pairs)})
        assert resp.status_code == 200, resp.text
    stack.twilio.next_sids.append(sid)
    d = sms_draft(to)
    dispatch(stack, batch(org, [d]))
    wait_for(lambda: results(stack, org))
    row = comm_of(stack, org, d["draft_id"])
    assert (row["provider_message_id"], row["status"], row["provider_status"]) == \
        (sid, "delivered", "delivered")
    assert row["delivered_at"] is not None


def test_texts_to_the_same_number_share_one_thread(stack, org):
    number = unique_number()
    first, second = sms_draft(number), sms_draft(number)
    dispatch(stack, batch(org, [first]))
    wait_for(lambda: comm_of(stack, org, first["draft_id"]))
    dispatch(stack, batch(org, [second]))
    wait_for(lambda: len(results(stack, org)) >= 2)
    assert comm_of(stack, org, first["draft_id"])["thread_id"] == \
        comm_of(stack, org, second["draft_id"])["thread_id"]
    assert len(posted(stack, org, to=number)) == 2
