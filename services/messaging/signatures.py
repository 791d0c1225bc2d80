"""Webhook signature schemes of the providers we accept (pure functions, no I/O):
Twilio HMAC-SHA1 over URL + sorted params, SendGrid ECDSA P-256 over timestamp + raw body,
Mailgun HMAC-SHA256 over timestamp + token, and HTTP basic auth for unsigned inbound hooks."""
import base64
import binascii
import hashlib
import hmac
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def twilio_signature(auth_token, url, params):
    """base64(HMAC-SHA1(token, url + name1 + value1 + ...)) with params sorted by name (and the
    values of a repeated name sorted). `params` is a list of (name, value) decoded pairs."""
    grouped = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    data = url + "".join(name + value for name in sorted(grouped)
                         for value in sorted(grouped[name]))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def twilio_valid(auth_token, url, params, signature):
    if not auth_token or not signature:
        return False
    expected = twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def sendgrid_public_key(b64_der):
    """The verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo) or PEM;
    ValueError if it is not an EC P-256 public key."""
    text = (b64_der or "").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error) as err:
        raise ValueError(f"not a public key: {err}")
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key")
    return key


def sendgrid_valid(b64_der_key, timestamp, raw_body, signature_b64):
    """ECDSA P-256/SHA-256 over timestamp bytes + raw body; the signature is base64 DER."""
    if not b64_der_key or not timestamp or not signature_b64:
        return False
    try:
        key = sendgrid_public_key(b64_der_key)
        signature = base64.b64decode(signature_b64.strip(), validate=True)
        key.verify(signature, timestamp.encode("utf-8") + raw_body, ec.ECDSA(hashes.SHA256()))
        return True
    except (ValueError, TypeError, binascii.Error, InvalidSignature):
        return False


def sendgrid_sign(private_scalar_hex, timestamp, raw_body):
    """For tests and tooling: sign like SendGrid with a private key given as its hex scalar."""
    key = ec.derive_private_key(int(private_scalar_hex, 16), ec.SECP256R1())
    sig = key.sign(timestamp.encode("utf-8") + raw_body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(sig).decode("ascii")


def mailgun_signature(signing_key, timestamp, token):
    return hmac.new(signing_key.encode("utf-8"), f"{timestamp}{token}".encode("utf-8"),
                    hashlib.sha256).hexdigest()


def mailgun_valid(signing_key, timestamp, token, signature):
    if not signing_key or not timestamp or not token or not signature:
        return False
    expected = mailgun_signature(signing_key, timestamp, token)
    return hmac.compare_digest(expected.encode(), str(signature).strip().lower().encode())


def timestamp_fresh(timestamp, tolerance_seconds, now=None):
    """True when `timestamp` (unix seconds) is within tolerance of now; a tolerance of None
    switches the clock check off."""
    if tolerance_seconds is None:
        return True
    try:
        ts = float(timestamp)
    except (TypeError, ValueError):
        return False
    now = time.time() if now is None else now
    return abs(now - ts) <= tolerance_seconds


def basic_auth(header):
    """(user, password) from an Authorization: Basic header, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True) \
            .decode("utf-8").partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def basic_auth_valid(header, username, password):
    given = basic_auth(header)
    if given is None or not username or not password:
        return False
    ok_user = hmac.compare_digest(given[0].encode(), username.encode())
    ok_pass = hmac.compare_digest(given[1].encode(), password.encode())
    return ok_user and ok_pass
