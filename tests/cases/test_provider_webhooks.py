"""The fifteen real provider webhook bodies of shared/cases/webhooks, posted byte for byte with
the README's headers to the gateway, after seeding the outbound messages they concern (scenario
table of the cases README) and the organization's provider settings with the README's test
secrets. Also: every change of body, signature, URL or secret is refused with 403 and stores
nothing, and every file posted twice creates nothing new."""
import base64
import hashlib
import json
import time
import uuid

import pytest

from services.messaging import signatures
from tests.conftest import read_fixture
from tests.messaging.helpers import messaging_tx, outbox_events, seed_outbound

BASE = "https://outreach.example.org"
TWILIO_TOKEN = "f3c2e1d0b9a8f7e6d5c4b3a2f1e0d9c8"
ACCOUNT_SID = "ACd1f1c0a9e8b7c6d5e4f3a2b1c0d9e8f7"
SERVICE_SID = "MG0c2e4a6c8e0b2d4f6a8c0e2b4d6f8a0c"
OUR_NUMBER = "+12025550100"
SG_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEL/ffBKRPyzI0DwpxX1nYIhm6Oy12WYA5ac8SCoI4zCk8hslPZQzf"
          "Br/8FpG8wGHfsvyUmdMCSMBPvItqDs1o4A==")
SG_PRIVATE = "6f1c9a3e5b7d2f4a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
SG_HEADERS = {
    "X-Twilio-Email-Event-Webhook-Timestamp": "1796057112",
    "X-Twilio-Email-Event-Webhook-Signature":
        "MEUCIEs51/OylGZbOZ+l0Rg6GESjyTQCdTLwmMwxcihKvUbUAiEApRzmktI18OXzd0gtFyPvz5kGRUBtp6o2g1NH"
        "Qce+Weo=",
    "Content-Type": "application/json",
}
MG_KEY = "mg-test-signing-key-4b7e1d9a2c5f8e3b6a0d"
PM_USER, PM_PASSWORD = "postmark", "pm-inbound-test-Ka81"
PARSE_USER, PARSE_PASSWORD = "sendgrid-parse", "parse-inbound-test-Zq93"

TWILIO = {
    "twilio_sms_inbound_reply.txt": ("/webhooks/twilio/sms/inbound", "E84BOQmcIsz+c00wZSz+ZBhz8Z4="),
    "twilio_sms_inbound_stop.txt": ("/webhooks/twilio/sms/inbound", "Ah5ki/3/p/ZT1ccqHargRi6zgWg="),
    "twilio_sms_inbound_start.txt": ("/webhooks/twilio/sms/inbound", "KObWHgwvfuR99TOIAxQvM/D7sPA="),
    "twilio_sms_inbound_help.txt": ("/webhooks/twilio/sms/inbound", "tIXX3utD3VG6m5VAwvqWw4mLP3g="),
    "twilio_sms_status_1_queued.txt": ("/webhooks/twilio/sms/status", "tY9NF/2Dpyd6cwMECTFb1P1mwKw="),
    "twilio_sms_status_2_sent.txt": ("/webhooks/twilio/sms/status", "ARYCg6r1+4L0UUrzaGmflgHY7og="),
    "twilio_sms_status_3_delivered.txt": ("/webhooks/twilio/sms/status", "siA4Iavy+T1erRoBKSs5k1Nunho="),
    "twilio_sms_status_undelivered_30003.txt": ("/webhooks/twilio/sms/status",
                                                "d9qonLGRA9aSRn6El6Y71M+aG60="),
    "twilio_voice_status_completed_recording.txt": ("/webhooks/twilio/voice/status",
                                                    "ge1ZU2pXKXcarDXNlqDoUtqgizg="),
    "twilio_voice_status_no_answer.txt": ("/webhooks/twilio/voice/status",
                                          "Ehu7j9hq+hQG0HaJNK1gDos+hJ8="),
}
BODY_SHA256 = {
    "twilio_sms_inbound_reply.txt": "5291cb32f3c6f2ba3730e49e972aa6bab8e59cd4f64ded32b5e9cae5af0b47e5",
    "sendgrid_event_webhook_batch.json":
        "405a02aac0edfaffe6b382b073f78d4215b67f5bbcd18d381b81181bc153d29c",
    "sendgrid_inbound_parse_body.multipart":
        "6506018de153b86b93e2703b6f206ef4a1edf9f75301f22e86743d090452aee9",
    "postmark_inbound.json": "f39a26c26f9d8abde3dab1bf6571833120b1d7e6091a7001a60c996bb9ad4976",
}


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- fixtures and helpers --------------------------------------------------------------------

def configure(stack, ctx, provider, data):
    with stack.rpc() as rpc:
        return rpc.messaging.set_provider_settings(ctx, provider, data)


