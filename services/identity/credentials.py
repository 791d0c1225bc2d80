"""Passwords (argon2, with a policy) and random tokens (stored only as sha256 hashes)."""
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2id with OWASP's recommended parameters (m=19 MiB, t=2, p=1): about 40 ms of one core,
# where argon2-cffi's default (64 MiB, t=3, p=4) took ~10x longer on the 2-CPU test machine and
# made sign-in the bottleneck. Older hashes still verify and are upgraded at the next sign-in.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _direct(fn, *args):
    return fn(*args)


# How a hash is run. The service sets it to eventlet's thread pool: argon2 takes tens of
# milliseconds of CPU (releasing the GIL), and must not stall the service's other green threads
# (token checks) meanwhile.
offload = _direct
# Verified against when the email is unknown, so a miss costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
COMMON_PASSWORDS = {
    "password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyui",
    "qwerty123", "iloveyou", "letmein1", "welcome1", "admin123", "abcdefgh", "11111111",
    "00000000", "passw0rd", "football", "baseball", "sunshine", "princess", "changeme",
}


def password_problems(password, email=None, name=None):
    """The reasons a password is refused (empty list when it is acceptable)."""
    problems = []
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        return [f"must be at least {MIN_PASSWORD_LENGTH} characters"]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [f"must be at most {MAX_PASSWORD_LENGTH} characters"]
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        problems.append("is too common")
    if len(set(password)) < 4:
        problems.append("needs more different characters")
    if email and lowered == email.lower():
        problems.append("must not be the email address")
    if email and lowered == email.lower().split("@")[0] and len(lowered) < 12:
        problems.append("must not be the email's user name")
    if name and lowered == name.lower().replace(" ", ""):
        problems.append("must not be the name")
    return problems


def hash_password(password):
    return offload(_hasher.hash, password)


def verify_password(password_hash, password):
    try:
        return offload(_hasher.verify, password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash):
    return _hasher.check_needs_rehash(password_hash)


def new_token(prefix, nbytes=32):
    """A random bearer value; only its hash is stored."""
    return f"{prefix}{secrets.token_urlsafe(nbytes)}"


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same(a, b):
    return hmac.compare_digest(a, b)
