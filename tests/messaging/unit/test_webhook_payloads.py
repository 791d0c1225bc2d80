"""Reading provider payloads: Twilio keywords and delivery dates, Postmark's inbound JSON and
SendGrid's Inbound Parse form as the inbound-email dict, exactly as the cases README states."""
import datetime
import json

import pytest

from services.messaging import webhooks
from tests.conftest import read_fixture


@pytest.mark.parametrize("text,kind", [
    ("STOP", "opt_out"), ("stop", "opt_out"), (" Unsubscribe ", "opt_out"), ("STOP.", "opt_out"),
    ("Cancel", "opt_out"), ("END", "opt_out"), ("QUIT", "opt_out"), ("STOPALL", "opt_out"),
    ("START", "opt_in"), ("yes", "opt_in"), ("UNSTOP", "opt_in"),
    ("HELP", "help"), ("info", "help"),
    ("Stop sending me these at night please", None),
    ("Yes, Tuesday at 3pm works for me. Is it a video call?", None), ("", None),
])
def test_only_a_whole_message_keyword_changes_sms_consent(text, kind):
    assert webhooks.keyword(text) == kind


def test_twilio_delivery_report_date_is_utc_minutes():
    assert webhooks.parse_dlr_date("2612011403") == \
        datetime.datetime(2026, 12, 1, 14, 3, tzinfo=datetime.timezone.utc)
    assert webhooks.parse_dlr_date("not-a-date") is None


def test_postmark_inbound_reads_as_a_reply_with_its_stripped_text():
    parsed = webhooks.postmark_parsed(json.loads(read_fixture("webhooks", "postmark_inbound.json")))
    assert parsed["from_address"] == "olivia.brandt@example.com"
    assert parsed["from_name"] == "Olivia Brandt"
    assert parsed["in_reply_to"] == ["<run-7f3a.contact-19@mail.example.org>"]
    assert parsed["reply_tokens"] == ["7f3a-19-e3r5t7"]
    assert parsed["stripped_text"] == (
        "Hi Jordan,\n\nWe'd like to try it for the spring gala. Can you send a quote for 2,000 "
        "guests?\n\nOlivia")
    assert parsed["automatic"] is False and parsed["opt_out"] is False
    assert parsed["dedupe_key"] == "postmark:5d2b8e41-9c7a-4f3e-b061-2a9d7c4e8f15"


def test_sendgrid_inbound_parse_form_reads_as_a_reply_from_its_headers_and_text():
    body = read_fixture("webhooks", "sendgrid_inbound_parse_body.multipart")
    prepared = webhooks._prepare_sendgrid_inbound(
        body, {"content-type": "multipart/form-data; boundary=xYzZY"})
    parsed = prepared["parsed"]
    assert parsed["from_address"] == "samuel.osei@example.org"
    assert parsed["subject"] == "Re: Follow-up on the London pilot"
    assert parsed["in_reply_to"] == ["<run-7f3a.contact-71@mail.example.org>"]
    assert parsed["reply_tokens"] == ["7f3a-71-v2b4n6"]
    assert parsed["stripped_text"] == \
        "Can we push to next week? This week is month-end for us.\n\nSam"
    assert parsed["bounce"] is None and parsed["automatic"] is False


def test_a_body_that_is_not_the_declared_form_is_refused():
    with pytest.raises(webhooks.Refused):
        webhooks._prepare_sendgrid_inbound(b"hello", {"content-type": "text/plain"})
    with pytest.raises(webhooks.Refused):
        webhooks._prepare_sendgrid_events(b"{not json", {})
    with pytest.raises(webhooks.Refused):
        webhooks._prepare_mailgun(b'{"event-data": {}}', {})
