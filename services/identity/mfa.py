"""TOTP second factor: enrolment with a provisioning URI, confirmation, single-use recovery codes."""
import secrets
import time

import pyotp

from services.common.errors import Invalid
from services.identity import credentials, store

ISSUER = "Outreach"
RECOVERY_CODES = 10


def begin_enrolment(tx, user):
    """A fresh secret (kept, not yet enabled) and the otpauth:// URI an authenticator app scans."""
    secret = pyotp.random_base32()
    store.update_user(tx, user["id"], totp_secret=secret, totp_enabled=False, totp_last_step=None)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user["email"], issuer_name=ISSUER)
    return {"secret": secret, "provisioning_uri": uri}


def totp_step(secret, code, last_step=None, at=None):
    """The time step the code belongs to (the current one, or one either side for clock drift),
    or None. Steps up to `last_step` (the last one accepted) are refused: a code works once, and
    neither it nor an older one can be replayed while it is still inside the window."""
    code = (code or "").replace(" ", "")
    if not secret or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if at is None else at) // totp.interval)
    for step in (current - 1, current, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if credentials.same(totp.generate_otp(step), code):
            return step
    return None


def _accept_totp(tx, user, code):
    """True when the code is a fresh TOTP code of the user's secret; its step is recorded (the
    caller holds the user's row, so two requests cannot both accept one code)."""
    step = totp_step(user["totp_secret"], code, user.get("totp_last_step"))
    if step is None:
        return False
    store.update_user(tx, user["id"], totp_last_step=step)
    return True


def new_recovery_codes():
    plain = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    return plain, [credentials.token_hash(c) for c in plain]


def confirm_enrolment(tx, user, code):
    """Turn MFA on if the code matches the pending secret; returns the recovery codes (once)."""
    if not _accept_totp(tx, user, code):
        return None
    plain, hashed = new_recovery_codes()
    store.update_user(tx, user["id"], totp_enabled=True, recovery_codes=hashed)
    return plain


def check_code(tx, user, code):
    """A TOTP code not used before, or a recovery code (which is then spent)."""
    if _accept_totp(tx, user, code):
        return True
    h = credentials.token_hash((code or "").strip().lower())
    codes = list(user["recovery_codes"] or [])
    if h in codes:
        codes.remove(h)
        store.update_user(tx, user["id"], recovery_codes=codes)
        return True
    return False


def disable(tx, user, code):
    if not user["totp_enabled"] or not check_code(tx, user, code):
        return False
    store.update_user(tx, user["id"], totp_enabled=False, totp_secret=None, recovery_codes=[],
                      totp_last_step=None)
    return True


def user_for_code(tx, user_id, email):
    """The user's row, locked for checking a code: the account's sign-in lock first, then the row
    (every sign-in and code check takes them in this order, so they never deadlock)."""
    store.lock_sign_ins(tx, email)
    return store.user(tx, user_id, for_update=True)


# --- self-service (the caller is `who`, as accounts.authenticate answers) -----------------------

def enrol(tx, who):
    user = store.user(tx, who["user_id"], for_update=True)
    if user["totp_enabled"]:
        raise Invalid("two-factor sign-in is already on", errors={"mfa": ["already enabled"]})
    return begin_enrolment(tx, user)


def _limited(tx, user, meta):
    """The sign-in limiter guards codes entered while signed in too (accounts imports this
    module, so it is imported here lazily)."""
    from services.identity import accounts
    return accounts.rate_limit(tx, user["email"], (meta or {}).get("address"))


def _wrong_code(tx, user, meta):
    store.record_attempt(tx, user["email"], (meta or {}).get("address"), False)
    return Invalid("the code is not valid", errors={"code": ["does not match"]})


def confirm(tx, who, code, meta=None):
    """Returns the result, or an error to raise after commit (a wrong code counts as a failed
    sign-in of the account; over the limit the answer is RateLimited)."""
    user = user_for_code(tx, who["user_id"], who["email"])
    if user["totp_enabled"] or not user["totp_secret"]:
        raise Invalid("start enrolment first", errors={"code": ["no enrolment in progress"]})
    limited = _limited(tx, user, meta)
    if limited:
        return limited
    codes = confirm_enrolment(tx, user, code)
    if codes is None:
        return _wrong_code(tx, user, meta)
    # This session just proved the second factor.
    store.mark_mfa_verified(tx, user["id"], who["session_id"])
    return {"mfa_enabled": True, "recovery_codes": codes}


def turn_off(tx, who, code, meta=None):
    """Like confirm: returns the result or an error to raise after commit."""
    user = user_for_code(tx, who["user_id"], who["email"])
    if any(m["mfa_required"] for m in store.memberships_of_user(tx, user["id"])):
        raise Invalid("an organization you belong to requires two-factor sign-in",
                      errors={"mfa": ["required by your organization"]})
    if not user["totp_enabled"]:
        raise Invalid("two-factor sign-in is not on", errors={"code": ["two-factor sign-in is not on"]})
    limited = _limited(tx, user, meta)
    if limited:
        return limited
    if not disable(tx, user, code):
        return _wrong_code(tx, user, meta)
    return {"mfa_enabled": False}
