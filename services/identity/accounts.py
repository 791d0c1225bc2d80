"""Accounts and sessions: sign-up, registration, onboarding, sign-in (rate-limited, with a second
factor when an organization requires it), token checks, active organization, profile, sessions.

Sign-in failures must be recorded even though the caller gets an error, so the functions that
can fail that way return the error instead of raising it; the service raises it after commit."""
import datetime as dt
import uuid

from services.common.errors import (
    LOCKED_IN_ORGANIZATION, Conflict, Invalid, NotFound, RateLimited, Unauthorized)
from services.identity import credentials, mfa, organizations, store

SESSION_DAYS = 14
CHALLENGE_MINUTES = 10
SESSION_PREFIX = "tru_st_"
CHALLENGE_PREFIX = "tru_mc_"

# Failed sign-ins inside the window; over the limit the account or address waits.
FAILURE_WINDOW = 15 * 60
ACCOUNT_FAILURE_LIMIT = 5
ADDRESS_FAILURE_LIMIT = 30
# Wrong second-factor codes one sign-in challenge survives; then a fresh sign-in is needed.
CHALLENGE_CODE_LIMIT = 5

BAD_CREDENTIALS = "email or password is wrong"


def now():
    return dt.datetime.now(dt.timezone.utc)


def normalize_email(email):
    return (email or "").strip().lower()


def user_view(user):
    return {"id": str(user["id"]), "email": user["email"], "name": user["name"],
            "mfa_enabled": bool(user.get("totp_enabled")),
            "created_at": user["created_at"].isoformat() if user.get("created_at") else None}


def orgs_view(memberships):
    return [{"org_id": str(m["org_id"]), "name": m["name"], "slug": m["slug"], "role": m["role"],
             "locked": m["locked"]} for m in memberships]


def check_password(password, email, name, field="password"):
    """Invalid with the problems under `field` (a dotted path nests: "owner.password")."""
    problems = credentials.password_problems(password, email, name)
    if problems:
        errors = problems
        for key in reversed(field.split(".")):
            errors = {key: errors}
        raise Invalid("the password is too weak", errors=errors)


def new_user(tx, email, name, password, errors_at=("email",)):
    """Insert a user; Conflict (with a field error) when the address is taken."""
    email = normalize_email(email)
    row = store.insert_user(tx, {"id": str(uuid.uuid4()), "email": email, "name": name.strip(),
                                 "password_hash": credentials.hash_password(password)})
    if row is None:
        errors = {errors_at[-1]: ["an account with this email already exists"]}
        for key in reversed(errors_at[:-1]):
            errors = {key: errors}
        raise Conflict("an account with this email already exists", errors=errors)
    return row


def open_session(tx, user, active_org_id, meta=None, mfa_verified=False, kind="session"):
    meta = meta or {}
    if kind == "session":
        token, expires = credentials.new_token(SESSION_PREFIX), now() + dt.timedelta(days=SESSION_DAYS)
    else:
        token, expires = credentials.new_token(CHALLENGE_PREFIX), now() + dt.timedelta(minutes=CHALLENGE_MINUTES)
    session = store.insert_session(tx, {
        "id": str(uuid.uuid4()), "user_id": user["id"], "token_hash": credentials.token_hash(token),
        "kind": kind, "active_org_id": active_org_id, "mfa_verified": mfa_verified,
        "address": (meta.get("address") or None), "user_agent": (meta.get("user_agent") or "")[:300] or None,
        "expires_at": expires,
    })
    return token, session


def signup(tx, data, meta=None):
    owner, org_in = data["owner"], data["organization"]
    check_password(owner["password"], owner["email"], owner["name"], field="owner.password")
    user = new_user(tx, owner["email"], owner["name"], owner["password"], errors_at=("owner", "email"))
    org = organizations.create(tx, org_in["name"].strip(), org_in.get("description") or "", user)
    token, session = open_session(tx, user, org["id"], meta)
    return {"token": token, "expires_at": session["expires_at"].isoformat(), "user": user_view(user),
            "organization": organizations.view(tx, org), "active_org_id": str(org["id"])}


def register(tx, data, meta=None):
    """An account without an organization yet (onboarding creates one)."""
    check_password(data["password"], data["email"], data["name"])
    user = new_user(tx, data["email"], data["name"], data["password"])
    token, session = open_session(tx, user, None, meta)
    return {"token": token, "expires_at": session["expires_at"].isoformat(), "user": user_view(user),
            "organizations": [], "active_org_id": None}


def onboard(tx, who, data):
    """A signed-in user creates an organization and becomes its owner; it becomes active."""
    user = store.update_user(tx, who["user_id"], name=data["name"].strip())
    org = organizations.create(tx, data["organization_name"].strip(),
                               data.get("organization_description") or "", user)
    store.set_active_org(tx, who["user_id"], who["session_id"], org["id"])
    return {"user": user_view(user), "organization": organizations.view(tx, org),
            "active_org_id": str(org["id"])}


