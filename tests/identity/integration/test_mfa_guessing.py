"""Second-factor codes cannot be guessed without limit: the sign-in limiter (per account and per
address, 429 with Retry-After) covers codes too, and a challenge dies after five wrong codes."""
import time

import pyotp
import pytest

from tests.identity.helpers import PASSWORD, fresh_codes, sign_up

_accounts = []


@pytest.fixture(autouse=True)
def forget_failures(stack):
    """Every test here fails on purpose from the test machine's one address; the failures are
    forgotten afterwards so that address stays under its limit for the rest of the suite."""
    yield
    with stack.db("identity") as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM sign_in_attempts WHERE email = ANY(%s)", (_accounts,))
    _accounts.clear()


def _owner_with_mfa(api):
    """An owner with MFA on, its secret, and the unused right codes left (see fresh_codes)."""
    owner = _sign_up(api)
    start = owner["api"].post("/api/v1/me/mfa").json()
    codes = fresh_codes(start["secret"])
    confirm = owner["api"].post("/api/v1/me/mfa/confirm", json={"code": next(codes)})
    assert confirm.status_code == 200, confirm.text
    return owner, start["secret"], codes


def _sign_up(api):
    owner = sign_up(api)
    _accounts.append(owner["email"])
    return owner


def _challenge(api, email):
    body = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).json()
    assert body["mfa_required"] is True, body
    return body["challenge_token"]


def _verify(api, challenge, code):
    return api.post("/api/v1/auth/mfa/verify", json={"challenge_token": challenge, "code": code})


def _wrong_code(totp):
    """A six-digit code that is not valid now (nor in the adjacent windows)."""
    now = time.time()
    valid = {totp.at(now + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def test_a_challenge_is_revoked_after_five_wrong_codes(api):
    owner, secret, codes = _owner_with_mfa(api)
    totp = pyotp.TOTP(secret)
    challenge = _challenge(api, owner["email"])
    for _ in range(5):
        assert _verify(api, challenge, _wrong_code(totp)).status_code == 401
    # Even the right code no longer turns this challenge into a session.
    late = _verify(api, challenge, next(codes))
    assert late.status_code == 401
    assert "token" not in late.json() and "sign in again" in late.json()["message"]


def test_code_guesses_count_as_failed_sign_ins_and_get_429_with_retry_after(api):
    owner, secret, codes = _owner_with_mfa(api)
    challenge = _challenge(api, owner["email"])
    # Five failures of the account (here wrong passwords) put it over the limit...
    for _ in range(5):
        assert api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                    "password": "wrong-password"}).status_code == 401
    # ...and the limit holds for codes too, even a right one.
    limited = _verify(api, challenge, next(codes))
    assert limited.status_code == 429, limited.text
    assert 0 < int(limited.headers["Retry-After"]) <= 900
    assert "token" not in limited.json()


def test_signing_in_again_does_not_reset_the_count_of_wrong_codes(api):
    owner, secret, codes = _owner_with_mfa(api)
    totp = pyotp.TOTP(secret)
    first = _challenge(api, owner["email"])
    for _ in range(3):
        assert _verify(api, first, _wrong_code(totp)).status_code == 401
    second = _challenge(api, owner["email"])  # the password is right; the code guesses still count
    for _ in range(2):
        assert _verify(api, second, _wrong_code(totp)).status_code == 401
    limited = _verify(api, second, _wrong_code(totp))
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                "password": PASSWORD}).status_code == 429


def test_a_right_code_after_a_few_wrong_ones_signs_in_and_forgives_them(api):
    owner, secret, codes = _owner_with_mfa(api)
    totp = pyotp.TOTP(secret)
    challenge = _challenge(api, owner["email"])
    for _ in range(3):
        assert _verify(api, challenge, _wrong_code(totp)).status_code == 401
    ok = _verify(api, challenge, next(codes))
    assert ok.status_code == 200 and ok.json()["token"].startswith("tru_st_")
    again = _challenge(api, owner["email"])
    for _ in range(4):
        assert _verify(api, again, _wrong_code(totp)).status_code == 401
    assert _verify(api, again, next(codes)).status_code == 200


def test_code_guesses_from_a_noisy_address_are_limited(api, stack):
    from services.common.errors import RateLimited, Unauthorized
    owner, secret, codes = _owner_with_mfa(api)
    challenge = _challenge(api, owner["email"])
    address = "198.51.100.23"
    with stack.rpc() as rpc:
        for i in range(30):
            try:
                rpc.identity.login({"email": f"nobody-{i}@example.org", "password": "guess-123456"},
                                   {"address": address})
            except Unauthorized:
                pass
        try:
            rpc.identity.mfa_challenge_verify({"challenge_token": challenge,
                                               "code": next(codes)}, {"address": address})
            raise AssertionError("expected a rate limit")
        except RateLimited as err:
            assert 0 < int(float(err.retry_after)) <= 900


def test_signed_in_mfa_disable_guesses_are_limited_too(api):
    owner, secret, codes = _owner_with_mfa(api)
    totp = pyotp.TOTP(secret)
    for _ in range(5):
        assert owner["api"].post("/api/v1/me/mfa/disable",
                                 json={"code": _wrong_code(totp)}).status_code == 400
    limited = owner["api"].post("/api/v1/me/mfa/disable", json={"code": next(codes)})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert owner["api"].get("/api/v1/me").json()["mfa_enabled"] is True


def test_signed_in_mfa_confirm_guesses_are_limited_too(api):
    owner = _sign_up(api)
    secret = owner["api"].post("/api/v1/me/mfa").json()["secret"]
    totp = pyotp.TOTP(secret)
    for _ in range(5):
        assert owner["api"].post("/api/v1/me/mfa/confirm",
                                 json={"code": _wrong_code(totp)}).status_code == 400
    limited = owner["api"].post("/api/v1/me/mfa/confirm", json={"code": totp.now()})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0


def test_a_totp_code_works_once_and_cannot_be_replayed_within_its_window(api):
    owner = _sign_up(api)
    secret = owner["api"].post("/api/v1/me/mfa").json()["secret"]
    codes = fresh_codes(secret)
    enrolled_with, signed_in_with = next(codes), next(codes)
    assert owner["api"].post("/api/v1/me/mfa/confirm",
                             json={"code": enrolled_with}).status_code == 200
    # The code that confirmed enrolment is spent: it cannot sign in.
    replayed = _verify(api, _challenge(api, owner["email"]), enrolled_with)
    assert replayed.status_code == 401 and replayed.json()["message"] == "the code is not valid"
    first = _verify(api, _challenge(api, owner["email"]), signed_in_with)
    assert first.status_code == 200 and first.json()["token"].startswith("tru_st_")
    # The same code a second time, still inside its 30-second window: refused.
    again = _verify(api, _challenge(api, owner["email"]), signed_in_with)
    assert again.status_code == 401 and "token" not in again.json()
    session = api.as_(first.json()["token"])
    off = session.post("/api/v1/me/mfa/disable", json={"code": signed_in_with})
    assert off.status_code == 400 and off.json()["errors"] == {"code": ["does not match"]}
    # Only a later step works now.
    assert _verify(api, _challenge(api, owner["email"]), next(codes)).status_code == 200
