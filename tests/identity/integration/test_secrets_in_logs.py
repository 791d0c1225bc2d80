"""Secrets never reach the logs: passwords, session and challenge tokens, API client secrets,
access and refresh tokens, TOTP secrets and recovery codes stay out of what the gateway and the
identity service write, on success and on failure alike."""
import base64
import os
import time

from tests.identity.helpers import fresh_codes, sign_up


def _whole_log(stack, name):
    # stack.log() answers only the tail (for error messages); a leak may be further up.
    with open(os.path.join(stack.workdir, f"{name}.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


def _basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def test_no_password_token_or_secret_appears_in_the_gateway_or_identity_logs(api, stack):
    owner = sign_up(api, password="log-canary-passphrase-7")
    wrong_password = "log-canary-wrong-password-3"
    assert api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                "password": wrong_password}).status_code == 401
    login = api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                 "password": "log-canary-passphrase-7"})
    assert login.status_code == 200
    session = api.as_(login.json()["token"])
    client = session.post("/api/v1/api-clients", json={"name": "Log canary"}).json()
    basic = _basic(client["client_id"], client["client_secret"])
    assert api.post("/oauth/token", data={"grant_type": "client_credentials"},
                    headers=_basic(client["client_id"], "tru_cs_log-canary-wrong")).status_code == 401
    tokens = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic).json()
    refreshed = api.post("/oauth/token", data={"grant_type": "refresh_token",
                                               "refresh_token": tokens["refresh_token"]},
                         headers=basic).json()
    # The spent refresh token again (the reuse alarm, an error path).
    assert api.post("/oauth/token", data={"grant_type": "refresh_token",
                                          "refresh_token": tokens["refresh_token"]},
                    headers=basic).status_code == 400
    enrolment = session.post("/api/v1/me/mfa").json()
    codes = fresh_codes(enrolment["secret"])
    confirmed = session.post("/api/v1/me/mfa/confirm", json={"code": next(codes)}).json()
    challenge = api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                     "password": "log-canary-passphrase-7"}).json()
    second = api.post("/api/v1/auth/mfa/verify", json={"challenge_token": challenge["challenge_token"],
                                                       "code": next(codes)})
    assert second.status_code == 200
    time.sleep(0.5)  # let the processes' last lines reach their files

    secrets = {
        "signup password": "log-canary-passphrase-7", "wrong password": wrong_password,
        "signup session token": owner["token"], "session token": login.json()["token"],
        "client secret": client["client_secret"], "wrong client secret": "tru_cs_log-canary-wrong",
        "Basic credentials": basic["Authorization"].split()[1],
        "access token": tokens["access_token"], "refresh token": tokens["refresh_token"],
        "rotated access token": refreshed["access_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "TOTP secret": enrolment["secret"], "recovery code": confirmed["recovery_codes"][0],
        "challenge token": challenge["challenge_token"], "MFA session token": second.json()["token"],
    }
    logs = {name: _whole_log(stack, name) for name in ("gateway", "identity")}
    # The logs did record this activity (so an empty or unwritten log cannot pass).
    assert "POST /api/v1/auth/login 401" in logs["gateway"]
    assert "POST /oauth/token 400" in logs["gateway"]
    assert "Unauthorized" in logs["identity"]
    leaks = [(what, name) for name, text in logs.items() for what, value in secrets.items()
             if value in text]
    assert leaks == []
