"""Sign-in protection: rate limits, TOTP second factor, cache eviction by identity's events,
and OAuth client credentials for machine clients."""
import base64
import time

import pyotp

from tests.identity.helpers import PASSWORD, add_teammate, log_in, sign_up, unique_email


def _auth_ms(a):
    resp = a.get("/api/v1/me")
    return float(resp.headers["Server-Timing"].split("dur=")[1])


def _served_from_cache(a):
    """The gateway's token check answered without asking identity (well under a millisecond)."""
    deadline = time.time() + 5  # the gateway's eviction listener connects on first use
    while time.time() < deadline:
        if _auth_ms(a) < 0.5:
            return True
        time.sleep(0.1)
    return False


def test_lock_made_behind_the_gateways_back_still_stops_the_next_request(api, stack):
    owner = sign_up(api)
    mate = add_teammate(owner["api"], "member")
    m = log_in(api, mate["email"])
    assert m.get("/api/v1/organization").status_code == 200
    assert _served_from_cache(m)
    ctx = {"org_id": owner["org_id"], "user_id": owner["user_id"], "role": "owner"}
    with stack.rpc() as rpc:
        rpc.identity.change_teammate(ctx, mate["user_id"], {"locked": True})
    # Only identity's access_changed event can tell the gateway.
    assert m.get("/api/v1/organization").status_code == 401


def test_failed_sign_ins_per_account_get_429_with_retry_after(api):
    owner = sign_up(api)
    for _ in range(5):
        r = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": "wrong-password"})
        assert r.status_code == 401
    limited = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD})
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= 900
    assert limited.json()["error"] == "rate_limited"
    # Another account from the same address is not affected.
    other = sign_up(api)
    assert api.post("/api/v1/auth/login", json={"email": other["email"],
                                                "password": PASSWORD}).status_code == 200


def test_failed_sign_ins_per_address_are_limited_across_accounts(stack):
    from services.common.errors import RateLimited, Unauthorized
    address = "203.0.113.77"
    with stack.rpc() as rpc:
        for i in range(30):
            try:
                rpc.identity.login({"email": unique_email(f"spray{i}"), "password": "guess-123456"},
                                   {"address": address})
            except Unauthorized:
                pass
        try:
            rpc.identity.login({"email": unique_email("spray"), "password": "guess-123456"},
                               {"address": address})
            raise AssertionError("expected a rate limit")
        except RateLimited as err:
            assert 0 < int(float(err.retry_after)) <= 900
        with stack.db("identity") as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM sign_in_attempts WHERE address = %s AND NOT succeeded",
                        (address,))
            assert cur.fetchone()[0] == 30


def _enrol(a):
    start = a.post("/api/v1/me/mfa")
    assert start.status_code == 200
    secret = start.json()["secret"]
    assert start.json()["provisioning_uri"].startswith("otpauth://totp/")
    confirm = a.post("/api/v1/me/mfa/confirm", json={"code": pyotp.TOTP(secret).now()})
    assert confirm.status_code == 200
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10
    return secret, codes


def test_org_requiring_mfa_signs_in_only_with_a_second_factor(api):
    owner = sign_up(api)
    o = owner["api"]
    refused = o.patch("/api/v1/organization", json={"mfa_required": True})
    assert refused.status_code == 400 and "mfa_required" in refused.json()["errors"]
    secret, codes = _enrol(o)
    assert o.patch("/api/v1/organization", json={"mfa_required": True}).json()["mfa_required"] is True
    mate = add_teammate(o, "member")
    # The owner signs in: a challenge, no session yet.
    resp = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["mfa_required"] is True and "token" not in body and body["mfa_enrolled"] is True
    assert api.as_(body["challenge_token"]).get("/api/v1/me").status_code == 401
    bad = api.post("/api/v1/auth/mfa/verify", json={"challenge_token": body["challenge_token"],
                                                    "code": "000000"})
    assert bad.status_code == 401
    ok = api.post("/api/v1/auth/mfa/verify", json={"challenge_token": body["challenge_token"],
                                                   "code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 200 and ok.json()["token"].startswith("tru_st_")
    assert api.as_(ok.json()["token"]).get("/api/v1/organization").status_code == 200
    # A recovery code works once.
    c2 = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD}).json()
    r = api.post("/api/v1/auth/mfa/verify", json={"challenge_token": c2["challenge_token"], "code": codes[0]})
    assert r.status_code == 200
    c3 = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD}).json()
    assert api.post("/api/v1/auth/mfa/verify", json={"challenge_token": c3["challenge_token"],
                                                     "code": codes[0]}).status_code == 401
    # A teammate without MFA enrols during sign-in.
    c = api.post("/api/v1/auth/login", json={"email": mate["email"], "password": PASSWORD}).json()
    assert c["mfa_required"] is True and c["mfa_enrolled"] is False
    enrol = api.post("/api/v1/auth/mfa/enrol", json={"challenge_token": c["challenge_token"]})
    assert enrol.status_code == 200
    done = api.post("/api/v1/auth/mfa/verify", json={
        "challenge_token": c["challenge_token"], "code": pyotp.TOTP(enrol.json()["secret"]).now()})
    assert done.status_code == 200 and len(done.json()["recovery_codes"]) == 10
    assert api.as_(done.json()["token"]).get("/api/v1/me").json()["role"] == "member"


def test_sessions_without_second_factor_stop_when_org_turns_mfa_on(api):
    owner = sign_up(api)
    mate = add_teammate(owner["api"], "member")
    m = log_in(api, mate["email"])
    assert m.get("/api/v1/organization").status_code == 200
    _enrol(owner["api"])
    assert owner["api"].patch("/api/v1/organization", json={"mfa_required": True}).status_code == 200
    assert m.get("/api/v1/organization").status_code == 401
    assert owner["api"].get("/api/v1/organization").status_code == 200  # verified while enrolling