def rate_limit(tx, email, address):
    """RateLimited when the account or the address failed too often lately, else None.
    Failures are wrong passwords and wrong second-factor codes alike. Callers that then record
    an attempt hold the account's sign-in lock (store.lock_sign_ins), so the count and the
    record are one step per account. The address limit is not locked (that would serialize
    every account behind one office's NAT): parallel requests can overshoot it slightly."""
    checks = [("email", email, ACCOUNT_FAILURE_LIMIT)]
    if address:
        checks.append(("address", address, ADDRESS_FAILURE_LIMIT))
    for column, value, limit in checks:
        count, oldest_age = store.recent_failures(tx, column, value, FAILURE_WINDOW)
        if count >= limit:
            wait = retry_after(oldest_age, FAILURE_WINDOW)
            return RateLimited("too many failed sign-ins; try again later", retry_after=wait)
    return None


def retry_after(oldest_age, window):
    """Seconds until the oldest counted event leaves the window (at least 1)."""
    return max(1, int(window - oldest_age + 0.999))


def login(tx, data, meta=None):
    """A session, an MFA challenge, or an error to raise after commit.

    The limit must hold against parallel requests: the failures are counted again, and this
    attempt recorded, under the account's sign-in lock. The lock is taken only after the
    password check, because argon2 runs in a thread pool while this green thread waits, and a
    green thread of the same process blocking on a lock held across that wait (psycopg2 blocks
    the whole process) would never let the holder finish. A cheap count before the check keeps
    a limited account from costing argon2 time at all."""
    meta = meta or {}
    email, address = normalize_email(data["email"]), meta.get("address")
    limited = rate_limit(tx, email, address)
    if limited:
        return limited
    user = store.user_by_email(tx, email)
    ok = credentials.verify_password(user["password_hash"] if user else None, data["password"])
    new_hash = None
    if ok and credentials.needs_rehash(user["password_hash"]):
        new_hash = credentials.hash_password(data["password"])
    # From here to the commit nothing waits on the thread pool.
    store.lock_sign_ins(tx, email)
    limited = rate_limit(tx, email, address)
    if limited:
        return limited
    if not ok:
        store.record_attempt(tx, email, address, False)
        return Unauthorized(BAD_CREDENTIALS)
    memberships = store.memberships_of_user(tx, user["id"])
    usable = [m for m in memberships if not m["locked"]]
    if memberships and not usable:
        return Unauthorized("this account is locked; ask an administrator of your organization")
    store.record_attempt(tx, email, address, True)
    if new_hash:
        store.update_user(tx, user["id"], password_hash=new_hash)
    active = usable[0]["org_id"] if usable else None
    if any(m["mfa_required"] for m in usable) or user["totp_enabled"]:
        token, session = open_session(tx, user, active, meta, kind="mfa_challenge")
        # The account's failures are forgiven only once the second factor is passed too: a
        # right password must not reset the count of wrong codes.
        return {"mfa_required": True, "challenge_token": token, "mfa_enrolled": user["totp_enabled"],
                "expires_at": session["expires_at"].isoformat()}
    store.clear_failures(tx, email)
    return signed_in(tx, user, usable, active, meta, mfa_verified=False)


def signed_in(tx, user, usable, active, meta, mfa_verified):
    token, session = open_session(tx, user, active, meta, mfa_verified=mfa_verified)
    return {"token": token, "expires_at": session["expires_at"].isoformat(),
            "user": user_view(user), "organizations": orgs_view(usable),
            "active_org_id": None if active is None else str(active), "mfa_required": False}


def challenge(tx, challenge_token):
    session = store.session_by_token(tx, credentials.token_hash(challenge_token or ""))
    if (session is None or session["kind"] != "mfa_challenge" or session["revoked_at"]
            or session["expires_at"] <= now()):
        raise Unauthorized("the sign-in challenge expired or is not valid; sign in again")
    return session


def enrol_with_challenge(tx, challenge_token):
    session = challenge(tx, challenge_token)
    user = store.user(tx, session["user_id"], for_update=True)
    if user["totp_enabled"]:
        raise Conflict("two-factor sign-in is already set up; enter a code")
    return mfa.begin_enrolment(tx, user)


