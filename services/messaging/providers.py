"""Provider integrations of an organization (Twilio, SendGrid, Mailgun, Postmark): what is
stored (shown fields in `config`, secrets Fernet-encrypted in `secrets_enc`, never returned),
what a client may see, the webhook URLs, and SMS/phone readiness."""
import json

import psycopg2.errors

from services.common import crypto
from services.common.errors import Conflict, Invalid
from services.messaging import settings, store

SECRET_FIELDS = {
    "twilio": ("auth_token", "api_key_secret"),
    "sendgrid": ("inbound_password",),
    "mailgun": ("signing_key",),
    "postmark": ("inbound_password",),
}

WEBHOOK_PATHS = {
    "twilio": {"sms_inbound": "sms/inbound", "sms_status": "sms/status",
               "voice_status": "voice/status"},
    "sendgrid": {"events": "events", "inbound": "inbound"},
    "mailgun": {"events": "events"},
    "postmark": {"inbound": "inbound"},
}


def secrets_of(row, secret_key):
    """The decrypted secrets of a settings row (only in memory, only for verification)."""
    if not row or not row["secrets_enc"]:
        return {}
    try:
        return json.loads(crypto.decrypt(row["secrets_enc"], secret_key))
    except (crypto.CannotDecrypt, ValueError):
        # Key rotated without re-entering the provider secrets: nothing verifies.
        return {}


def save(tx, org_id, provider, data, secret_key):
    """Merge `data` (validated) into the stored settings; secrets left out are kept."""
    current = store.provider_settings(tx, org_id, provider)
    stored = secrets_of(current, secret_key)
    secrets = {}
    for name in SECRET_FIELDS[provider]:
        value = data.pop(name, None)
        if value is not None:
            secrets[name] = value
        elif stored.get(name):
            secrets[name] = stored[name]
    config = {k: v for k, v in data.items()}
    _check(provider, config, secrets)
    enc = crypto.encrypt(json.dumps(secrets), secret_key) if secrets else None
    route = {}
    if provider == "twilio":
        route = {"route_phone": config.get("phone_number"),
                 "route_service_sid": config.get("messaging_service_sid"),
                 "account_sid": config.get("account_sid")}
    try:
        store.save_provider_settings(tx, org_id, provider, config, enc, **route)
    except psycopg2.errors.UniqueViolation:
        field = "phone_number"
        if route.get("route_service_sid"):
            field = "phone_number or messaging_service_sid"
        raise Conflict("this number or Messaging Service is connected to another organization",
                       errors={field: ["already connected to another organization"]})


def _check(provider, config, secrets):
    errors = {}
    if provider == "twilio":
        if config.get("credential_style") == "api_key":
            if not config.get("api_key_sid"):
                errors["api_key_sid"] = ["required for key/secret credentials"]
            if not secrets.get("api_key_secret"):
                errors["api_key_secret"] = ["required for key/secret credentials"]
        elif not secrets.get("auth_token"):
            errors["auth_token"] = ["required for token credentials"]
    if provider == "postmark" and not secrets.get("inbound_password"):
        errors["inbound_password"] = ["required"]
    if provider == "sendgrid" and config.get("inbound_username") and \
            not secrets.get("inbound_password"):
        errors["inbound_password"] = ["required with a user name"]
    if provider == "mailgun" and not secrets.get("signing_key"):
        errors["signing_key"] = ["required"]
    if errors:
        raise Invalid("invalid input", errors=errors)


def view(row, provider, role, public_base_url, inbound_key, secret_key):
    """What a client may see: never a secret, only whether it is set; webhook URLs (which carry
    the organization's key) only for those who manage channel setup."""
    if row is None:
        return None
    config = dict(row["config"] or {})
    secrets = secrets_of(row, secret_key)
    out = dict(config)
    for name in SECRET_FIELDS[provider]:
        out[f"{name}_set"] = bool(secrets.get(name))
    can_manage = role in ("owner", "admin", "system")
    base = (public_base_url or "").rstrip("/")
    out["webhook_urls"] = {
        name: f"{base}/webhooks/{provider}/{inbound_key}/{path}"
        for name, path in WEBHOOK_PATHS[provider].items()} if can_manage else None
    out["updated_at"] = row["updated_at"].isoformat()
    return out


def one_view(tx, org_id, provider, role, public_base_url, secret_key):
    """view() of one provider's settings (its row only, its secrets only)."""
    inbound_key = settings.load(tx, org_id)["inbound_key"]
    return view(store.provider_settings(tx, org_id, provider), provider, role, public_base_url,
                inbound_key, secret_key)


def all_views(tx, org_id, role, public_base_url, secret_key):
    inbound_key = settings.load(tx, org_id)["inbound_key"]
    rows = {r["provider"]: r for r in store.provider_settings(tx, org_id)}
    return {p: view(rows.get(p), p, role, public_base_url, inbound_key, secret_key)
            for p in SECRET_FIELDS}


def twilio_ready(row, secret_key):
    """(has credentials, has number) for SMS and calls."""
    if row is None:
        return False, False
    config = row["config"] or {}
    secrets = secrets_of(row, secret_key)
    if config.get("credential_style") == "api_key":
        creds = bool(config.get("account_sid") and config.get("api_key_sid")
                     and secrets.get("api_key_secret"))
    else:
        creds = bool(config.get("account_sid") and secrets.get("auth_token"))
    return creds, bool(config.get("phone_number"))


def readiness(email_row, twilio_row, channel, secret_key):
    if channel == "email":
        return settings.readiness(email_row, "email")
    creds, number = twilio_ready(twilio_row, secret_key)
    missing = []
    if not creds:
        missing.append("sms_provider")
    if not number:
        missing.append("phone_number")
    return {"channel": channel, "ready": not missing, "missing": missing}