def _client(owner_api, **extra):
    resp = owner_api.post("/api/v1/api-clients", json={"name": "CRM sync", **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _basic(client):
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def test_client_credentials_issue_tokens_and_refresh_rotates(api, stack):
    owner = sign_up(api)
    client = _client(owner["api"])
    assert client["client_secret"].startswith("tru_cs_") and client["org_ids"] == [owner["org_id"]]
    listed = owner["api"].get("/api/v1/api-clients").json()
    assert listed[0]["client_id"] == client["client_id"] and "client_secret" not in listed[0]
    tok = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(client))
    assert tok.status_code == 200, tok.text
    t = tok.json()
    assert t["access_token"].startswith("tru_at_") and t["refresh_token"].startswith("tru_rt_")
    assert t["expires_in"] == 900 and t["refresh_token_expires_in"] == 30 * 86400
    body_auth = api.post("/oauth/token", json={"grant_type": "client_credentials",
                                               "client_id": client["client_id"],
                                               "client_secret": client["client_secret"]})
    assert body_auth.status_code == 200
    with stack.rpc() as rpc:
        who = rpc.identity.authenticate_client(t["access_token"])
        assert who == {"client_id": client["client_id"], "org_ids": [owner["org_id"]],
                       "default_org_id": owner["org_id"], "expires_at": who["expires_at"]}
        refreshed = api.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": t["refresh_token"]})
        assert refreshed.status_code == 200
        r = refreshed.json()
        assert r["refresh_token"] != t["refresh_token"]
        # The spent refresh token comes back: every token of the client is revoked.
        reuse = api.post("/oauth/token", data={"grant_type": "refresh_token",
                                               "refresh_token": t["refresh_token"]})
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        for token in (t["access_token"], r["access_token"]):
            try:
                rpc.identity.authenticate_client(token)
                raise AssertionError("token still valid")
            except Exception as err:
                assert type(err).__name__ == "Unauthorized"
        assert api.post("/oauth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": r["refresh_token"]}).status_code == 400


def test_token_endpoint_refuses_bad_secret_and_limits_to_10_a_minute(api):
    owner = sign_up(api)
    client = _client(owner["api"])
    bad = api.post("/oauth/token", data={"grant_type": "client_credentials",
                                         "client_id": client["client_id"], "client_secret": "nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert "nope" not in bad.text
    codes = [api.post("/oauth/token", data={"grant_type": "client_credentials"},
                      headers=_basic(client)).status_code for _ in range(10)]
    assert codes[:9] == [200] * 9 and codes[9] == 429
    limited = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(client))
    assert limited.status_code == 429 and 0 < int(limited.headers["Retry-After"]) <= 60
    assert api.post("/oauth/token", data={"grant_type": "password"}).status_code == 400


def test_api_client_scope_only_covers_organizations_the_creator_manages(api):
    first = sign_up(api)
    second = sign_up(api)
    mine = add_teammate(second["api"], "viewer")
    # first's owner joins... no: a stranger org is refused.
    refused = first["api"].post("/api/v1/api-clients", json={"name": "x", "org_ids": [second["org_id"]]})
    assert refused.status_code == 400 and "org_ids" in refused.json()["errors"]
    # A person who owns one organization and only views another can grant only the first.
    joined = first["api"].post("/api/v1/team", json={"email": mine["email"], "password": PASSWORD,
                                                     "name": "V", "role": "admin"})
    assert joined.status_code == 201
    v = log_in(api, mine["email"], org_id=first["org_id"])
    assert v.post("/api/v1/api-clients", json={"name": "x", "org_ids": [second["org_id"]]}).status_code == 400
    ok = v.post("/api/v1/api-clients", json={"name": "x", "org_ids": [first["org_id"]]})
    assert ok.status_code == 201 and ok.json()["org_ids"] == [first["org_id"]]


def test_revoked_client_can_no_longer_get_tokens(api, stack):
    owner = sign_up(api)
    client = _client(owner["api"])
    t = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(client)).json()
    assert owner["api"].delete(f"/api/v1/api-clients/{client['id']}").status_code == 204
    assert api.post("/oauth/token", data={"grant_type": "client_credentials"},
                    headers=_basic(client)).status_code == 401
    with stack.rpc() as rpc:
        try:
            rpc.identity.authenticate_client(t["access_token"])
            raise AssertionError("still valid")
        except Exception as err:
            assert type(err).__name__ == "Unauthorized"
    log = owner["api"].get("/api/v1/audit-log").json()["entries"]
    assert [e["action"] for e in log[:2]] == ["api_client.revoked", "api_client.created"]
    assert client["client_secret"] not in str(log)


def test_user_turns_mfa_off_with_a_code_unless_an_organization_requires_it(api):
    owner = sign_up(api)
    o = owner["api"]
    secret, _ = _enrol(o)
    assert o.post("/api/v1/me/mfa").status_code == 400  # already on
    login = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD}).json()
    assert login["mfa_required"] is True  # enrolled users always confirm a code
    o.patch("/api/v1/organization", json={"mfa_required": True})
    refused = o.post("/api/v1/me/mfa/disable", json={"code": pyotp.TOTP(secret).now()})
    assert refused.status_code == 400 and "mfa" in refused.json()["errors"]
    o.patch("/api/v1/organization", json={"mfa_required": False})
    assert o.post("/api/v1/me/mfa/disable", json={"code": "000000"}).status_code == 400
    off = o.post("/api/v1/me/mfa/disable", json={"code": pyotp.TOTP(secret).now()})
    assert off.status_code == 200 and off.json() == {"mfa_enabled": False}
    assert "token" in api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                           "password": PASSWORD}).json()
