"""SMS through Twilio's REST API, against the local stand-in that speaks Twilio's wire format (no
broker, no database): what is posted, how Twilio's answers become outcomes, which failures are
retried and which never are."""
import re
import socket
import threading

import pytest

from services.messaging import sms
from tests.messaging.twilio_standin import TwilioStandIn

ACCOUNT = "AC" + "a1" * 16
TOKEN = "auth-token-" + "7" * 21
KEY_SID = "SK" + "b2" * 16
KEY_SECRET = "key-secret-" + "3" * 21
OURS = "+12025550100"
CALLBACK = "https://outreach.example.org/webhooks/twilio/sms/status"


@pytest.fixture
def twilio():
    standin = TwilioStandIn().start()
    standin.add_account(ACCOUNT, TOKEN, api_keys={KEY_SID: KEY_SECRET})
    yield standin
    standin.stop()


def client(standin, user=ACCOUNT, password=TOKEN, sleeps=None, **kw):
    record = sleeps if sleeps is not None else []
    return sms.TwilioClient(standin.url, ACCOUNT, user, password, sleep=record.append, **kw)


def message(to="+12025550143", body="Hi Ana, a quick idea for Q1. Reply STOP to opt out."):
    return sms.form(to, body, from_=OURS, status_callback=CALLBACK)


def test_a_message_is_posted_form_encoded_with_basic_auth_and_twilios_sid_comes_back(twilio):
    outcome = client(twilio).send(message())
    assert outcome.kind == "sent"
    assert re.fullmatch(r"SM[0-9a-f]{32}", outcome.sid)
    assert outcome.provider_status == "queued"
    [got] = twilio.messages()
    assert (got["to"], got["from"], got["status_callback"], got["sid"]) == \
        ("+12025550143", OURS, CALLBACK, outcome.sid)
    assert got["body"] == "Hi Ana, a quick idea for Q1. Reply STOP to opt out."


def test_key_and_secret_credentials_authenticate_as_the_api_key(twilio):
    outcome = client(twilio, user=KEY_SID, password=KEY_SECRET).send(message())
    assert outcome.kind == "sent"
    assert twilio.messages()[0]["user"] == KEY_SID


def test_a_wrong_auth_token_fails_for_good_with_twilios_20003(twilio):
    sleeps = []
    outcome = client(twilio, password="not-the-token", sleeps=sleeps).send(message())
    assert outcome == sms.Outcome("permanent", None, None,
                                  "Twilio error 20003: Authenticate (HTTP 401)", "20003")
    assert sleeps == [] and len(twilio.requests) == 1 and twilio.messages() == []


def test_an_invalid_number_is_a_permanent_failure_carrying_twilios_code(twilio):
    outcome = client(twilio).send(message(to="+1202"))
    assert outcome.kind == "permanent"
    assert outcome.error_code == "21211"
    assert outcome.error == "Twilio error 21211: Invalid 'To' Phone Number: +1202 (HTTP 400)"


def test_missing_to_and_from_get_twilios_own_errors(twilio):
    assert client(twilio).send({"Body": "x", "From": OURS}).error_code == "21604"
    assert client(twilio).send({"Body": "x", "To": "+12025550143"}).error_code == "21603"


def test_server_errors_are_retried_with_backoff_then_sent_once(twilio):
    twilio.fail_next(503, 20500, "Service Unavailable", times=2)
    sleeps = []
    outcome = client(twilio, sleeps=sleeps).send(message())
    assert outcome.kind == "sent"
    assert sleeps == [0.5, 2.0]
    assert len(twilio.requests) == 3 and len(twilio.messages()) == 1


def test_too_many_requests_honours_retry_after_and_stays_transient_when_it_persists(twilio):
    twilio.fail_next(429, 20429, "Too Many Requests", times=3, headers={"Retry-After": "3"})
    sleeps = []
    outcome = client(twilio, sleeps=sleeps).send(message())
    assert outcome.kind == "transient"
    assert outcome.error == "Twilio error 20429: Too Many Requests (HTTP 429)"
    assert sleeps == [3.0, 3.0]
    assert twilio.messages() == []


def test_a_refused_connection_is_retried_and_left_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    c = sms.TwilioClient(f"http://127.0.0.1:{port}", ACCOUNT, ACCOUNT, TOKEN, sleep=sleeps.append)
    outcome = c.send(message())
    assert outcome.kind == "transient" and "cannot reach Twilio" in outcome.error
    assert sleeps == [0.5, 2.0]


def test_no_answer_after_the_request_went_out_is_never_retried():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    sleeps = []
    c = sms.TwilioClient(f"http://127.0.0.1:{server.getsockname()[1]}", ACCOUNT, ACCOUNT, TOKEN,
                         timeout=(2, 0.3), sleep=sleeps.append)
    try:
        outcome = c.send(message())
    finally:
        server.close()
    assert outcome.kind == "unknown"
    assert "may have gone out" in outcome.error
    assert sleeps == []


def test_numbers_are_sent_in_e164_and_credentials_follow_the_style():
    assert sms.e164("(202) 555-0143") == "+12025550143"
    assert sms.e164("+44 7700 900123") == "+447700900123"
    assert sms.e164("call me") is None
    token_row = {"config": {"account_sid": ACCOUNT, "credential_style": "token"}}
    assert sms.credentials(token_row, {"auth_token": TOKEN}) == (ACCOUNT, ACCOUNT, TOKEN)
    key_row = {"config": {"account_sid": ACCOUNT, "credential_style": "api_key",
                          "api_key_sid": KEY_SID}}
    assert sms.credentials(key_row, {"api_key_secret": KEY_SECRET, "auth_token": TOKEN}) == \
        (ACCOUNT, KEY_SID, KEY_SECRET)
    assert sms.credentials(key_row, {"auth_token": TOKEN}) is None
    assert sms.messages_url(None, ACCOUNT) == \
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert sms.status_callback_url("https://outreach.example.org/") == CALLBACK
