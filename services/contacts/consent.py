"""Unsubscribes: per identifier (normalised e-mail or E.164 number) and channel, with source and
history; groups per organization and channel; the Unsubscribe API's batches and listing."""
import base64
import json

from psycopg2 import errors as pg_errors

from services.common.errors import Conflict, Invalid, NotFound
from services.contacts import normalize
from services.contacts.store import ContactStore, new_id

MAX_BATCH = 10000


def normalise_identifier(channel, raw, region="US"):
    """(identifier, item_error)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "missing identifier"
    if not isinstance(raw, str):
        return None, "invalid email format" if channel == "email" else "invalid phone format"
    if channel == "email":
        r = normalize.email(raw)
        return (r.value, None) if r.value else (None, "invalid email format")
    r = normalize.phone(raw, region)
    return (r.value[0], None) if r.value else (None, "invalid phone format")


def _group(tx, ctx, group_id, channel):
    if group_id is None:
        return None
    row = tx.one("SELECT id, channel FROM unsubscribe_groups WHERE org_id = %s AND id = %s",
                 (ctx["org_id"], str(group_id)))
    if row is None:
        raise NotFound("unsubscribe group not found")
    if row["channel"] != channel:
        raise Invalid("group of another channel", errors={"group_id": [f"this group is for {row['channel']}"]})
    return row["id"]


def change_batch(tx, ctx, data):
    """All-or-nothing: every item is checked first; any bad item fails the batch with the spec's
    item_error and index. Idempotent: items already in the wanted state are not rewritten."""
    channel, items = data["channel"], data["items"]
    if len(items) > MAX_BATCH:
        raise Invalid("too many items", errors={"items": [f"at most {MAX_BATCH} items per request"]},
                      error_code="invalid_item", item_error="too many items")
    if not items:
        raise Invalid("no items", errors={"items": ["give at least one item"]},
                      error_code="invalid_item", item_error="missing identifier")
    seen, idents = set(), []
    for i, item in enumerate(items):
        raw = item.get("identifier") if isinstance(item, dict) else item
        ident, problem = normalise_identifier(channel, raw)
        if problem is None and ident in seen:
            problem = "duplicate identifier"
        if problem:
            raise Invalid(f"item {i}: {problem}", errors={f"items.{i}": [problem]},
                          error_code="invalid_item", item_error=problem, index=i, identifier=raw)
        seen.add(ident)
        idents.append(ident)
    group_id = _group(tx, ctx, data.get("group_id"), channel)
    store = ContactStore(tx, ctx["org_id"])
    store.unsubscribe_many([(channel, i) for i in idents], data["source"],
                           unsubscribed=data["unsubscribed"], group_id=group_id)
    rows = tx.all("SELECT identifier, unsubscribed, updated_at FROM unsubscribes WHERE org_id = %s"
                  " AND channel = %s AND group_id IS NOT DISTINCT FROM %s AND identifier = ANY(%s)",
                  (ctx["org_id"], channel, group_id, idents))
    return {"group_id": str(group_id) if group_id else None, "processed": len(idents),
            "updated": [{"identifier": r["identifier"], "unsubscribed": r["unsubscribed"],
                         "updated_at": r["updated_at"].isoformat()} for r in rows]}


def _cursor_encode(row):
    raw = json.dumps([row["updated_at"].isoformat(), row["id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_decode(cursor):
    try:
        pad = "=" * (-len(cursor) % 4)
        ts, rid = json.loads(base64.urlsafe_b64decode(cursor + pad))
        return ts, int(rid)
    except (ValueError, TypeError):
        raise Invalid("bad cursor", errors={"cursor": ["not a cursor this API returned"]})


def list_changes(tx, ctx, q):
    """Newest first by (updated_at, id); `cursor` continues a listing."""
    group_id = _group(tx, ctx, q.get("group_id"), q["channel"])
    sql = ("SELECT id, identifier, unsubscribed, source, updated_at FROM unsubscribes"
           " WHERE org_id = %s AND channel = %s AND group_id IS NOT DISTINCT FROM %s")
    params = [ctx["org_id"], q["channel"], group_id]
    if q.get("cursor"):
        ts, rid = _cursor_decode(q["cursor"])
        sql += " AND (updated_at, id) < (%s::timestamptz, %s)"
        params += [ts, rid]
    if q.get("since"):
        sql += " AND updated_at >= %s"
        params.append(q["since"])
    if q.get("until"):
        sql += " AND updated_at < %s"
        params.append(q["until"])
    sql += " ORDER BY updated_at DESC, id DESC LIMIT %s"
    params.append(q["limit"] + 1)
    rows = tx.all(sql, params)
    more = len(rows) > q["limit"]
    rows = rows[:q["limit"]]
    return {"group_id": str(group_id) if group_id else None,
            "data": [{"identifier": r["identifier"], "unsubscribed": r["unsubscribed"],
                      "source": r["source"], "updated_at": r["updated_at"].isoformat()} for r in rows],
            "next_cursor": _cursor_encode(rows[-1]) if more else None, "has_more": more}


def history(tx, ctx, channel, identifier):
    return [{"channel": r["channel"], "identifier": r["identifier"], "unsubscribed": r["unsubscribed"],
             "source": r["source"], "group_id": str(r["group_id"]) if r["group_id"] else None,
             "at": r["created_at"].isoformat()}
            for r in tx.all("SELECT * FROM unsubscribe_history WHERE org_id = %s AND channel = %s"
                            " AND identifier = %s ORDER BY id", (ctx["org_id"], channel, identifier))]


def contact_history(tx, ctx, contact):
    out = []
    for channel in ("email", "sms", "phone"):
        ident = contact["email"] if channel == "email" else contact["phone"]
        if ident:
            out += history(tx, ctx, channel, ident)
    return sorted(out, key=lambda h: h["at"])


def set_contact(tx, ctx, contact_id, data):
    store = ContactStore(tx, ctx["org_id"])
    contact = store.get_contact(contact_id)
    ident = contact["email"] if data["channel"] == "email" else contact["phone"]
    if not ident:
        raise Invalid("no address", errors={"channel": [f"the contact has no address for {data['channel']}"]})
    store.unsubscribe_many([(data["channel"], ident)], data["source"], unsubscribed=data["unsubscribed"])
    return store.get_contact(contact_id)


def opt_out(tx, payload):
    ctx = {"org_id": str(payload["org_id"])}
    ident, problem = normalise_identifier(payload["channel"], payload["identifier"])
    if problem:
        return False
    ContactStore(tx, ctx["org_id"]).unsubscribe_many(
        [(payload["channel"], ident)], payload["source"], unsubscribed=payload["unsubscribed"],
        detail=f"event {payload['event_id']}")
    return True


def bounced(tx, payload):
    """messaging.email_bounced: a hard bounce marks the address undeliverable for e-mail (the
    sender's reachable() check and resolve_segment then skip it); a soft bounce (mailbox full,
    greylisting) is temporary and blocks nothing. -> True when an address was marked."""
    from services.contacts.contacts import mark_undeliverable
    if payload["bounce_type"] != "hard" or (payload.get("channel") or "email") != "email":
        return False
    ident, problem = normalise_identifier("email", payload["identifier"])
    if problem:
        return False
    mark_undeliverable(tx, payload["org_id"], "email", ident, payload.get("diagnostic"),
                       str(payload["communication_id"]) if payload.get("communication_id") else None,
                       payload.get("occurred_at"))
    return True


def group_out(r):
    return {"id": str(r["id"]), "channel": r["channel"], "name": r["name"],
            "description": r["description"], "created_at": r["created_at"].isoformat()}


def create_group(tx, ctx, data):
    try:
        tx.execute("SAVEPOINT grp")
        row = tx.one("INSERT INTO unsubscribe_groups (id, org_id, channel, name, description)"
                     " VALUES (%s, %s, %s, %s, %s) RETURNING *",
                     (new_id(), ctx["org_id"], data["channel"], data["name"], data["description"]))
    except pg_errors.UniqueViolation:
        tx.execute("ROLLBACK TO SAVEPOINT grp")
        raise Conflict("a group with this name exists", errors={"name": ["already exists"]})
    return group_out(row)


def list_groups(tx, org_ids):
    rows = tx.all("SELECT * FROM unsubscribe_groups WHERE org_id = ANY(%s::uuid[]) ORDER BY created_at, id",
                  ([str(o) for o in org_ids],))
    return [dict(group_out(r), org_id=str(r["org_id"])) for r in rows]
