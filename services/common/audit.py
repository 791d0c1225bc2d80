"""Administrative actions taken in a service other than identity (email and provider settings,
data sources, unsubscribe groups) for the organization's audit log, which identity keeps.

    from services.common import audit
    audit.record(tx, ctx, "email_provider.updated", "email_settings", org_id, before, after)

One `audit_recorded` event is written to the outbox in the same transaction as the change, so an
entry exists exactly when the change does; identity stores it (idempotently) with the actor's
e-mail. Secrets never leave: a key that names a password, secret, token or signing key is replaced by
"[set]" / None in before and after. A change that changes nothing writes no entry."""
SECRET_NAMES = {"password", "secret", "token", "auth_token", "api_key_secret", "signing_key",
                "private_key", "totp_secret"}
SECRET_SUFFIXES = ("_password", "_secret", "_token", "_signing_key", "_private_key")


def redacted(value):
    if isinstance(value, dict):
        return {k: (("[set]" if v else None) if _secret(k) else redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redacted(v) for v in value]
    return value


def _secret(key):
    key = str(key).lower()
    return key in SECRET_NAMES or key.endswith(SECRET_SUFFIXES)


def record(tx, ctx, action, target_type, target_id=None, before=None, after=None):
    """Writes the entry's event, unless nothing changed (a PUT of the same values)."""
    if before is not None and before == after:
        return
    tx.emit("audit_recorded", {
        "org_id": ctx["org_id"], "actor_user_id": ctx.get("user_id"), "action": action,
        "target_type": target_type, "target_id": None if target_id is None else str(target_id),
        "before": redacted(before), "after": redacted(after)})
