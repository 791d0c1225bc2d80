"""Rules about single contacts: create, update, deactivate, delete, list, serialize, consent."""
import re

from psycopg2 import errors as pg_errors
from psycopg2.extras import Json

from services.common.errors import Conflict, Forbidden, Invalid, NotFound
from services.contacts import normalize, segments
from services.contacts.store import ContactStore, new_id, opted_out_sql


def serialize(row, default_timezone=None):
    unsub = {"email": bool(row.get("unsub_email")), "sms": bool(row.get("unsub_sms")),
             "phone": bool(row.get("unsub_phone"))}
    bounce = row.get("email_bounce")  # a hard bounce marked the e-mail address undeliverable
    return {
        "id": str(row["id"]), "name": row["name"], "first_name": row["first_name"],
        "last_name": row["last_name"], "email": row["email"], "phone": row["phone"],
        "phone_extension": row["phone_extension"], "timezone": row["timezone"],
        "effective_timezone": row["timezone"] or default_timezone,
        "active": row["active"], "custom": row["custom"] or {}, "tags": list(row.get("tags") or []),
        "unsubscribed": unsub,
        "reachable": {
            "email": bool(row["active"] and row["email"] and not unsub["email"] and not bounce),
            "sms": bool(row["active"] and row["phone"] and not unsub["sms"]),
            "phone": bool(row["active"] and row["phone"] and not unsub["phone"]),
        },
        "email_undeliverable": bool(bounce),
        "email_undeliverable_at": bounce["at"] if bounce else None,
        "email_undeliverable_diagnostic": bounce["diagnostic"] if bounce else None,
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
    }


def normalise_input(data, defaults, partial=False):
    """Validated column values from an API body; Invalid names each bad field."""
    errors, values = {}, {}
    if "email" in data:
        if data["email"] in (None, ""):
            values["email"] = None
        else:
            e = normalize.email(data["email"])
            if e.warning:
                errors["email"] = [e.reason]
            values["email"] = e.value
    if "phone" in data:
        if data["phone"] in (None, ""):
            values["phone"], values["phone_extension"] = None, None
        else:
            region = normalize.country(data.get("country")) or defaults.get("default_country") or "US"
            p = normalize.phone(data["phone"], region)
            if p.warning:
                errors["phone"] = [p.reason]
            else:
                values["phone"], values["phone_extension"] = p.value
    if data.get("phone_extension"):
        values["phone_extension"] = data["phone_extension"].strip()
    if "timezone" in data:
        if data["timezone"] in (None, ""):
            values["timezone"] = None
        else:
            tz = normalize.timezone(data["timezone"])
            if tz.warning:
                errors["timezone"] = [tz.reason]
            values["timezone"] = tz.value
    for f in ("name", "first_name", "last_name"):
        if f in data:
            values[f] = normalize.one_line(data[f]) or None
    if not values.get("name") and ("first_name" in data or "last_name" in data) and "name" not in data:
        values["name"] = normalize.full_name(values.get("first_name"), values.get("last_name"))[0]
    if "active" in data:
        values["active"] = data["active"]
    if "custom" in data:
        values["custom"] = data["custom"] or {}
    if data.get("email_undeliverable") is True:
        errors["email_undeliverable"] = ["only a hard bounce marks an address undeliverable;"
                                         " send false to clear the mark"]
    if errors:
        raise Invalid("invalid contact", errors=errors)
    return values


def create(tx, ctx, data, defaults):
    values = normalise_input(data, defaults)
    if not values.get("email") and not values.get("phone"):
        raise Invalid("invalid contact", errors={"email": ["give an e-mail or a phone"]})
    store = ContactStore(tx, ctx["org_id"])
    if values.get("email") and tx.one("SELECT 1 FROM contacts WHERE org_id = %s AND email = %s",
                                      (ctx["org_id"], values["email"])):
        raise Conflict("a contact with this e-mail exists", errors={"email": ["already a contact"]})
    cid = new_id()
    cols = ["id", "org_id"] + [k for k in values]
    params = [cid, ctx["org_id"]] + [Json(v) if k == "custom" else v for k, v in values.items()]
    tx.execute(f"INSERT INTO contacts ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
               params)
    if data.get("tags"):
        store.link_tags([(cid, data["tags"])], strict=True)
    _apply_unsubscribed(store, values, data.get("unsubscribed"), "admin")
    return store.get_contact(cid)


def update(tx, ctx, contact_id, data, defaults):
    store = ContactStore(tx, ctx["org_id"])
    current = store.get_contact(contact_id)
    values = normalise_input(data, defaults, partial=True)
    if "email" in values and values["email"] is None and not values.get("phone", current["phone"]):
        raise Invalid("invalid contact", errors={"email": ["a contact needs an e-mail or a phone"]})
    if values:
        sets = ", ".join(f"{k} = %s" for k in values)
        params = [Json(v) if k == "custom" else v for k, v in values.items()]
        try:
            tx.execute("SAVEPOINT upd")
            tx.execute(f"UPDATE contacts SET {sets}, updated_at = now() WHERE org_id = %s AND id = %s",
                       params + [ctx["org_id"], str(contact_id)])
        except pg_errors.UniqueViolation:
            tx.execute("ROLLBACK TO SAVEPOINT upd")
            raise Conflict("another contact has this e-mail", errors={"email": ["already a contact"]})
    if data.get("tags"):
        store.link_tags([(current["id"], data["tags"])], strict=True)
    if data.get("email_undeliverable") is False:
        clear_undeliverable(tx, ctx, values.get("email", current["email"]))
    merged = {"email": values.get("email", current["email"]), "phone": values.get("phone", current["phone"])}
    _apply_unsubscribed(store, merged, data.get("unsubscribed"), "admin")
    return store.get_contact(contact_id)