def finish_challenge(tx, challenge_token, code, meta=None):
    """Second step of sign-in: a TOTP or recovery code turns the challenge into a session.

    Limited like sign-in (a wrong code is a failed sign-in of the account and the address; over
    the limit even a right code waits), and a challenge is revoked after CHALLENGE_CODE_LIMIT
    wrong codes. Returns the error instead of raising it, so the failure is kept."""
    address = (meta or {}).get("address")
    session = challenge(tx, challenge_token)
    # The account's sign-in lock, then its row: guesses are counted and recorded one at a time.
    email = store.user(tx, session["user_id"])["email"]
    user = mfa.user_for_code(tx, session["user_id"], email)
    limited = rate_limit(tx, user["email"], address)
    if limited:
        return limited
    codes = None
    if user["totp_enabled"]:
        ok = mfa.check_code(tx, user, code)
    else:
        codes = mfa.confirm_enrolment(tx, user, code)
        ok = codes is not None
    if not ok:
        store.record_attempt(tx, user["email"], address, False)
        failures = store.challenge_failed(tx, user["id"], session["id"], CHALLENGE_CODE_LIMIT)
        if failures >= CHALLENGE_CODE_LIMIT:
            return Unauthorized("too many wrong codes; this sign-in challenge has ended, sign in again")
        return Unauthorized("the code is not valid")
    user = store.user(tx, user["id"])
    store.end_challenge(tx, user["id"], session["id"])
    store.clear_failures(tx, user["email"])
    usable = [m for m in store.memberships_of_user(tx, user["id"]) if not m["locked"]]
    result = signed_in(tx, user, usable, session["active_org_id"], meta, mfa_verified=True)
    if codes is not None:
        result["recovery_codes"] = codes
    return result


def session_for(tx, token):
    session = store.session_by_token(tx, credentials.token_hash(token or ""))
    if (session is None or session["kind"] != "session" or session["revoked_at"] is not None
            or session["expires_at"] <= now()):
        raise Unauthorized("the session is not valid or has expired; sign in again")
    return session


def authenticate(tx, token, wanted_org=None):
    """Who holds this session token, in which organization and role."""
    session = session_for(tx, token)
    user = store.user(tx, session["user_id"])
    memberships = store.memberships_of_user(tx, user["id"])
    usable = [m for m in memberships if not m["locked"]]
    if memberships and not usable:
        raise Unauthorized("this account is locked")
    chosen = None
    if wanted_org:
        chosen = next((m for m in memberships if str(m["org_id"]) == str(wanted_org)), None)
        if chosen is None:
            raise NotFound("organization not found")
        if chosen["locked"]:
            raise Unauthorized(LOCKED_IN_ORGANIZATION)
    elif usable:
        chosen = next((m for m in usable if m["org_id"] == session["active_org_id"]), usable[0])
    if chosen is not None and chosen["mfa_required"] and not session["mfa_verified"]:
        raise Unauthorized("this organization requires two-factor sign-in; sign in again")
    store.touch_session(tx, session["id"])
    return {
        "user_id": str(user["id"]), "email": user["email"], "name": user["name"],
        "org_id": str(chosen["org_id"]) if chosen else None,
        "role": chosen["role"] if chosen else None,
        "organizations": orgs_view(usable), "session_id": str(session["id"]),
        "mfa_enabled": user["totp_enabled"], "expires_at": session["expires_at"].isoformat(),
    }


def set_active_organization(tx, who, org_id):
    m = store.membership(tx, org_id, who["user_id"])
    if m is None:
        raise NotFound("organization not found")
    if m["locked"]:
        raise Unauthorized(LOCKED_IN_ORGANIZATION)
    store.set_active_org(tx, who["user_id"], who["session_id"], org_id)
    return {"active_org_id": str(org_id)}


def update_profile(tx, who, data):
    user = store.update_user(tx, who["user_id"], name=data["name"].strip())
    return user_view(user)


def change_password(tx, who, data):
    """Needs the current password; every other session of the user ends. No row is locked
    while argon2 runs (see login)."""
    user = store.user(tx, who["user_id"])
    if not credentials.verify_password(user["password_hash"], data["current_password"]):
        return Invalid("the current password is wrong",
                       errors={"current_password": ["does not match"]})
    check_password(data["new_password"], user["email"], user["name"], field="new_password")
    new_hash = credentials.hash_password(data["new_password"])
    store.update_user(tx, user["id"], password_hash=new_hash)
    store.revoke_sessions_of_user(tx, user["id"], except_session_id=who["session_id"])
    return {"ok": True}


def list_sessions(tx, who):
    return [{"id": str(s["id"]), "current": str(s["id"]) == who["session_id"],
             "address": s["address"], "user_agent": s["user_agent"],
             "created_at": s["created_at"].isoformat(), "last_used_at": s["last_used_at"].isoformat(),
             "expires_at": s["expires_at"].isoformat()}
            for s in store.sessions_of_user(tx, who["user_id"])]


def revoke_session(tx, who, session_id):
    if store.revoke_session(tx, who["user_id"], session_id) is None:
        raise NotFound("session not found")


def logout(tx, who):
    store.revoke_session(tx, who["user_id"], who["session_id"])
