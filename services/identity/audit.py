"""The audit log of administrative actions: who did what, when, with before and after values."""

from services.common.schemas import is_uuid

def record(tx, ctx, actor, action, target_type, target_id, before=None, after=None):
    from services.identity import store
    store.insert_audit(tx, {
        "org_id": ctx["org_id"], "actor_user_id": ctx.get("user_id"),
        "actor_email": (actor or {}).get("email"), "action": action,
        "target_type": target_type, "target_id": None if target_id is None else str(target_id),
        "before": before, "after": after,
    })


def store_event(tx, payload):
    """An `audit_recorded` event of another service as an entry, with the actor's e-mail."""
    from services.identity import store
    actor = store.user(tx, payload["actor_user_id"]) if is_uuid(payload.get("actor_user_id")) else None
    store.insert_audit(tx, {
        "org_id": payload["org_id"], "actor_user_id": actor["id"] if actor else None,
        "actor_email": actor["email"] if actor else None, "action": str(payload["action"])[:200],
        "target_type": str(payload.get("target_type") or "")[:100] or None,
        "target_id": payload.get("target_id"), "before": payload.get("before"),
        "after": payload.get("after"),
    })


def page(tx, ctx, before_id=None, limit=50):
    from services.identity import store
    rows = store.audit_page(tx, ctx["org_id"], before_id, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "entries": [{
            "id": r["id"], "actor_user_id": _s(r["actor_user_id"]), "actor_email": r["actor_email"],
            "action": r["action"], "target_type": r["target_type"], "target_id": r["target_id"],
            "before": r["before"], "after": r["after"], "at": r["at"].isoformat(),
        } for r in rows],
        "next_cursor": str(rows[-1]["id"]) if more and rows else None,
    }


def _s(v):
    return None if v is None else str(v)
