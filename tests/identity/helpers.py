"""Building real organizations and teammates through the API, for the identity tests."""
import threading
import time
import uuid

import pyotp

PASSWORD = "correct-horse-battery"


def unique_email(prefix="owner"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.org"


def sign_up(api, org_name="Acme Outreach", owner_name="Olivia Owner", email=None,
            password=PASSWORD, description="We sell solar panels to schools."):
    email = email or unique_email()
    resp = api.post("/api/v1/signup", json={
        "organization": {"name": org_name, "description": description},
        "owner": {"name": owner_name, "email": email, "password": password},
    })
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return {"token": body["token"], "email": email, "password": password,
            "user_id": body["user"]["id"], "org_id": body["organization"]["id"],
            "organization": body["organization"], "api": api.as_(body["token"])}


def log_in(api, email, password=PASSWORD, org_id=None):
    resp = api.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return api.as_(resp.json()["token"], org_id)


def add_teammate(owner_api, role, password=PASSWORD, name=None):
    email = unique_email(role)
    resp = owner_api.post("/api/v1/team", json={
        "email": email, "password": password, "name": name or f"{role.title()} Teammate",
        "role": role})
    assert resp.status_code == 201, resp.text
    return {"email": email, "user_id": resp.json()["user_id"], "password": password}


def fresh_codes(secret):
    """TOTP codes of three consecutive time steps (the one before now, now, the next), in the
    order to use them: identity accepts each step once and never one before the last it
    accepted, so a test needing several right codes within 30 seconds walks this window."""
    totp, now = pyotp.TOTP(secret), time.time()
    return iter([totp.at(now - 30), totp.at(now), totp.at(now + 30)])


def at_once(fn, n=8):
    """Runs fn(i) in n threads released together (a barrier); the answers in order."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out
