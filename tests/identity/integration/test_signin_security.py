"""Sign-in protection: rate limits, TOTP second factor, cache eviction by identity's events,
and OAuth client credentials for machine clients."""
import base64
import os
import signal
import subprocess
import time

import pyotp
import pytest

from services.common import errors  # noqa: F401  (RPC errors then arrive as their classes)
from services.common.config import ROOT
from tests.identity.helpers import (PASSWORD, add_teammate, at_once, fresh_codes, log_in, sign_up,
                                    unique_email)
from tests.stack import procfile


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


@pytest.fixture
def identity_replica(stack):
    """A second identity process on the same RPC queue, as in production: requests are shared
    between the two, so a limit that held only inside one process would show here."""
    log_path = os.path.join(stack.workdir, "identity-replica.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(procfile()["identity"], shell=True, cwd=ROOT, env=stack.env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            with open(log_path, "rb") as f:
                if b"Connected to amqp" in f.read():
                    break
            assert proc.poll() is None and time.time() < deadline, "the replica did not start"
            time.sleep(0.2)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_parallel_wrong_passwords_for_one_account_get_five_401s_and_429s_for_the_rest(
        api, stack, identity_replica):
    for email in (sign_up(api)["email"], unique_email("nobody")):  # an account; an unknown email
        try:
            codes = at_once(lambda i: api.as_(None).post("/api/v1/auth/login", json={
                "email": email.upper() if i % 2 else email,
                "password": f"wrong-password-{i}"}).status_code, 20)
            assert sorted(codes) == [401] * 5 + [429] * 15, email
            with stack.db("identity") as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM sign_in_attempts WHERE email = %s "
                            "AND NOT succeeded", (email,))
                assert cur.fetchone()[0] == 5
        finally:
            # The failures came from the test machine's one address: forget them, so the
            # address stays under its own limit for the rest of the suite.
            with stack.db("identity") as conn, conn.cursor() as cur:
                cur.execute("DELETE FROM sign_in_attempts WHERE email = %s", (email,))


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
    """MFA on for the caller: (the unused right TOTP codes left, the recovery codes)."""
    start = a.post("/api/v1/me/mfa")
    assert start.status_code == 200
    totp_codes = fresh_codes(start.json()["secret"])
    assert start.json()["provisioning_uri"].startswith("otpauth://totp/")
    confirm = a.post("/api/v1/me/mfa/confirm", json={"code": next(totp_codes)})
    assert confirm.status_code == 200
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10
    return totp_codes, codes


def test_org_requiring_mfa_signs_in_only_with_a_second_factor(api):
    owner = sign_up(api)
    o = owner["api"]
    refused = o.patch("/api/v1/organization", json={"mfa_required": True})
    assert refused.status_code == 400 and "mfa_required" in refused.json()["errors"]
    totp_codes, codes = _enrol(o)
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
                                                   "code": next(totp_codes)})
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
                                                   "refresh_token": t["refresh_token"]},
                             headers=_basic(client))
        assert refreshed.status_code == 200
        r = refreshed.json()
        assert r["refresh_token"] != t["refresh_token"]
        # The spent refresh token comes back: every token of the client is revoked.
        reuse = api.post("/oauth/token", data={"grant_type": "refresh_token",
                                               "refresh_token": t["refresh_token"]},
                         headers=_basic(client))
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        for token in (t["access_token"], r["access_token"]):
            try:
                rpc.identity.authenticate_client(token)
                raise AssertionError("token still valid")
            except Exception as err:
                assert type(err).__name__ == "Unauthorized"
        assert api.post("/oauth/token", data={"grant_type": "refresh_token",
                                              "refresh_token": r["refresh_token"]},
                        headers=_basic(client)).status_code == 400


def _refresh(api, refresh_token, **kw):
    return api.post("/oauth/token", data={"grant_type": "refresh_token",
                                          "refresh_token": refresh_token, **kw.pop("data", {})}, **kw)


def test_refreshing_needs_the_credentials_of_the_client_the_token_was_issued_to(api):
    owner = sign_up(api)
    client, other = _client(owner["api"]), _client(owner["api"])
    t = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(client)).json()
    anonymous = _refresh(api, t["refresh_token"])
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="oauth"'
    named_only = _refresh(api, t["refresh_token"], data={"client_id": client["client_id"]})
    assert named_only.status_code == 401 and named_only.json()["error"] == "invalid_client"
    wrong_secret = _refresh(api, t["refresh_token"], data={
        "client_id": client["client_id"], "client_secret": other["client_secret"]})
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    foreign = _refresh(api, t["refresh_token"], headers=_basic(other))
    assert foreign.status_code == 400 and foreign.json() == {
        "error": "invalid_grant", "error_description": "the refresh token is not valid for this client"}
    # None of those spent the token or set off the reuse alarm: its own client refreshes it.
    ok = _refresh(api, t["refresh_token"], headers=_basic(client))
    assert ok.status_code == 200 and ok.json()["refresh_token"].startswith("tru_rt_")
    in_body = _refresh(api, ok.json()["refresh_token"], data={
        "client_id": client["client_id"], "client_secret": client["client_secret"]})
    assert in_body.status_code == 200 and in_body.json()["scope"] == owner["org_id"]


