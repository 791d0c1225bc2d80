"""The team of an organization: add teammates, change roles, lock, unlock, remove.

Rules (checked by `may_change`, a pure function):
- only an owner grants the owner role or acts on an owner;
- the last unlocked owner cannot be demoted, locked or removed;
- nobody locks themselves out.
"""
import uuid

from services.common.errors import Conflict, Forbidden, NotFound
from services.identity import accounts, audit, credentials, store

ROLES = ("owner", "admin", "member", "viewer")
MANAGER_ROLES = ("owner", "admin")


def may_change(actor_role, actor_id, target, *, new_role=None, lock=None, remove=False,
               unlocked_owners=1):
    """Raise Forbidden/Conflict when the change breaks a rule; return None when it is fine."""
    if (target["role"] == "owner" or new_role == "owner") and actor_role != "owner":
        raise Forbidden("only an owner may grant the owner role or change an owner")
    if str(target["user_id"]) == str(actor_id) and lock:
        raise Conflict("you cannot lock yourself out")
    is_active_owner = target["role"] == "owner" and not target["locked"]
    loses_ownership = (new_role is not None and new_role != "owner") or lock or remove
    if is_active_owner and loses_ownership and unlocked_owners <= 1:
        raise Conflict("the organization's last owner cannot be demoted, locked or removed")


def member_view(m):
    return {"user_id": str(m["user_id"]), "email": m["email"], "name": m["name"], "role": m["role"],
            "locked": m["locked"], "created_at": m["created_at"].isoformat()}


def list_team(tx, ctx):
    org = store.organization(tx, ctx["org_id"])
    return [dict(member_view(m), organization={"id": str(org["id"]), "name": org["name"]},
                 mfa_enabled=m["totp_enabled"]) for m in store.team(tx, ctx["org_id"])]


EXISTING_ACCOUNT_NOTICE = ("this email already had an account: that person joined your organization "
                           "with their own password and name; the password you entered was not used "
                           "and their password was not changed")


def joined_organization(tx, ctx, org_id):
    """The context in the organization a teammate joins: the active one, or `org_id` when the
    caller manages that one too. As everywhere, an organization the caller does not belong to
    answers 404 and one where they are not an unlocked owner or admin 403."""
    if org_id is None or str(org_id) == str(ctx["org_id"]):
        return ctx
    m = store.membership(tx, str(org_id), ctx["user_id"])
    if m is None:
        raise NotFound("organization not found")
    if m["locked"]:
        raise Forbidden("your account is locked in that organization")
    if m["role"] not in MANAGER_ROLES:
        raise Forbidden(f"the {m['role']} role may not add teammates to that organization")
    return dict(ctx, org_id=str(org_id), role=m["role"])


def add(tx, ctx, data, actor):
    """A new account with the given password, or an existing account joining the organization
    (the active one, or `organization_id`; a person may belong to several). An existing
    account's password and name are left alone (an admin of one organization never resets
    another's), and the answer says so: `existing_account`, `password_set` and a `notice`."""
    ctx = joined_organization(tx, ctx, data.get("organization_id"))
    if data["role"] == "owner" and ctx["role"] != "owner":
        raise Forbidden("only an owner may grant the owner role")
    email = accounts.normalize_email(data["email"])
    user = store.user_by_email(tx, email)
    existing = user is not None
    if not existing:
        accounts.check_password(data["password"], email, data["name"])
        user = store.insert_user(tx, {"id": str(uuid.uuid4()), "email": email,
                                      "name": data["name"].strip(),
                                      "password_hash": credentials.hash_password(data["password"])})
        if user is None:
            # A concurrent request created the account first (ON CONFLICT waited for it): join it.
            user, existing = store.user_by_email(tx, email), True
    created = store.insert_membership(tx, ctx["org_id"], user["id"], data["role"])
    if created is None:
        raise Conflict("this person is already on the team",
                       errors={"email": ["already a member of this organization"]})
    m = store.membership(tx, ctx["org_id"], user["id"])
    audit.record(tx, ctx, actor, "team.member_added", "user", user["id"], None,
                 {"email": email, "role": data["role"], "existing_account": existing})
    org = store.organization(tx, ctx["org_id"])
    out = dict(member_view(m), organization={"id": str(org["id"]), "name": org["name"]},
               existing_account=existing, password_set=not existing)
    if existing:
        out["notice"] = EXISTING_ACCOUNT_NOTICE
    return out


def _target(tx, ctx, user_id):
    m = store.membership(tx, ctx["org_id"], user_id, for_update=True)
    if m is None:
        raise NotFound("teammate not found")
    return m


def change(tx, ctx, user_id, data, actor):
    """Change role and/or lock state; returns the teammate and emits access_changed."""
    target = _target(tx, ctx, user_id)
    new_role = data.get("role")
    lock = data.get("locked")
    owners = store.active_owner_count(tx, ctx["org_id"])
    may_change(ctx["role"], ctx["user_id"], target, new_role=new_role, lock=lock,
               unlocked_owners=owners)
    changes = {}
    if new_role is not None and new_role != target["role"]:
        changes["role"] = new_role
    if lock is not None and lock != target["locked"]:
        changes["locked"] = lock
    if changes:
        store.update_membership(tx, ctx["org_id"], user_id, **changes)
        before = {k: target[k] for k in changes}
        action = "team.role_changed" if list(changes) == ["role"] else (
            ("team.member_locked" if changes["locked"] else "team.member_unlocked")
            if list(changes) == ["locked"] else "team.member_changed")
        audit.record(tx, ctx, actor, action, "user", user_id, before, changes)
        access_changed(tx, ctx["org_id"], user_id, action)
    return member_view(store.membership(tx, ctx["org_id"], user_id))


def remove(tx, ctx, user_id, actor):
    target = _target(tx, ctx, user_id)
    owners = store.active_owner_count(tx, ctx["org_id"])
    may_change(ctx["role"], ctx["user_id"], target, remove=True, unlocked_owners=owners)
    store.delete_membership(tx, ctx["org_id"], user_id)
    audit.record(tx, ctx, actor, "team.member_removed", "user", user_id,
                 {"email": target["email"], "role": target["role"]}, None)
    access_changed(tx, ctx["org_id"], user_id, "team.member_removed")


def access_changed(tx, org_id, user_id, reason):
    """Tells gateways to forget cached token checks of this user (or of a whole organization)."""
    tx.emit("access_changed", {"org_id": None if org_id is None else str(org_id),
                               "user_id": None if user_id is None else str(user_id),
                               "reason": reason})


def actor(tx, ctx, roles=("owner", "admin")):
    """The acting user as the database knows them (the gateway already checked the role; this
    re-checks it so a stale or forged context cannot act)."""
    if not ctx.get("user_id"):
        raise Forbidden("a signed-in user is required")
    m = store.membership(tx, ctx["org_id"], ctx["user_id"])
    if m is None or m["locked"] or m["role"] not in roles:
        raise Forbidden(f"the {m['role'] if m else 'unknown'} role may not do this")
    u = store.user(tx, ctx["user_id"])
    ctx = dict(ctx, role=m["role"])
    return ctx, {"email": u["email"], "name": u["name"], "totp_enabled": u["totp_enabled"]}
