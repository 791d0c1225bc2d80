"""Organizations: creation (sign-up and onboarding), settings and their rules, test recipients."""
import re
import unicodedata
import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from services.common.errors import Invalid, NotFound
from services.identity import audit, store

SLUG_TAKEN = "this slug is already taken"
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_ZONES = None


def slugify(name):
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")
    return slug or "org"


def valid_timezone(name):
    """True for IANA zone names (Europe/Berlin, UTC); false for abbreviations and offsets."""
    global _ZONES
    if _ZONES is None:
        _ZONES = available_timezones() | {"UTC"}
    if not isinstance(name, str) or name not in _ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def next_slug(base, taken):
    """`base`, else `base-2`, `base-3`... the first one not in `taken`."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def create(tx, name, description, owner):
    """A new organization owned by `owner` (a user row); emits organization_created.

    The slug is claimed with INSERT ... ON CONFLICT (slug) DO NOTHING: when a concurrent sign-up
    took it first, the next suffix is tried, so same-named sign-ups never collide into a 500."""
    base = slugify(name)[:60].strip("-") or "org"
    taken = store.slugs_like(tx, base)
    org = None
    while org is None:
        slug = next_slug(base, taken)
        org = store.insert_organization(tx, {
            "id": str(uuid.uuid4()), "name": name, "slug": slug, "description": description or "",
        })
        taken.add(slug)
    store.insert_membership(tx, org["id"], owner["id"], "owner")
    tx.emit("organization_created", {
        "org_id": str(org["id"]), "name": org["name"], "description": org["description"],
        "owner_user_id": str(owner["id"]), "owner_email": owner["email"],
        "owner_name": owner["name"],
    })
    return org


def view(tx, org):
    """The organization as the API shows it; test recipients default to the owner."""
    recipients = org["test_recipients"]
    if recipients is None:
        owner = store.first_owner(tx, org["id"])
        recipients = [{"email": owner["email"], "name": owner["name"]}] if owner else []
    return {
        "id": str(org["id"]), "name": org["name"], "slug": org["slug"],
        "description": org["description"], "default_timezone": org["default_timezone"],
        "default_country": org["default_country"], "mfa_required": org["mfa_required"],
        "auto_approve_campaign_emails": org["auto_approve_campaign_emails"],
        "auto_approve_response_emails": org["auto_approve_response_emails"],
        "default_response_campaign_id": _str(org["default_response_campaign_id"]),
        "test_recipients": recipients,
        "created_at": org["created_at"].isoformat(), "updated_at": org["updated_at"].isoformat(),
    }


def get(tx, ctx):
    org = store.organization(tx, ctx["org_id"])
    if org is None:
        raise NotFound("organization not found")
    return view(tx, org)


def update(tx, ctx, changes, actor):
    """Apply validated setting changes; returns (view, access_changed)."""
    org = store.organization(tx, ctx["org_id"], for_update=True)
    if org is None:
        raise NotFound("organization not found")
    errors = {}
    if "slug" in changes:
        slug = changes["slug"]
        if not SLUG_RE.match(slug or ""):
            errors["slug"] = ["use lowercase letters, digits and hyphens (1-64, no hyphen at the ends)"]
        elif store.slug_taken(tx, slug, except_org_id=org["id"]):
            errors["slug"] = [SLUG_TAKEN]
    if "default_timezone" in changes and not valid_timezone(changes["default_timezone"]):
        errors["default_timezone"] = ["not an IANA time zone name (for example Europe/Berlin)"]
    if changes.get("mfa_required") and not org["mfa_required"] and not actor.get("totp_enabled"):
        errors["mfa_required"] = ["turn on two-factor sign-in for your own account first, "
                                  "or you would lock yourself out"]
    if errors:
        raise Invalid("invalid organization settings", errors=errors)
    if "default_response_campaign_id" in changes and changes["default_response_campaign_id"]:
        changes["default_response_campaign_id"] = str(changes["default_response_campaign_id"])
    before = view(tx, org)
    try:
        updated = store.update_organization(tx, org["id"], changes)
    except store.SlugTaken:
        # Taken by a concurrent change after the check above: the same answer as the check's.
        raise Invalid("invalid organization settings", errors={"slug": [SLUG_TAKEN]})
    after = view(tx, updated)
    diff_before = {k: before[k] for k in changes if before.get(k) != after.get(k)}
    diff_after = {k: after[k] for k in diff_before}
    if diff_before:
        audit.record(tx, ctx, actor, "organization.updated", "organization", org["id"],
                     diff_before, diff_after)
    return after, "mfa_required" in diff_before


def set_test_recipients(tx, ctx, recipients, actor):
    org = store.organization(tx, ctx["org_id"], for_update=True)
    if org is None:
        raise NotFound("organization not found")
    seen, cleaned, errors = set(), [], {}
    for i, r in enumerate(recipients):
        email = (r.get("email") or "").lower() or None
        phone = None
        if r.get("phone"):
            phone = e164(r["phone"], org["default_country"])
            if phone is None:
                errors[f"recipients.{i}.phone"] = [
                    f"not a valid phone number (E.164, or national in {org['default_country']})"]
                continue
        key = (email, phone)
        if key in seen:
            continue
        seen.add(key)
        entry = {"email": email, "name": r.get("name") or ""}
        if phone:
            entry["phone"] = phone
        cleaned.append(entry)
    if errors:
        raise Invalid("invalid test recipients", errors=errors)
    before = view(tx, org)["test_recipients"]
    updated = store.set_test_recipients(tx, org["id"], cleaned)
    result = view(tx, updated)
    audit.record(tx, ctx, actor, "organization.test_recipients_changed", "organization",
                 org["id"], {"test_recipients": before}, {"test_recipients": result["test_recipients"]})
    return result


def e164(raw, country):
    """The number in E.164, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(raw, country or "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _str(value):
    return None if value is None else str(value)