def test_a_token_no_longer_covers_an_organization_whose_admin_the_creator_no_longer_is(api, stack):
    a = sign_up(api, org_name="Scope Keeper A")
    mate = add_teammate(a["api"], "admin", name="Ada Admin")
    ada = log_in(api, mate["email"])
    onboarded = ada.post("/api/v1/onboarding", json={"name": "Ada Admin",
                                                     "organization_name": "Scope Keeper B"})
    assert onboarded.status_code == 201, onboarded.text
    a_id, b_id = a["org_id"], onboarded.json()["active_org_id"]
    in_a = api.as_(ada.token, a_id)
    both = in_a.post("/api/v1/api-clients", json={"name": "Both", "org_ids": [a_id, b_id]}).json()
    only_a = _client(in_a)
    before = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(both))
    assert before.json()["scope"] == f"{a_id} {b_id}"
    only_a_access = api.post("/oauth/token", data={"grant_type": "client_credentials"},
                             headers=_basic(only_a)).json()["access_token"]

    assert a["api"].patch(f"/api/v1/team/{mate['user_id']}", json={"role": "member"}).status_code == 200
    after = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(both))
    assert after.status_code == 200 and after.json()["scope"] == b_id
    refreshed = _refresh(api, before.json()["refresh_token"], headers=_basic(both))
    assert refreshed.status_code == 200 and refreshed.json()["scope"] == b_id
    with stack.rpc() as rpc:
        who = rpc.identity.authenticate_client(before.json()["access_token"])
        assert (who["org_ids"], who["default_org_id"]) == ([b_id], b_id)
        try:
            rpc.identity.authenticate_client(only_a_access)
            raise AssertionError("a token of a client with no organization left still works")
        except Exception as err:
            assert type(err).__name__ == "Unauthorized"
    refused = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(only_a))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    # Made admin again, the creator's client covers A again.
    assert a["api"].patch(f"/api/v1/team/{mate['user_id']}", json={"role": "admin"}).status_code == 200
    again = api.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=_basic(only_a))
    assert again.status_code == 200 and again.json()["scope"] == a_id


def test_a_denied_request_still_names_the_organization_it_concerns(api):
    owner = sign_up(api)
    viewer = log_in(api, add_teammate(owner["api"], "viewer")["email"])
    denied = viewer.get("/api/v1/team")
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert denied.headers["X-Organization-Id"] == owner["org_id"]
    chosen = api.as_(viewer.token, owner["org_id"]).post("/api/v1/api-clients", json={"name": "x"})
    assert chosen.status_code == 403 and chosen.headers["X-Organization-Id"] == owner["org_id"]
    # Without an organization there is none to name.
    reg = api.post("/api/v1/auth/register", json={"name": "Nora", "email": unique_email("nora"),
                                                  "password": PASSWORD})
    none = api.as_(reg.json()["token"]).get("/api/v1/organization")
    assert none.status_code == 403 and "X-Organization-Id" not in none.headers


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
    totp_codes, _ = _enrol(o)
    assert o.post("/api/v1/me/mfa").status_code == 400  # already on
    login = api.post("/api/v1/auth/login", json={"email": owner["email"], "password": PASSWORD}).json()
    assert login["mfa_required"] is True  # enrolled users always confirm a code
    o.patch("/api/v1/organization", json={"mfa_required": True})
    refused = o.post("/api/v1/me/mfa/disable", json={"code": next(totp_codes)})
    assert refused.status_code == 400 and "mfa" in refused.json()["errors"]
    o.patch("/api/v1/organization", json={"mfa_required": False})
    assert o.post("/api/v1/me/mfa/disable", json={"code": "000000"}).status_code == 400
    off = o.post("/api/v1/me/mfa/disable", json={"code": next(totp_codes)})
    assert off.status_code == 200 and off.json() == {"mfa_enabled": False}
    assert "token" in api.post("/api/v1/auth/login", json={"email": owner["email"],
                                                           "password": PASSWORD}).json()


def test_adding_a_teammate_to_another_organization_obeys_its_mfa_requirement(api):
    a = sign_up(api)
    b = sign_up(api, org_name="Strict Org")
    joined = b["api"].post("/api/v1/team", json={"email": a["email"], "password": PASSWORD,
                                                   "name": "Olivia Owner", "role": "admin"})
    assert joined.status_code == 201, joined.text
    session = log_in(api, a["email"], org_id=a["org_id"])  # no second factor anywhere yet
    _enrol(b["api"])
    assert b["api"].patch("/api/v1/organization", json={"mfa_required": True}).status_code == 200
    resp = session.post("/api/v1/team", json={
        "email": unique_email("mate"), "password": PASSWORD, "name": "New Mate", "role": "member",
        "organization_id": b["org_id"]})
    assert resp.status_code == 401, resp.text
    assert "two-factor" in resp.json()["message"]
    assert sorted(m["email"] for m in b["api"].get("/api/v1/team").json()) == sorted([a["email"], b["email"]])
