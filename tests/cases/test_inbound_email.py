"""The twelve real-format emails of shared/cases/email, each posted raw to the gateway's inbound
webhook after seeding the outbound message it answers (scenario table of the cases README)."""
import time
import uuid

import pytest

from tests.conftest import read_fixture
from tests.messaging.helpers import inbound_key, outbox_events, seed_outbound


def lines(*parts):
    return "\n".join(parts)


@pytest.fixture
def org(stack):
    org_id = str(uuid.uuid4())
    return {"id": org_id, "key": inbound_key(stack, org_id),
            "ctx": {"org_id": org_id, "user_id": None, "role": "owner"}}


def seed(stack, org, n, address, subject, token, **kw):
    campaign_id, run_id, contact_id = (str(uuid.uuid4()) for _ in range(3))
    comm_id, thread_id = seed_outbound(
        stack, org["id"], f"<run-7f3a.contact-{n}@mail.example.org>", address, subject,
        reply_token=token, campaign_id=campaign_id, run_id=run_id, contact_id=contact_id, **kw)
    return {"id": comm_id, "thread_id": thread_id, "campaign_id": campaign_id, "run_id": run_id,
            "contact_id": contact_id}


def post(api, org, name):
    resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=read_fixture("email", name),
                    headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def communication(stack, org, comm_id):
    with stack.rpc() as rpc:
        return rpc.messaging.get_communication(org["ctx"], comm_id)


def thread(stack, org, thread_id):
    with stack.rpc() as rpc:
        return rpc.messaging.get_thread(org["ctx"], thread_id)


def events_for(stack, event_type, org):
    return [e for e in outbox_events(stack, event_type) if e["org_id"] == org["id"]]


def test_gmail_reply_joins_its_thread_with_only_the_new_text(stack, api, org):
    out = seed(stack, org, 42, "ana.souza@example.com", "Quick question about Q1 onboarding",
               "7f3a-42-k2m9x1")
    result = post(api, org, "01_gmail_reply_multipart_qp.eml")
    assert result["kind"] == "reply" and result["thread_id"] == out["thread_id"]
    reply = communication(stack, org, result["communication_id"])
    assert reply["direction"] == "inbound" and reply["from_address"] == "ana.souza@example.com"
    assert reply["stripped_text"] == "Thanks, Tuesday works."
    assert (reply["campaign_id"], reply["run_id"], reply["contact_id"]) == \
        (out["campaign_id"], out["run_id"], out["contact_id"])
    [event] = events_for(stack, "reply_received", org)
    assert event["communication_id"] == reply["id"] and event["automatic"] is False
    assert event["run_id"] == out["run_id"]


def test_outlook_reply_without_in_reply_to_joins_thread_by_reply_token(stack, api, org):
    out = seed(stack, org, 17, "t.becker@example.net",
               "Pricing for the Becker Kühltechnik rollout", "7f3a-17-q8w2e4")
    result = post(api, org, "02_outlook_desktop_no_in_reply_to.eml")
    assert result["thread_id"] == out["thread_id"]
    reply = communication(stack, org, result["communication_id"])
    assert reply["subject"] == "RE: Pricing for the Becker Kühltechnik rollout"
    assert reply["stripped_text"].startswith(lines(
        "Hi Jordan,", "",
        "yes - please send over the pricing sheet. Our budget review is on the 14th."))
    assert "From: Jordan Ellis" not in reply["stripped_text"]
    assert "Following up on our call" not in reply["stripped_text"]