@pytest.fixture
def org(stack):
    """A fresh organization with every provider set up with the README's test secrets. Its
    settings are removed afterwards so key-less webhooks of later tests route unambiguously
    (a Twilio number belongs to one organization)."""
    org_id = str(uuid.uuid4())
    ctx = {"org_id": org_id, "user_id": None, "role": "owner"}
    configure(stack, ctx, "twilio", {"account_sid": ACCOUNT_SID, "auth_token": TWILIO_TOKEN,
                                     "phone_number": OUR_NUMBER,
                                     "messaging_service_sid": SERVICE_SID})
    configure(stack, ctx, "sendgrid", {"event_verification_key": SG_KEY,
                                       "inbound_username": PARSE_USER,
                                       "inbound_password": PARSE_PASSWORD})
    configure(stack, ctx, "mailgun", {"signing_key": MG_KEY, "timestamp_tolerance_seconds": None})
    configure(stack, ctx, "postmark", {"inbound_username": PM_USER, "inbound_password": PM_PASSWORD})
    with messaging_tx(stack) as tx:
        key = tx.one("SELECT inbound_key FROM email_settings WHERE org_id = %s",
                     (org_id,))["inbound_key"]
    yield {"id": org_id, "ctx": ctx, "key": key}
    with stack.rpc() as rpc:
        for provider in ("twilio", "sendgrid", "mailgun", "postmark"):
            try:
                rpc.messaging.remove_provider_settings(ctx, provider)
            except Exception:
                pass


def post_twilio(api, name, path=None, signature=None, headers=None, body=None):
    default_path, default_sig = TWILIO[name]
    h = {"Content-Type": "application/x-www-form-urlencoded",
         "X-Twilio-Signature": signature or default_sig}
    h.update(headers or {})
    return api.post(path or default_path,
                    data=body if body is not None else read_fixture("webhooks", name), headers=h)


def post_sendgrid_events(api, path="/webhooks/sendgrid/events", body=None, headers=None):
    h = dict(SG_HEADERS)
    h.update(headers or {})
    return api.post(path, data=body if body is not None else
                    read_fixture("webhooks", "sendgrid_event_webhook_batch.json"), headers=h)


def post_parse(api, path="/webhooks/sendgrid/inbound", auth=(PARSE_USER, PARSE_PASSWORD)):
    h = {"Content-Type": "multipart/form-data; boundary=xYzZY"}
    if auth:
        h["Authorization"] = basic(*auth)
    return api.post(path, data=read_fixture("webhooks", "sendgrid_inbound_parse_body.multipart"),
                    headers=h)


def post_mailgun(api, name, path="/webhooks/mailgun/events", body=None):
    return api.post(path, data=body if body is not None else read_fixture("webhooks", name),
                    headers={"Content-Type": "application/json"})


def post_postmark(api, path="/webhooks/postmark/inbound", auth=(PM_USER, PM_PASSWORD)):
    h = {"Content-Type": "application/json"}
    if auth:
        h["Authorization"] = basic(*auth)
    return api.post(path, data=read_fixture("webhooks", "postmark_inbound.json"), headers=h)


def ok(resp):
    assert resp.status_code == 200, resp.text
    return resp


def communication(stack, org, comm_id):
    with stack.rpc() as rpc:
        return rpc.messaging.get_communication(org["ctx"], comm_id)


def thread(stack, org, thread_id):
    with stack.rpc() as rpc:
        return rpc.messaging.get_thread(org["ctx"], thread_id)


def events_for(stack, event_type, org):
    return [e for e in outbox_events(stack, event_type) if e["org_id"] == org["id"]]


def counts(stack, org):
    """(communications, provider events, outbox events) of the organization."""
    with messaging_tx(stack) as tx:
        comms = tx.one("SELECT count(*) AS n FROM communications WHERE org_id = %s",
                       (org["id"],))["n"]
        events = tx.one("SELECT count(*) AS n FROM provider_events WHERE org_id = %s",
                        (org["id"],))["n"]
        receipts = tx.one("SELECT count(*) AS n FROM inbound_emails WHERE org_id = %s",
                          (org["id"],))["n"]
        # Reconfiguring a provider between requests writes its audit event; not a webhook's.
        outbox = tx.one("SELECT count(*) AS n FROM outbox WHERE payload->>'org_id' = %s"
                        " AND event_type <> 'audit_recorded'", (org["id"],))["n"]
    return comms, events, receipts, outbox


def seed_sms(stack, org, to, sid=None, contact_id=None):
    return seed_outbound(stack, org["id"], None, to, None, channel="sms", from_address=OUR_NUMBER,
                         provider="twilio" if sid else None, provider_message_id=sid,
                         contact_id=contact_id, body="(SMS)")