def _apply_unsubscribed(store, values, wanted, source):
    for channel, flag in (wanted or {}).items():
        ident = values.get("email") if channel == "email" else values.get("phone")
        if ident:
            store.unsubscribe_many([(channel, ident)], source, unsubscribed=flag)


def clear_undeliverable(tx, ctx, email):
    """An admin says the address works again (the mailbox was fixed): campaigns may use it."""
    if ctx.get("role") not in ("owner", "admin"):
        raise Forbidden("only an owner or admin can clear an undeliverable address",
                        errors={"email_undeliverable": ["owner or admin only"]})
    if email:
        tx.execute("DELETE FROM undeliverable WHERE org_id = %s AND channel = 'email'"
                   " AND identifier = %s", (ctx["org_id"], email))


def mark_undeliverable(tx, org_id, channel, identifier, diagnostic=None, communication_id=None,
                       at=None):
    """A hard bounce: the address cannot receive mail (the latest bounce's time and diagnostic)."""
    tx.execute("INSERT INTO undeliverable (org_id, channel, identifier, bounced_at, diagnostic,"
               " communication_id) VALUES (%s, %s, %s, COALESCE(%s::timestamptz, now()), %s, %s)"
               " ON CONFLICT (org_id, channel, identifier) DO UPDATE SET"
               " bounced_at = EXCLUDED.bounced_at, diagnostic = EXCLUDED.diagnostic,"
               " communication_id = EXCLUDED.communication_id",
               (str(org_id), channel, identifier, at, (diagnostic or None) and diagnostic[:2000],
                communication_id))


def delete(tx, ctx, contact_id):
    row = tx.one("DELETE FROM contacts WHERE org_id = %s AND id = %s RETURNING id",
                 (ctx["org_id"], str(contact_id)))
    if row is None:
        raise NotFound("contact not found")


PHONE_LIKE = re.compile(r"[+(]?[\d][\d\s().\-/]*")
PHONE_DIGITS = re.compile(r"\D")


def _like(text):
    """`text` with LIKE's wildcards escaped, so a search for `50%` or `a_b` means those."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_sql(tx, ctx, q):
    """(where_sql, params) for the contact list filters."""
    parts, params = ["TRUE"], []
    if q.get("q"):
        text = q["q"].strip()
        like = f"%{_like(text)}%"
        # Phones are stored in E.164: "(202) 555-0143" or "202 555 0143" search by their digits.
        digits = PHONE_DIGITS.sub("", text) if PHONE_LIKE.fullmatch(text) else ""
        phone_like = f"%{digits}%" if len(digits) >= 3 else like
        parts.append("(c.name ILIKE %s OR c.email ILIKE %s OR c.phone LIKE %s)")
        params += [like, like, phone_like]
    if q.get("tag_id"):
        parts.append("EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id AND ct.tag_id = %s)")
        params.append(str(q["tag_id"]))
    if q.get("segment_id"):
        seg = tx.one("SELECT id, name, rules FROM segments WHERE org_id = %s AND id = %s",
                     (ctx["org_id"], str(q["segment_id"])))
        if seg is None:
            raise NotFound("segment not found")
        from services.contacts.audience import usable_rules
        sql, p = segments.compile_rules(usable_rules(seg))
        parts.append(f"({sql})")
        params += p
    if q.get("active") is not None:
        parts.append("c.active = %s")
        params.append(q["active"])
    if q.get("unsubscribed"):
        channel = q["unsubscribed"]
        column = "email" if channel == "email" else "phone"
        # The same opt-out the contact's `unsubscribed` flags show (any group counts).
        parts.append(f"EXISTS (SELECT 1 FROM unsubscribes u WHERE u.org_id = c.org_id"
                     f" AND {opted_out_sql(channel, 'c.' + column)})")
    for flag, column in (("has_email", "email"), ("has_phone", "phone")):
        if q.get(flag) is not None:
            parts.append(f"c.{column} IS {'NOT ' if q[flag] else ''}NULL")
    if q.get("created_from"):
        parts.append("c.created_at >= %s")
        params.append(q["created_from"])
    if q.get("created_to"):
        parts.append("c.created_at < %s")
        params.append(q["created_to"])
    return " AND ".join(parts), params


def list_contacts(tx, ctx, q, defaults):
    store = ContactStore(tx, ctx["org_id"])
    where, params = filter_sql(tx, ctx, q)
    try:
        rows = store.list_contacts(where, params, str(q["after"]) if q.get("after") else None,
                                   q["limit"] + 1)
    except pg_errors.DataError as err:
        # A value PostgreSQL still refuses (a segment rule saved before rules were checked).
        raise Invalid("the filter cannot be evaluated", errors={
            "segment_id" if q.get("segment_id") else "q": [str(err).splitlines()[0]]})
    more = len(rows) > q["limit"]
    rows = rows[:q["limit"]]
    result = {"contacts": [serialize(r, defaults.get("default_timezone")) for r in rows],
              "next_cursor": str(rows[-1]["id"]) if more else None}
    if q.get("with_summary", True) and not q.get("after"):
        result["summary"] = summary(tx, ctx, where, params)
    return result


def summary(tx, ctx, where, params):
    row = tx.one(
        "SELECT count(*) AS total, count(*) FILTER (WHERE c.active) AS active,"
        " count(c.email) AS with_email, count(c.phone) AS with_phone"
        f" FROM contacts c WHERE c.org_id = %s AND ({where})", [ctx["org_id"]] + params)
    return dict(row)
