"""Email settings of an organization: sender identity, outgoing provider (SMTP, password encrypted
at rest with Fernet keyed from SECRET_KEY, never returned), the inbound key, and what each
channel still lacks before it can send."""
import secrets

from services.common import crypto
from services.common.errors import Invalid
from services.messaging import store

CHANNELS = ("email", "sms", "phone")
TLS_MODES = ("none", "starttls", "tls")


def new_inbound_key():
    return secrets.token_urlsafe(24)


def encrypt(secret_key, value):
    return crypto.encrypt(value, secret_key)


def decrypt(secret_key, token):
    try:
        return crypto.decrypt(token, secret_key)
    except crypto.CannotDecrypt:
        # Key rotated without re-encrypting: the provider must be configured again.
        raise Invalid("the stored SMTP password cannot be read with the current SECRET_KEY",
                      errors={"password": ["enter the SMTP password again"]})


def load(tx, org_id):
    return store.email_settings(tx, org_id, new_inbound_key())


def set_sender(tx, org_id, data):
    load(tx, org_id)
    store.set_sender(tx, org_id, data["name"], data["email"], data.get("reply_domain"))


def set_provider(tx, org_id, data, secret_key):
    row = load(tx, org_id)
    password = data.get("password")
    if password is None and not row["smtp_password_enc"] and data.get("username"):
        raise Invalid("invalid input", errors={"password": ["required with a username"]})
    enc = encrypt(secret_key, password) if password is not None else None
    store.set_smtp_provider(tx, org_id, data["host"], data["port"], data.get("username"),
                            enc, data["tls_mode"])


def readiness(row, channel):
    if channel == "email":
        missing = []
        if not (row and row["sender_email"] and row["sender_name"]):
            missing.append("sender_identity")
        if not (row and row["provider_kind"]):
            missing.append("email_provider")
        return {"channel": "email", "ready": not missing, "missing": missing}
    # SMS and calls depend on the Twilio settings: providers.readiness answers for them; without
    # those settings this is what is missing.
    return {"channel": channel, "ready": False, "missing": ["sms_provider", "phone_number"]}


def incoming_email(row, received):
    """The optional incoming-email step of Going Live. Done when replies can reach us: the sender
    identity names a reply_domain (whose MX reaches the inbound webhook), or at least one inbound
    email has been accepted (`received`: forwarding or a provider's inbound webhook works).
    Skipped when the organization deferred it; either lets the dashboard become operational."""
    skipped_at = row["incoming_email_skipped_at"]
    reply_domain_set = bool(row["reply_domain"])
    return {"done": reply_domain_set or bool(received), "skipped": skipped_at is not None,
            "skipped_at": skipped_at.isoformat() if skipped_at else None,
            "reply_domain_set": reply_domain_set, "inbound_received": bool(received)}


def view(row, role, public_base_url):
    """Settings as a client may see them: never the password, and the inbound URL (a secret that
    lets anyone post mail into the org) only for those who manage channel setup."""
    sender = None
    if row["sender_email"]:
        sender = {"name": row["sender_name"], "email": row["sender_email"],
                  "reply_domain": row["reply_domain"]}
    provider = None
    if row["provider_kind"]:
        provider = {"kind": row["provider_kind"], "host": row["smtp_host"],
                    "port": row["smtp_port"], "username": row["smtp_username"],
                    "tls_mode": row["smtp_tls_mode"],
                    "password_set": bool(row["smtp_password_enc"])}
    can_manage = role in ("owner", "admin", "system")
    inbound_url = (f"{public_base_url.rstrip('/')}/webhooks/email/inbound/{row['inbound_key']}"
                   if can_manage else None)
    return {"sender": sender, "provider": provider,
            "inbound": {"webhook_url": inbound_url, "visible": can_manage},
            "readiness": readiness(row, "email")}


def smtp_settings(row, secret_key):
    """What the sender needs to connect (password decrypted only here, only in memory)."""
    password = decrypt(secret_key, row["smtp_password_enc"]) if row["smtp_password_enc"] else None
    return {"host": row["smtp_host"], "port": row["smtp_port"], "username": row["smtp_username"],
            "password": password, "tls_mode": row["smtp_tls_mode"]}