def seed_call(stack, org, to, sid):
    return seed_outbound(stack, org["id"], None, to, None, channel="phone",
                         from_address=OUR_NUMBER, provider="twilio", provider_message_id=sid,
                         body="(call)")


def seed_email(stack, org, n, to, subject="(campaign e-mail)", token=None, sg=None,
               message_id=True, **kw):
    mid = f"<run-7f3a.contact-{n}@mail.example.org>" if message_id else None
    return seed_outbound(stack, org["id"], mid, to, subject, reply_token=token,
                         provider="sendgrid" if sg else None, provider_message_id=sg,
                         contact_id=str(uuid.uuid4()), campaign_id=str(uuid.uuid4()),
                         run_id=str(uuid.uuid4()), **kw)


def seed_sendgrid_batch(stack, org):
    return {
        42: seed_email(stack, org, 42, "ana.souza@example.com",
                       "Quick question about Q1 onboarding", "7f3a-42-k2m9x1",
                       sg="Xq7vP1mBTnWk3cR8aZ0yEw"),
        18: seed_email(stack, org, 18, "sofia.rossi@example.org", sg="Lm2nB4vC6xZ8qW0eR2tY4u"),
        24: seed_email(stack, org, 24, "ben.adler@example.org", sg="Pw9oI7uY5tR3eW1qA9sD7f"),
        37: seed_email(stack, org, 37, "oliver.grant@example.com", sg="Gh3jK5lZ7xC9vB1nM3qW5e",
                       message_id=False),
        14: seed_email(stack, org, 14, "zoe.martin@example.org", sg="Tr6yU8iO0pA2sD4fG6hJ8k",
                       message_id=False),
    }


def wait_for(check, timeout=20):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.3)


def sms_history(stack, org, number):
    with stack.rpc() as rpc:
        return rpc.contacts.unsubscribe_history(org["ctx"], "sms", number)


# -- the files, one test each ------------------------------------------------------------------

def test_the_signed_bodies_are_read_as_the_exact_bytes_that_were_signed():
    for name, digest in BODY_SHA256.items():
        assert hashlib.sha256(read_fixture("webhooks", name)).hexdigest() == digest


def test_twilio_sms_reply_joins_the_sms_thread_of_the_number_pair(stack, api, org):
    contact_id = str(uuid.uuid4())
    out_id, thread_id = seed_sms(stack, org, "+12025550143", contact_id=contact_id)
    resp = ok(post_twilio(api, "twilio_sms_inbound_reply.txt"))
    assert resp.headers["Content-Type"].startswith("text/xml")
    assert "<Message" not in resp.text                  # we send nothing back through TwiML
    messages = thread(stack, org, thread_id)["messages"]
    assert [(m["direction"], m["channel"]) for m in messages] == [("outbound", "sms"),
                                                                   ("inbound", "sms")]
    reply = messages[-1]
    assert (reply["from_address"], reply["to_address"]) == ("+12025550143", OUR_NUMBER)
    assert reply["body"] == "Yes, Tuesday at 3pm works for me. Is it a video call?"
    assert reply["contact_id"] == contact_id and reply["status"] == "received"
    assert reply["provider_message_id"] == "SM9a4c7e2b1d0f8a6c5e3b2d1f0a9c8e7b"
    [event] = events_for(stack, "reply_received", org)
    assert (event["channel"], event["communication_id"], event["in_reply_to_communication_id"]) \
        == ("sms", reply["id"], out_id)
    assert events_for(stack, "opt_out_requested", org) == []


def test_twilio_stop_unsubscribes_the_number_from_sms_as_a_user_action(stack, api, org):
    _, thread_id = seed_sms(stack, org, "+12025550152")
    ok(post_twilio(api, "twilio_sms_inbound_stop.txt"))
    [event] = events_for(stack, "opt_out_requested", org)
    assert (event["channel"], event["identifier"], event["source"], event["unsubscribed"]) == \
        ("sms", "+12025550152", "user_action", True)
    assert events_for(stack, "reply_received", org) == []
    messages = thread(stack, org, thread_id)["messages"]
    assert [m["body"] for m in messages if m["direction"] == "inbound"] == ["STOP"]
    history = wait_for(lambda: sms_history(stack, org, "+12025550152"))
    assert [(h["unsubscribed"], h["source"]) for h in history] == [(True, "user_action")]


def test_twilio_start_after_stop_subscribes_the_number_again(stack, api, org):
    seed_sms(stack, org, "+12025550152")
    ok(post_twilio(api, "twilio_sms_inbound_stop.txt"))
    ok(post_twilio(api, "twilio_sms_inbound_start.txt"))
    events = events_for(stack, "opt_out_requested", org)
    assert [(e["identifier"], e["source"], e["unsubscribed"]) for e in events] == [
        ("+12025550152", "user_action", True), ("+12025550152", "user_action", False)]
    history = wait_for(lambda: len(sms_history(stack, org, "+12025550152")) == 2 and
                       sms_history(stack, org, "+12025550152"))
    assert [(h["unsubscribed"], h["source"]) for h in history] == [
        (True, "user_action"), (False, "user_action")]


