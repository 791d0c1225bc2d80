"""Unsubscribes: per identifier (normalised e-mail or E.164 number) and channel, with source and
history; groups per organization and channel; the Unsubscribe API's batches and listing."""
import base64
import json
import re

from psycopg2 import errors as pg_errors

from services.common.errors import Conflict, Invalid, NotFound
from services.contacts import normalize
from services.contacts.store import ContactStore, new_id

MAX_BATCH = 10000
# Spec 2.13: a group is for e-mail or for a phone number; a phone-number group serves SMS and
# voice alike, so its opt-outs hold on both channels (store.opted_out_sql).
KINDS = {"email": "email", "sms": "phone_number", "phone": "phone_number"}
KIND_CHANNELS = {"email": ["email"], "phone_number": ["sms", "phone"]}
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def normalise_identifier(channel, raw, region="US", e164_only=False):
    """(identifier, item_error). `e164_only` (the Unsubscribe API, spec 128) takes a phone only
    as written in E.164 (`+12025550143`); imports and admin forms also read national shapes
    like `(202) 555-0143` in `region`."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "missing identifier"
    if not isinstance(raw, str):
        return None, "invalid email format" if channel == "email" else "invalid phone format"
    if channel == "email":
        r = normalize.email(raw)
        return (r.value, None) if r.value else (None, "invalid email format")
    if e164_only and not E164.fullmatch(raw.strip()):
        return None, "invalid phone format"
    r = normalize.phone(raw, region)
    return (r.value[0], None) if r.value else (None, "invalid phone format")


def _group(tx, ctx, group_id, channel):
    """(group id, the channel its records are kept under) or (None, channel) for the
    organization's default group. A phone-number group answers for sms and phone alike and keeps
    one record per number, under the channel it was created for."""
    if group_id is None:
        return None, channel
    row = tx.one("SELECT id, channel FROM unsubscribe_groups WHERE org_id = %s AND id = %s",
                 (ctx["org_id"], str(group_id)))
    if row is None:
        raise NotFound("unsubscribe group not found")
    if KINDS[row["channel"]] != KINDS[channel]:
        raise Invalid("group of another kind", errors={"group_id": [
            f"this group is for {KINDS[row['channel']]}, not {channel}"]})
    return row["id"], row["channel"]


def _group_sql(group_id):
    """`= %s` or `IS NULL`, never IS NOT DISTINCT FROM: that form cannot use an index."""
    return ("u.group_id = %s", [group_id]) if group_id else ("u.group_id IS NULL", [])


def change_batch(tx, ctx, data):
    """All-or-nothing: every item is checked first; any bad item fails the batch with the spec's
    item_error and index. Idempotent: items already in the wanted state are not rewritten.
    `updated` has one entry per item, in the order given (spec 128)."""
    channel, items = data["channel"], data["items"]
    if len(items) > MAX_BATCH:
        # Not an item's fault: the spec's item errors name one item; this is the request's.
        raise Invalid("too many items", errors={"items": [f"at most {MAX_BATCH} items per request"]})
    if not items:
        raise Invalid("no items", errors={"items": ["give at least one item"]})
    seen, idents = set(), []
    for i, item in enumerate(items):
        raw = item.get("identifier") if isinstance(item, dict) else item
        ident, problem = normalise_identifier(channel, raw, e164_only=True)
        if problem is None and ident in seen:
            problem = "duplicate identifier"
        if problem:
            raise Invalid(f"item {i}: {problem}", errors={f"items.{i}": [problem]},
                          error_code="invalid_item", item_error=problem, index=i, identifier=raw)
        seen.add(ident)
        idents.append(ident)
    group_id, kept_as = _group(tx, ctx, data.get("group_id"), channel)
    store = ContactStore(tx, ctx["org_id"])
    store.unsubscribe_many([(kept_as, i) for i in idents], data["source"],
                           unsubscribed=data["unsubscribed"], group_id=group_id)
    where, params = _group_sql(group_id)
    # Joined to the input's ordinal: the unique (org_id, channel, group_id, identifier) index
    # finds each row, and the order is the caller's.
    rows = tx.all("SELECT u.identifier, u.unsubscribed, u.updated_at"
                  " FROM unnest(%s::text[]) WITH ORDINALITY AS i (identifier, n)"
                  " JOIN unsubscribes u ON u.org_id = %s AND u.channel = %s AND u.identifier = i.identifier"
                  f" AND {where} ORDER BY i.n",
                  [idents, ctx["org_id"], kept_as] + params)
    return {"group_id": str(group_id) if group_id else None, "processed": len(idents),
            "updated": [{"identifier": r["identifier"], "unsubscribed": r["unsubscribed"],
                         "updated_at": r["updated_at"].isoformat()} for r in rows]}


def _cursor_encode(row):
    """The position after `row`; the gateway seals it with the rest of the query."""
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
    """Newest first by (updated_at, id); `cursor` (a position this returned) continues."""
    group_id, kept_as = _group(tx, ctx, q.get("group_id"), q["channel"])
    where, group_params = _group_sql(group_id)
    # A group's listing reads unsubscribes_group_listing (0005), the default's unsubscribes_listing.
    sql = ("SELECT u.id, u.identifier, u.unsubscribed, u.source, u.updated_at FROM unsubscribes u"
           f" WHERE u.org_id = %s AND u.channel = %s AND {where}")
    params = [ctx["org_id"], kept_as] + group_params
    if q.get("cursor"):
        ts, rid = _cursor_decode(q["cursor"])
        sql += " AND (u.updated_at, u.id) < (%s::timestamptz, %s)"
        params += [ts, rid]
    if q.get("since"):
        sql += " AND u.updated_at >= %s"
        params.append(q["since"])
    if q.get("until"):
        sql += " AND u.updated_at < %s"
        params.append(q["until"])
    sql += " ORDER BY u.updated_at DESC, u.id DESC LIMIT %s"
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
    """A group as spec 2.13 shapes it, with org ids where the API shows slugs (the gateway
    knows which organizations a client may see): `unsubscribes` counts numbers or addresses
    opted out now; `used_by` is its organization, on the channels its kind serves."""
    kind = KINDS[r["channel"]]
    return {"id": str(r["id"]), "name": r["name"], "description": r["description"],
            "kind": kind, "channel": r["channel"], "unsubscribes": r.get("unsubscribes", 0),
            "org_id": str(r["org_id"]),
            "used_by": [{"org_id": str(r["org_id"]), "channels": KIND_CHANNELS[kind]}],
            "created_at": r["created_at"].isoformat()}


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
    # The count reads unsubscribes_group_listing (0005) per group.
    rows = tx.all("SELECT g.*, (SELECT count(*) FROM unsubscribes u WHERE u.group_id = g.id"
                  "                AND u.unsubscribed) AS unsubscribes"
                  " FROM unsubscribe_groups g WHERE g.org_id = ANY(%s::uuid[]) ORDER BY g.created_at, g.id",
                  ([str(o) for o in org_ids],))
    return [group_out(r) for r in rows]
