"""The providers' signature schemes, checked against known-answer vectors (twilio-python's own
test vector and the signed samples of shared/cases/webhooks), and how each refuses a change."""
import hashlib
import json
from urllib.parse import parse_qsl

import pytest

from services.messaging import signatures as sig
from tests.conftest import read_fixture

TWILIO_TOKEN = "f3c2e1d0b9a8f7e6d5c4b3a2f1e0d9c8"
BASE = "https://outreach.example.org"
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
SG_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEL/ffBKRPyzI0DwpxX1nYIhm6Oy12WYA5ac8SCoI4zCk8hslPZQzf"
          "Br/8FpG8wGHfsvyUmdMCSMBPvItqDs1o4A==")
SG_PRIVATE = "6f1c9a3e5b7d2f4a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a"
SG_TS = "1796057112"
SG_SIG = ("MEUCIEs51/OylGZbOZ+l0Rg6GESjyTQCdTLwmMwxcihKvUbUAiEApRzmktI18OXzd0gtFyPvz5kGRUBtp6o2g1NH"
          "Qce+Weo=")
MG_KEY = "mg-test-signing-key-4b7e1d9a2c5f8e3b6a0d"


def form(raw):
    return parse_qsl(raw.decode(), keep_blank_values=True)


def test_twilio_signature_matches_the_twilio_python_vector():
    params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
              ("From", "+14158675309"), ("To", "+18005551212")]
    assert sig.twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                                params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_repeated_twilio_params_contribute_each_value_sorted():
    one = sig.twilio_signature("k", "https://x.example/a", [("A", "2"), ("A", "1"), ("B", "x")])
    two = sig.twilio_signature("k", "https://x.example/a", [("B", "x"), ("A", "1"), ("A", "2")])
    assert one == two


@pytest.mark.parametrize("name", sorted(TWILIO))
def test_every_twilio_sample_verifies_over_its_public_url_and_nothing_else(name):
    path, signature = TWILIO[name]
    raw = read_fixture("webhooks", name)
    assert sig.twilio_valid(TWILIO_TOKEN, BASE + path, form(raw), signature)
    assert not sig.twilio_valid(TWILIO_TOKEN, "http://127.0.0.1:8000" + path, form(raw), signature)
    assert not sig.twilio_valid(TWILIO_TOKEN, BASE + path + "?x=1", form(raw), signature)
    assert not sig.twilio_valid("0" * 32, BASE + path, form(raw), signature)
    assert not sig.twilio_valid(TWILIO_TOKEN, BASE + path, form(raw.replace(b"%2B1202", b"%2B1203", 1)),
                                signature)
    assert not sig.twilio_valid(TWILIO_TOKEN, BASE + path, form(raw), None)


def test_twilio_values_are_signed_decoded():
    raw = read_fixture("webhooks", "twilio_sms_inbound_reply.txt")
    params = dict(form(raw))
    assert params["Body"] == "Yes, Tuesday at 3pm works for me. Is it a video call?"
    assert params["From"] == "+12025550143"


def test_sendgrid_sample_verifies_on_its_raw_bytes_only():
    raw = read_fixture("webhooks", "sendgrid_event_webhook_batch.json")
    assert hashlib.sha256(raw).hexdigest() == \
        "405a02aac0edfaffe6b382b073f78d4215b67f5bbcd18d381b81181bc153d29c"
    assert sig.sendgrid_valid(SG_KEY, SG_TS, raw, SG_SIG)
    reserialized = json.dumps(json.loads(raw)).encode()
    assert not sig.sendgrid_valid(SG_KEY, SG_TS, reserialized, SG_SIG)
    assert not sig.sendgrid_valid(SG_KEY, "1796057113", raw, SG_SIG)
    assert not sig.sendgrid_valid(SG_KEY, SG_TS, raw[:-1] + b" ", SG_SIG)
    assert not sig.sendgrid_valid(SG_KEY, SG_TS, raw, SG_SIG.replace("MEUC", "MEUD"))
    assert not sig.sendgrid_valid(SG_KEY, SG_TS, raw, None)
    assert not sig.sendgrid_valid(SG_KEY, SG_TS, raw, "not base64!")


def test_a_body_resigned_with_the_test_private_key_verifies_with_the_public_key():
    body = b'[{"event":"delivered"}]'
    signature = sig.sendgrid_sign(SG_PRIVATE, "1796060000", body)
    assert sig.sendgrid_valid(SG_KEY, "1796060000", body, signature)
    other = sig.sendgrid_sign("1" * 64, "1796060000", body)
    assert not sig.sendgrid_valid(SG_KEY, "1796060000", body, other)


def test_a_sendgrid_key_must_be_a_p256_public_key():
    sig.sendgrid_public_key(SG_KEY)
    with pytest.raises(ValueError):
        sig.sendgrid_public_key("bm90IGEga2V5")
    with pytest.raises(ValueError):
        sig.sendgrid_public_key("%%%")


@pytest.mark.parametrize("name,expected", [
    ("mailgun_event_delivered.json",
     "f8049ffadb62922f65c15183638d8cbc25b99399f54c0252599a77f843a0a584"),
    ("mailgun_event_failed_permanent.json",
     "43fb84733f026a4a091dc4871020b382a9c0d8ae5c469a679029f84535171471"),
])
def test_mailgun_samples_verify_with_the_signing_key(name, expected):
    s = json.loads(read_fixture("webhooks", name))["signature"]
    assert s["signature"] == expected
    assert sig.mailgun_signature(MG_KEY, s["timestamp"], s["token"]) == expected
    assert sig.mailgun_valid(MG_KEY, s["timestamp"], s["token"], s["signature"])
    assert not sig.mailgun_valid("another-signing-key", s["timestamp"], s["token"], s["signature"])
    assert not sig.mailgun_valid(MG_KEY, str(int(s["timestamp"]) + 1), s["token"], s["signature"])
    assert not sig.mailgun_valid(MG_KEY, s["timestamp"], s["token"][:-1] + "0", s["signature"])


def test_the_clock_check_refuses_stale_timestamps_unless_switched_off():
    sample = 1796050935                          # 2026-11-30 15:02:15 UTC
    assert sig.timestamp_fresh(sample, 900, now=sample + 899)
    assert not sig.timestamp_fresh(sample, 900, now=sample + 901)
    assert not sig.timestamp_fresh(sample, 900, now=sample - 3600)
    assert sig.timestamp_fresh(sample, None, now=sample + 10 ** 7)
    assert not sig.timestamp_fresh("yesterday", 900, now=sample)


def test_basic_auth_needs_both_user_and_password():
    import base64
    good = "Basic " + base64.b64encode(b"postmark:pm-inbound-test-Ka81").decode()
    assert sig.basic_auth_valid(good, "postmark", "pm-inbound-test-Ka81")
    assert not sig.basic_auth_valid(good, "postmark", "pm-inbound-test-Ka82")
    assert not sig.basic_auth_valid(good, "other", "pm-inbound-test-Ka81")
    assert not sig.basic_auth_valid(None, "postmark", "pm-inbound-test-Ka81")
    assert not sig.basic_auth_valid("Basic !!!", "postmark", "pm-inbound-test-Ka81")
    assert not sig.basic_auth_valid(good, "postmark", None)