def test_twilio_help_is_recorded_without_consent_change_or_reply(stack, api, org):
    _, thread_id = seed_sms(stack, org, "+12025550159")
    ok(post_twilio(api, "twilio_sms_inbound_help.txt"))
    inbound = [m for m in thread(stack, org, thread_id)["messages"] if m["direction"] == "inbound"]
    assert [(m["from_address"], m["body"]) for m in inbound] == [("+12025550159", "HELP")]
    assert events_for(stack, "opt_out_requested", org) == []
    assert events_for(stack, "reply_received", org) == []


def test_twilio_sms_status_callbacks_move_the_message_to_delivered(stack, api, org):
    comm_id, _ = seed_sms(stack, org, "+12025550106", sid="SMb2d4f6a8c0e1f3a5b7c9d0e2f4a6b8c0")
    ok(post_twilio(api, "twilio_sms_status_1_queued.txt"))
    comm = communication(stack, org, comm_id)
    assert (comm["provider_status"], comm["status"]) == ("queued", "sent")
    ok(post_twilio(api, "twilio_sms_status_2_sent.txt"))
    comm = communication(stack, org, comm_id)
    assert (comm["provider_status"], comm["status"]) == ("sent", "sent")
    ok(post_twilio(api, "twilio_sms_status_3_delivered.txt"))
    comm = communication(stack, org, comm_id)
    assert (comm["provider_status"], comm["status"]) == ("delivered", "delivered")
    assert comm["delivered_at"] == "2026-12-01T14:03:00+00:00"


def test_a_late_queued_callback_never_moves_a_delivered_sms_back(stack, api, org):
    comm_id, _ = seed_sms(stack, org, "+12025550106", sid="SMb2d4f6a8c0e1f3a5b7c9d0e2f4a6b8c0")
    ok(post_twilio(api, "twilio_sms_status_3_delivered.txt"))
    ok(post_twilio(api, "twilio_sms_status_1_queued.txt"))
    comm = communication(stack, org, comm_id)
    assert (comm["provider_status"], comm["status"]) == ("delivered", "delivered")


def test_twilio_undelivered_30003_is_recorded_without_unsubscribing(stack, api, org):
    comm_id, _ = seed_sms(stack, org, "+12025550185", sid="SM0e2c4a6f8d1b3e5c7a9f0d2b4e6c8a1f")
    ok(post_twilio(api, "twilio_sms_status_undelivered_30003.txt"))
    comm = communication(stack, org, comm_id)
    assert (comm["status"], comm["error_code"]) == ("undelivered", "30003")
    assert "30003" in comm["error"]
    assert events_for(stack, "opt_out_requested", org) == []


def test_twilio_completed_call_keeps_seconds_and_the_recording(stack, api, org):
    comm_id, _ = seed_call(stack, org, "+12025550143", "CA4b6d8f0a2c4e6f8a0b2d4f6a8c0e2b4d")
    ok(post_twilio(api, "twilio_voice_status_completed_recording.txt"))
    call = communication(stack, org, comm_id)
    assert (call["status"], call["outcome"], call["duration_seconds"]) == \
        ("completed", "completed", 187)
    assert call["recording"] == {
        "sid": "RE5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b", "duration_seconds": 183,
        "url": "https://api.twilio.com/2010-04-01/Accounts/ACd1f1c0a9e8b7c6d5e4f3a2b1c0d9e8f7"
               "/Recordings/RE5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b"}


def test_twilio_unanswered_call_is_missed_with_no_duration_or_recording(stack, api, org):
    comm_id, _ = seed_call(stack, org, "+12025550177", "CA8e0c2a4f6b8d0e2c4a6f8b0d2e4c6a8f")
    ok(post_twilio(api, "twilio_voice_status_no_answer.txt"))
    call = communication(stack, org, comm_id)
    assert (call["status"], call["outcome"], call["duration_seconds"], call["recording"]) == \
        ("missed", "no-answer", 0, None)


