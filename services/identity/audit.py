"""The audit log of administrative actions: who did what, when, with before and after values."""


def record(tx, ctx, actor, action, target_type, target_id, before=None, after=None):
    from services.identity import store
    store.insert_audit(tx, {
        "org_id": ctx["org_id"], "actor_user_id": ctx.get("user_id"),
        "actor_email": (actor or {}).get("email"), "action": action,
        "target_type": target_type, "target_id": None if target_id is None else str(target_id),
        "before": before, "after": after,
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