def test_apple_mail_reply_decodes_name_and_mixed_subject(stack, api, org):
    out = seed(stack, org, 8, "chloe.dubois@example.net", "Atelier Lumière — next steps",
               "7f3a-8-t5y7u9")
    result = post(api, org, "03_apple_mail_reply.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["from_name"] == "Chloé Dubois"
    assert reply["subject"] == "Re: Atelier Lumière — next steps"
    assert reply["stripped_text"] == lines(
        "Bonjour Jordan,", "", "Merci ! Jeudi 10h (heure de Paris) me convient parfaitement.",
        "", "Chloé")


def test_thunderbird_reply_to_the_agents_follow_up_joins_the_same_thread_once(stack, api, org):
    out = seed(stack, org, 23, "raj.malhotra@example.org", "Kestrel Analytics pilot scope",
               "7f3a-23-z1x3c5")
    seed_outbound(stack, org["id"], "<run-7f3a.contact-23.reply-1@mail.example.org>",
                  "raj.malhotra@example.org", "Re: Kestrel Analytics pilot scope",
                  thread_id=out["thread_id"])
    result = post(api, org, "04_thunderbird_references_chain.eml")
    assert result["thread_id"] == out["thread_id"]
    messages = thread(stack, org, out["thread_id"])["messages"]
    assert [m["direction"] for m in messages] == ["outbound", "outbound", "inbound"]
    text = messages[-1]["stripped_text"]
    assert text.startswith("Hi Jordan,")
    for wanted in ("1. Can the pilot start on 8 January instead of 4 January?",
                   "2. Please copy my colleague Ines on the contract.", "Raj"):
        assert wanted in text
    for unwanted in ("Good news: the pilot", "Interesting. Does the pilot",
                     "Raj Malhotra | Head of Data"):
        assert unwanted not in text


def test_iphone_reply_loses_signature_quote_and_byte_order_mark(stack, api, org):
    out = seed(stack, org, 31, "emily.hart@example.com", "Intake forms for Hart & Vance",
               "7f3a-31-h6j8k0")
    result = post(api, org, "05_iphone_reply_signature.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["stripped_text"] == ("Sounds good, send me the intake forms and I\u2019ll loop "
                                      "in our office manager.")
    assert "\ufeff" not in reply["stripped_text"] and "\ufeff" not in reply["body"]


def test_html_only_reply_is_read_from_its_html(stack, api, org):
    out = seed(stack, org, 56, "grace.okafor@example.org",
               "Booking reminders for Okafor Design Studio", "7f3a-56-w2e4r6")
    result = post(api, org, "06_html_only_reply.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    text_lines = [l for l in reply["stripped_text"].split("\n") if l]
    assert text_lines == ["Hi Jordan,",
                          "Could we do Thursday at 2pm GMT instead? Wednesday is fully booked.",
                          "Grace"]
    assert "Could we find 30 minutes" not in reply["stripped_text"]


def test_german_gmail_reply_in_base64_is_stripped_at_the_german_attribution(stack, api, org):
    out = seed(stack, org, 64, "jonas.weber@example.net", "Unterlagen Pilotprojekt",
               "7f3a-64-p0o9i8")
    result = post(api, org, "07_gmail_android_base64_german.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["stripped_text"].startswith("Hallo Jordan,")
    assert ("danke für die Unterlagen. Passt uns gut – bitte schicken Sie den Vertrag an "
            "einkauf@example.net.") in reply["stripped_text"]
    assert "anbei wie besprochen" not in reply["stripped_text"]


def test_spanish_reply_with_adjacent_encoded_words_has_an_exact_subject(stack, api, org):
    out = seed(stack, org, 77, "jose.munoz@example.com",
               "Próxima reunión — ¿martes o miércoles?", "7f3a-77-m5n7b9")
    result = post(api, org, "08_rfc2047_encoded_subject_and_from.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["from_name"] == "José Muñoz"
    assert reply["subject"] == "Re: Próxima reunión — ¿martes o miércoles?"
    assert reply["stripped_text"] == lines(
        "Hola Jordan,", "",
        "El miércoles a las 11:00 (hora de Ciudad de México) me viene mejor.", "",
        "Saludos,", "José")


def test_out_of_office_stays_in_thread_flagged_automatic_and_is_not_a_reply(stack, api, org):
    out = seed(stack, org, 90, "priya.natarajan@example.com", "Ardent Legal + Larkspur: intro",
               "7f3a-90-c3v5b7")
    result = post(api, org, "09_exchange_out_of_office.eml")
    assert result["kind"] == "automatic" and result["thread_id"] == out["thread_id"]
    reply = communication(stack, org, result["communication_id"])
    assert reply["automatic"] is True
    assert events_for(stack, "reply_received", org) == []
    assert events_for(stack, "opt_out_requested", org) == []


def test_postfix_hard_bounce_marks_the_original_bounced_and_creates_no_reply(stack, api, org):
    out = seed(stack, org, 99, "d.kim@example.net", "Kim & Park CPA: quick question",
               "7f3a-99-a8s6d4", bounce_token="7f3a-99-n4m6l8")
    result = post(api, org, "10_postfix_dsn_hard_bounce.eml")
    assert result["kind"] == "bounce" and result["communication_id"] == out["id"]
    original = communication(stack, org, out["id"])
    assert original["status"] == "bounced" and original["bounce_type"] == "hard"
    assert "5.1.1" in original["error"]
    messages = thread(stack, org, out["thread_id"])["messages"]
    assert [m["direction"] for m in messages] == ["outbound"]
    [event] = events_for(stack, "email_bounced", org)
    assert event["identifier"] == "d.kim@example.net" and event["bounce_type"] == "hard"
    assert events_for(stack, "reply_received", org) == []


def test_a_bounce_naming_another_recipient_suppresses_only_the_address_we_sent_to(stack, api, org):
    # Anyone can mail a delivery report quoting one of our Message-IDs; the Final-Recipient it
    # names is theirs to choose, so only the original's own address is marked undeliverable.
    seed(stack, org, 99, "d.kim@example.net", "Kim & Park CPA: quick question",
         "7f3a-99-a8s6d4", bounce_token="7f3a-99-n4m6l8")
    raw = read_fixture("email", "10_postfix_dsn_hard_bounce.eml")
    forged = raw.replace(b"Final-Recipient: rfc822; d.kim@example.net",
                         b"Final-Recipient: rfc822; victim@example.com")
    assert forged != raw
    resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=forged,
                    headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 200, resp.text
    [event] = events_for(stack, "email_bounced", org)
    assert event["identifier"] == "d.kim@example.net"


def test_take_me_off_your_list_is_an_opt_out_with_user_intent(stack, api, org):
    out = seed(stack, org, 12, "mark.feld@example.org", "Feld Capital: a quick idea",
               "7f3a-12-f1g3h5")
    result = post(api, org, "11_outlook_mac_take_me_off_your_list.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["stripped_text"] == lines(
        "Hi Jordan,", "",
        "Thanks, but this isn't relevant for us. Please take me off your list.", "", "Mark")
    [event] = events_for(stack, "opt_out_requested", org)
    assert (event["channel"], event["identifier"], event["source"]) == \
        ("email", "mark.feld@example.org", "user_intent")


def test_gmail_reply_with_pdf_keeps_the_attachment_details(stack, api, org):
    out = seed(stack, org, 48, "hannah.lindqvist@example.com", "Pilot scope for Nordlys Health",
               "7f3a-48-y7u9i1")
    result = post(api, org, "12_gmail_reply_with_pdf_attachment.eml")
    reply = communication(stack, org, result["communication_id"])
    assert reply["thread_id"] == out["thread_id"]
    assert reply["stripped_text"] == lines(
        "Hi Jordan,", "",
        "Attached are our requirements for the pilot. Looking forward to your proposal.", "",
        "Hannah")
    assert reply["attachments"] == [
        {"filename": "requirements.pdf", "content_type": "application/pdf", "size": 459}]


def test_the_same_email_posted_twice_is_stored_once(stack, api, org):
    seed(stack, org, 42, "ana.souza@example.com", "Quick question about Q1 onboarding",
         "7f3a-42-k2m9x1")
    first = post(api, org, "01_gmail_reply_multipart_qp.eml")
    second = post(api, org, "01_gmail_reply_multipart_qp.eml")
    assert second["duplicate"] is True
    assert second["communication_id"] == first["communication_id"]
    assert len(events_for(stack, "reply_received", org)) == 1


def test_an_unknown_inbound_key_is_not_found_and_stores_nothing(api):
    resp = api.post("/webhooks/email/inbound/not-a-real-key",
                    data=read_fixture("email", "01_gmail_reply_multipart_qp.eml"))
    assert resp.status_code == 404
    assert resp.json()["error"] == "not_found"


def test_a_body_that_is_not_an_email_is_refused_and_stores_nothing(api, org):
    for body in (b"", b"hello, this is not an email", b"\xff\xfe\x00garbage"):
        resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=body)
        assert resp.status_code == 400, resp.text
        assert "body" in resp.json()["errors"]


# -- size and odd characters -------------------------------------------------------------------

def big_reply(size):
    """A reply of about `size` bytes: the new text, a long quoted history, a large PDF."""
    quote = b"> an earlier line of the quoted conversation that goes on and on\r\n"
    head = (b"From: Ana Souza <ana.souza@example.com>\r\n"
            b"To: Jordan Ellis <reply+7f3a-42-k2m9x1@in.example.org>\r\n"
            b"Subject: Re: Quick question about Q1 onboarding\r\n"
            b"Message-ID: <big-" + uuid.uuid4().hex.encode() + b"@mail.gmail.com>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
            b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            b"Thanks, the signed contract is attached.\r\n\r\n"
            b"On Mon, 2 Mar 2026 at 10:00, Jordan Ellis <jordan@example.org> wrote:\r\n")
    quoted = quote * (size // 3 // len(quote))
    part = (b"--B\r\nContent-Type: application/pdf\r\n"
            b"Content-Disposition: attachment; filename=\"contract.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    line = b"JVBERi0xLjcKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n"
    lines = (size - len(head) - len(quoted) - len(part)) // len(line)
    raw = head + quoted + part + line * lines + b"--B--\r\n"
    return raw, lines * 57


def test_a_20_mb_reply_is_answered_well_within_the_rpc_timeout(stack, api, org):
    out = seed(stack, org, 42, "ana.souza@example.com", "Quick question about Q1 onboarding",
               "7f3a-42-k2m9x1")
    raw, pdf_size = big_reply(20 * 1024 * 1024)
    started = time.monotonic()
    resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=raw,
                    headers={"Content-Type": "message/rfc822"})
    elapsed = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert resp.json()["kind"] == "reply" and resp.json()["thread_id"] == out["thread_id"]
    reply = communication(stack, org, resp.json()["communication_id"])
    assert reply["stripped_text"] == "Thanks, the signed contract is attached."
    assert reply["body"].endswith("[message truncated: only the first 200,000 characters are kept]")
    assert len(reply["body"]) < 200_100
    assert reply["attachments"] == [{"filename": "contract.pdf", "content_type": "application/pdf",
                                     "size": pdf_size}]


def test_a_26_mb_email_is_refused_with_413_before_anything_is_stored(stack, api, org):
    raw, _ = big_reply(26 * 1024 * 1024)
    resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=raw,
                    headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "too_large"
    assert resp.json()["message"] == "the message is larger than 25 MB"
    with stack.rpc() as rpc:
        assert rpc.messaging.list_communications(org["ctx"], {})["items"] == []


def test_nul_characters_in_from_subject_and_body_are_dropped_not_a_500(stack, api, org):
    raw = (b"From: Ana\x00 Souza <ana.souza@example.com>\r\nTo: x@in.example.org\r\n"
           b"Subject: Re:\x00 the \xff offer\r\nMessage-ID: <nul-" + uuid.uuid4().hex.encode()
           + b"@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Yes\x00, Tuesday \xed\xa0\x80works.\r\n")
    resp = api.post(f"/webhooks/email/inbound/{org['key']}", data=raw,
                    headers={"Content-Type": "message/rfc822"})
    assert resp.status_code == 200, resp.text
    reply = communication(stack, org, resp.json()["communication_id"])
    assert reply["from_name"] == "Ana Souza"
    assert reply["subject"] == "Re: the \ufffd offer"
    assert reply["stripped_text"] == "Yes, Tuesday \ufffd\ufffd\ufffdworks."