def test_sendgrid_event_batch_updates_each_message_it_names(stack, api, org):
    seeded = seed_sendgrid_batch(stack, org)
    result = ok(post_sendgrid_events(api)).json()
    assert (result["processed"], result["matched"]) == (8, 8)
    ana = communication(stack, org, seeded[42][0])
    assert ana["status"] == "delivered"
    assert ana["delivered_at"] == "2026-11-30T15:02:13+00:00"
    assert ana["opened_at"] == "2026-11-30T15:09:40+00:00"
    assert ana["clicked_url"].startswith("https://larkspur.example.org/pilot?")
    assert ana["provider_status"] == "click"
    sofia = communication(stack, org, seeded[18][0])
    assert (sofia["status"], sofia["bounce_type"]) == ("bounced", "hard")
    assert "5.1.1" in sofia["error"]
    ben = communication(stack, org, seeded[24][0])
    assert ben["status"] == "failed" and "Bounced Address" in ben["error"]
    [bounce] = events_for(stack, "email_bounced", org)
    assert (bounce["identifier"], bounce["bounce_type"], bounce["communication_id"]) == \
        ("sofia.rossi@example.org", "hard", seeded[18][0])
    opt_outs = events_for(stack, "opt_out_requested", org)
    assert sorted((e["channel"], e["identifier"], e["source"]) for e in opt_outs) == [
        ("email", "oliver.grant@example.com", "user_action"),
        ("email", "zoe.martin@example.org", "user_action")]
    assert communication(stack, org, seeded[37][0])["complained_at"] is not None


def test_sendgrid_inbound_parse_reply_joins_its_thread(stack, api, org):
    out_id, thread_id = seed_email(stack, org, 71, "samuel.osei@example.org",
                                   "Follow-up on the London pilot", "7f3a-71-v2b4n6")
    result = ok(post_parse(api)).json()
    assert result["kind"] == "reply" and result["thread_id"] == thread_id
    reply = communication(stack, org, result["communication_id"])
    assert reply["from_address"] == "samuel.osei@example.org"
    assert reply["in_reply_to"] == "<run-7f3a.contact-71@mail.example.org>"
    assert reply["stripped_text"] == \
        "Can we push to next week? This week is month-end for us.\n\nSam"
    [event] = events_for(stack, "reply_received", org)
    assert event["in_reply_to_communication_id"] == out_id


def test_sendgrid_inbound_parse_on_the_keyed_url_needs_no_basic_auth_when_none_is_set(stack, api):
    org_id = str(uuid.uuid4())
    ctx = {"org_id": org_id, "user_id": None, "role": "owner"}
    with messaging_tx(stack) as tx:
        from services.messaging import settings as messaging_settings
        key = messaging_settings.load(tx, org_id)["inbound_key"]
    _, thread_id = seed_outbound(stack, org_id, "<run-7f3a.contact-71@mail.example.org>",
                                 "samuel.osei@example.org", "Follow-up on the London pilot",
                                 reply_token="7f3a-71-v2b4n6")
    # Key-less URL: nothing protects it for this organization, so it is refused.
    assert post_parse(api, auth=None).status_code == 403
    result = ok(post_parse(api, path=f"/webhooks/sendgrid/{key}/inbound", auth=None)).json()
    assert result["thread_id"] == thread_id
    assert post_parse(api, path="/webhooks/sendgrid/not-a-key/inbound", auth=None).status_code == 404
    with stack.rpc() as rpc:
        assert rpc.messaging.get_thread(ctx, thread_id)["messages"][-1]["direction"] == "inbound"


def test_mailgun_delivered_event_marks_the_message_delivered(stack, api, org):
    comm_id, _ = seed_email(stack, org, 31, "emily.hart@example.com",
                            "Intake forms for Hart & Vance", "7f3a-31-h6j8k0")
    ok(post_mailgun(api, "mailgun_event_delivered.json"))
    comm = communication(stack, org, comm_id)
    assert (comm["status"], comm["provider"]) == ("delivered", "mailgun")
    assert comm["delivered_at"].startswith("2026-11-30T")


def test_mailgun_permanent_failure_is_a_hard_bounce(stack, api, org):
    comm_id, _ = seed_email(stack, org, 13, "mei.tanaka@example.com",
                            "Tanaka Ceramics: wholesale reminders")
    ok(post_mailgun(api, "mailgun_event_failed_permanent.json"))
    comm = communication(stack, org, comm_id)
    assert (comm["status"], comm["bounce_type"]) == ("bounced", "hard")
    assert "5.1.1" in comm["error"]
    [event] = events_for(stack, "email_bounced", org)
    assert (event["identifier"], event["bounce_type"]) == ("mei.tanaka@example.com", "hard")


def test_postmark_inbound_reply_joins_its_thread_with_postmarks_stripped_text(stack, api, org):
    _, thread_id = seed_email(stack, org, 19, "olivia.brandt@example.com",
                              "Brandt Events x Larkspur", "7f3a-19-e3r5t7")
    result = ok(post_postmark(api)).json()
    assert result["thread_id"] == thread_id
    reply = communication(stack, org, result["communication_id"])
    assert reply["from_address"] == "olivia.brandt@example.com"
    assert reply["stripped_text"] == (
        "Hi Jordan,\n\nWe'd like to try it for the spring gala. Can you send a quote for 2,000 "
        "guests?\n\nOlivia")
    assert len(events_for(stack, "reply_received", org)) == 1


# -- refusals: 403, nothing stored ------------------------------------------------------------

def assert_refused(resp, stack, org, before):
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "forbidden"
    assert counts(stack, org) == before


def flip(raw, at=None):
    """The same bytes with one byte changed."""
    i = len(raw) // 2 if at is None else at
    return raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]


@pytest.mark.parametrize("name", sorted(TWILIO))
def test_a_twilio_request_changed_in_any_way_is_refused(stack, api, org, name):
    seed_sms(stack, org, "+12025550143")
    before = counts(stack, org)
    path, signature = TWILIO[name]
    raw = read_fixture("webhooks", name)
    assert_refused(post_twilio(api, name, body=flip(raw)), stack, org, before)
    other_signature = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert_refused(post_twilio(api, name, signature=other_signature), stack, org, before)
    assert_refused(post_twilio(api, name, path=path + "?retry=1"), stack, org, before)
    assert_refused(post_twilio(api, name, headers={"X-Forwarded-Host": "evil.example.net"}),
                   stack, org, before)
    resp = api.post(path, data=raw, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_refused(resp, stack, org, before)


def test_twilio_signature_follows_the_forwarded_public_url(stack, api, org):
    seed_sms(stack, org, "+12025550159")
    ok(post_twilio(api, "twilio_sms_inbound_help.txt",
                   headers={"X-Forwarded-Proto": "https",
                            "X-Forwarded-Host": "outreach.example.org"}))


def test_a_keyed_twilio_url_verifies_over_that_url(stack, api, org):
    _, thread_id = seed_sms(stack, org, "+12025550159")
    path = f"/webhooks/twilio/{org['key']}/sms/inbound"
    raw = read_fixture("webhooks", "twilio_sms_inbound_help.txt")
    from urllib.parse import parse_qsl
    signature = signatures.twilio_signature(TWILIO_TOKEN, BASE + path,
                                            parse_qsl(raw.decode(), keep_blank_values=True))
    before = counts(stack, org)
    # The README's signature was made over the key-less URL: not valid for this one.
    assert_refused(post_twilio(api, "twilio_sms_inbound_help.txt", path=path), stack, org, before)
    ok(post_twilio(api, "twilio_sms_inbound_help.txt", path=path, signature=signature))
    assert [m["body"] for m in thread(stack, org, thread_id)["messages"]][-1] == "HELP"


def test_twilio_refuses_when_another_auth_token_is_configured(stack, api, org):
    configure(stack, org["ctx"], "twilio", {"account_sid": ACCOUNT_SID, "auth_token": "0" * 32,
                                            "phone_number": OUR_NUMBER,
                                            "messaging_service_sid": SERVICE_SID})
    seed_sms(stack, org, "+12025550143")
    before = counts(stack, org)
    assert_refused(post_twilio(api, "twilio_sms_inbound_reply.txt"), stack, org, before)


def test_a_sendgrid_batch_changed_in_any_way_is_refused(stack, api, org):
    seed_sendgrid_batch(stack, org)
    before = counts(stack, org)
    raw = read_fixture("webhooks", "sendgrid_event_webhook_batch.json")
    sig_header = "X-Twilio-Email-Event-Webhook-Signature"
    ts_header = "X-Twilio-Email-Event-Webhook-Timestamp"
    for resp in (
            post_sendgrid_events(api, body=flip(raw)),
            post_sendgrid_events(api, body=flip(raw, at=len(raw) - 3)),
            post_sendgrid_events(api, headers={ts_header: "1796057113"}),
            post_sendgrid_events(api, headers={sig_header: SG_HEADERS[sig_header][:-4] + "AAA="}),
            api.post("/webhooks/sendgrid/events", data=raw,
                     headers={"Content-Type": "application/json", ts_header: "1796057112"}),
            post_sendgrid_events(api, path=f"/webhooks/sendgrid/{org['key']}/events",
                                 body=json.dumps(json.loads(raw)).encode())):
        assert_refused(resp, stack, org, before)


def test_a_batch_resigned_with_the_test_key_is_accepted_on_the_keyed_url(stack, api, org):
    seeded = seed_sendgrid_batch(stack, org)
    body = json.dumps([{"email": "ben.adler@example.org", "timestamp": 1796060000,
                        "event": "delivered", "sg_event_id": "cmVzaWduZWQtMQ",
                        "communication_id": seeded[24][0]}]).encode()
    headers = {"X-Twilio-Email-Event-Webhook-Timestamp": "1796060000",
               "X-Twilio-Email-Event-Webhook-Signature":
                   signatures.sendgrid_sign(SG_PRIVATE, "1796060000", body)}
    ok(post_sendgrid_events(api, path=f"/webhooks/sendgrid/{org['key']}/events", body=body,
                            headers=headers))
    assert communication(stack, org, seeded[24][0])["status"] == "delivered"


def test_sendgrid_refuses_when_another_verification_key_is_configured(stack, api, org):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    configure(stack, org["ctx"], "sendgrid", {"event_verification_key":
                                              base64.b64encode(other).decode()})
    seed_sendgrid_batch(stack, org)
    before = counts(stack, org)
    assert_refused(post_sendgrid_events(api), stack, org, before)


def test_mailgun_refuses_changed_signatures_other_keys_replays_and_stale_timestamps(
        stack, api, org):
    seed_email(stack, org, 31, "emily.hart@example.com", "Intake forms for Hart & Vance")
    raw = read_fixture("webhooks", "mailgun_event_delivered.json")
    data = json.loads(raw)
    before = counts(stack, org)
    bad_sig = json.loads(raw)
    bad_sig["signature"]["signature"] = "0" + data["signature"]["signature"][1:]
    no_sig = json.loads(raw)
    del no_sig["signature"]
    for body in (json.dumps(bad_sig).encode(), json.dumps(no_sig).encode(), b"", flip(raw, at=40)):
        assert_refused(post_mailgun(api, None, body=body), stack, org, before)
    # The clock check on: the sample is days old.
    configure(stack, org["ctx"], "mailgun", {"timestamp_tolerance_seconds": 900})
    assert_refused(post_mailgun(api, "mailgun_event_delivered.json"), stack, org, before)
    configure(stack, org["ctx"], "mailgun", {"signing_key": "mg-another-signing-key-000",
                                             "timestamp_tolerance_seconds": None})
    assert_refused(post_mailgun(api, "mailgun_event_delivered.json"), stack, org, before)
    configure(stack, org["ctx"], "mailgun", {"signing_key": MG_KEY,
                                             "timestamp_tolerance_seconds": None})
    ok(post_mailgun(api, "mailgun_event_delivered.json"))
    after = counts(stack, org)
    # The signed token with other event data (the signature does not cover event-data).
    forged = json.loads(raw)
    forged["event-data"]["event"] = "failed"
    forged["event-data"]["severity"] = "permanent"
    forged["event-data"]["id"] = "forged-event-id"
    assert_refused(post_mailgun(api, None, body=json.dumps(forged).encode()), stack, org, after)
    assert_refused(post_mailgun(api, None, body=flip(raw, at=len(raw) - 20)), stack, org, after)


def test_postmark_refuses_wrong_or_missing_credentials(stack, api, org):
    seed_email(stack, org, 19, "olivia.brandt@example.com", "Brandt Events x Larkspur",
               "7f3a-19-e3r5t7")
    before = counts(stack, org)
    assert_refused(post_postmark(api, auth=None), stack, org, before)
    assert_refused(post_postmark(api, auth=(PM_USER, "pm-inbound-test-Ka82")), stack, org, before)
    assert_refused(post_postmark(api, auth=("someone", PM_PASSWORD)), stack, org, before)
    assert_refused(post_postmark(api, path=f"/webhooks/postmark/{org['key']}/inbound", auth=None),
                   stack, org, before)


def test_sendgrid_inbound_parse_refuses_wrong_or_missing_credentials(stack, api, org):
    seed_email(stack, org, 71, "samuel.osei@example.org", "Follow-up on the London pilot",
               "7f3a-71-v2b4n6")
    before = counts(stack, org)
    assert_refused(post_parse(api, auth=None), stack, org, before)
    assert_refused(post_parse(api, auth=(PARSE_USER, "wrong-password-1")), stack, org, before)
    # With basic auth configured the keyed URL needs it too.
    assert_refused(post_parse(api, path=f"/webhooks/sendgrid/{org['key']}/inbound", auth=None),
                   stack, org, before)


# -- posting any file twice creates nothing new ------------------------------------------------

def _post_file(api, name):
    if name in TWILIO:
        return post_twilio(api, name)
    if name == "sendgrid_event_webhook_batch.json":
        return post_sendgrid_events(api)
    if name == "sendgrid_inbound_parse_body.multipart":
        return post_parse(api)
    if name.startswith("mailgun_"):
        return post_mailgun(api, name)
    return post_postmark(api)


def _seed_for(stack, org, name):
    if name.startswith("twilio_sms_inbound"):
        for number in ("+12025550143", "+12025550152", "+12025550159"):
            seed_sms(stack, org, number)
    elif name.startswith("twilio_sms_status"):
        seed_sms(stack, org, "+12025550106", sid="SMb2d4f6a8c0e1f3a5b7c9d0e2f4a6b8c0")
        seed_sms(stack, org, "+12025550185", sid="SM0e2c4a6f8d1b3e5c7a9f0d2b4e6c8a1f")
    elif name.startswith("twilio_voice"):
        seed_call(stack, org, "+12025550143", "CA4b6d8f0a2c4e6f8a0b2d4f6a8c0e2b4d")
        seed_call(stack, org, "+12025550177", "CA8e0c2a4f6b8d0e2c4a6f8b0d2e4c6a8f")
    elif name.startswith("sendgrid_event"):
        seed_sendgrid_batch(stack, org)
    elif name.startswith("sendgrid_inbound"):
        seed_email(stack, org, 71, "samuel.osei@example.org", "Follow-up on the London pilot",
                   "7f3a-71-v2b4n6")
    elif name.startswith("mailgun"):
        seed_email(stack, org, 31, "emily.hart@example.com", "Intake forms for Hart & Vance")
        seed_email(stack, org, 13, "mei.tanaka@example.com", "Tanaka Ceramics")
    else:
        seed_email(stack, org, 19, "olivia.brandt@example.com", "Brandt Events x Larkspur",
                   "7f3a-19-e3r5t7")


ALL_FILES = sorted(TWILIO) + ["sendgrid_event_webhook_batch.json",
                              "sendgrid_inbound_parse_body.multipart",
                              "mailgun_event_delivered.json", "mailgun_event_failed_permanent.json",
                              "postmark_inbound.json"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_posting_a_file_twice_creates_nothing_new(stack, api, org, name):
    _seed_for(stack, org, name)
    ok(_post_file(api, name))
    after_first = counts(stack, org)
    with messaging_tx(stack) as tx:
        rows_first = tx.all("SELECT id, status, provider_status, updated_at FROM communications "
                            "WHERE org_id = %s ORDER BY id", (org["id"],))
    ok(_post_file(api, name))
    assert counts(stack, org) == after_first
    with messaging_tx(stack) as tx:
        rows_second = tx.all("SELECT id, status, provider_status, updated_at FROM communications "
                             "WHERE org_id = %s ORDER BY id", (org["id"],))
    assert rows_second == rows_first


def test_the_unsubscribe_reaches_only_the_organization_that_owns_the_number(stack, api, org):
    """Another organization cannot claim our Twilio number while we hold it."""
    other = {"org_id": str(uuid.uuid4()), "user_id": None, "role": "owner"}
    with stack.rpc() as rpc:
        from services.common.errors import Conflict
        with pytest.raises(Conflict):
            rpc.messaging.set_provider_settings(other, "twilio", {
                "account_sid": ACCOUNT_SID, "auth_token": TWILIO_TOKEN,
                "phone_number": OUR_NUMBER})


# -- odd characters: stored cleaned, never a 500 ------------------------------------------------

def test_postmark_inbound_with_nul_and_lone_surrogates_is_stored_cleaned(stack, api, org):
    data = json.loads(read_fixture("webhooks", "postmark_inbound.json"))
    data["MessageID"] = str(uuid.uuid4())
    data["Subject"] = "Re: Brandt\u0000 Events \ud800x"
    data["FromFull"]["Name"] = "Olivia\u0000 Brandt"
    data["TextBody"] = "We\u0000 would like a quote \udfff for 2,000 guests."
    data["StrippedTextReply"] = "We\u0000 would like a quote \udfff for 2,000 guests."
    resp = api.post(f"/webhooks/postmark/{org['key']}/inbound", data=json.dumps(data),
                    headers={"Content-Type": "application/json",
                             "Authorization": basic(PM_USER, PM_PASSWORD)})
    assert resp.status_code == 200, resp.text
    reply = communication(stack, org, resp.json()["communication_id"])
    assert reply["subject"] == "Re: Brandt Events \ufffdx"
    assert reply["from_name"] == "Olivia Brandt"
    assert reply["stripped_text"] == "We would like a quote \ufffd for 2,000 guests."


def test_twilio_sms_with_nul_characters_is_stored_without_them(stack, api, org):
    seed_sms(stack, org, "+12025550177")
    pairs = [("MessageSid", "SM" + uuid.uuid4().hex), ("AccountSid", ACCOUNT_SID),
             ("From", "+12025550177"), ("To", OUR_NUMBER), ("Body", "Call\x00 me \x00tomorrow"),
             ("NumMedia", "0"), ("SmsStatus", "received")]
    signature = signatures.twilio_signature(TWILIO_TOKEN, BASE + "/webhooks/twilio/sms/inbound",
                                            pairs)
    resp = api.post("/webhooks/twilio/sms/inbound", data=pairs,
                    headers={"X-Twilio-Signature": signature})
    assert resp.status_code == 200, resp.text
    [reply] = [m for m in sms_history_messages(stack, org) if m["direction"] == "inbound"]
    assert reply["body"] == "Call me tomorrow"


def sms_history_messages(stack, org):
    with stack.rpc() as rpc:
        return rpc.messaging.list_communications(org["ctx"], {"channel": "sms"})["items"]
